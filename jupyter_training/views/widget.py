"""The ipywidgets view of a running job in the notebook, and the HTML job table.

It renders a :class:`~jupyter_training.views.progress.JobProgress`: the job's
name, backend, phase badge and elapsed time; one row per rank with its phase,
progress bar and latest metrics; a chart per reported metric (rank 0, other
ranks selectable); the log with a rank filter and the count of dropped lines;
and Cancel / Detach buttons. It redraws at most ``fps`` times a second however
fast events come. Where no widget renders, :func:`make_view` picks the text
view (:mod:`.text`). ``ipywidgets`` is imported on first use only.
"""

from __future__ import annotations

import html
import time
from typing import Any

from ..events import Event
from ..store import JobRecord
from .charts import svg_chart
from .progress import JobProgress
from .record import summary_html, summary_text
from .text import TextJobView, _clock, _format_metrics, _row
from .uipoll import current_kernel

MAX_FPS = 10.0
LOG_PANE_LINES = 200
#: Seconds between refreshes of the readable record that stands in for the widget.
RECORD_SECONDS = 5.0
MAX_RANK_ROWS = 16
PHASE_COLORS = {
    "Pending": "#9e9e9e",
    "Running": "#1976d2",
    "Restarting": "#f57c00",
    "Succeeded": "#2e7d32",
    "Failed": "#c62828",
    "Cancelled": "#616161",
    "Pruned": "#8d6e63",
}


def widgets_available() -> bool:
    """True in a kernel whose frontend can display ipywidgets."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return current_kernel() is not None


def widget_echo(mode: str) -> bool | None:
    """How a ``--progress`` mode is drawn: None for the text view, else the widget view,
    True where it also prints the text view's lines (``auto`` with no page answering
    :func:`~jupyter_training.views.frontend.frontend_is_live`: nbclient, papermill,
    jupyter-scheduler), so the saved output is a log."""
    if mode == "widget":
        return False
    if mode == "auto" and widgets_available():
        from .frontend import frontend_is_live

        return not frontend_is_live()
    return None


def widget_bundle(widget: Any, text: str, markup: str) -> dict[str, Any]:
    """A display of ``widget`` that carries ``text`` and ``markup`` for wherever widgets do
    not render (a saved notebook on GitHub, ``nbconvert --to markdown``, a terminal)."""
    return {
        "application/vnd.jupyter.widget-view+json": {
            "version_major": 2,
            "version_minor": 0,
            "model_id": widget.model_id,
        },
        "text/plain": text,
        "text/html": markup,
    }


def make_view(record: JobRecord, mode: str = "auto") -> TextJobView | WidgetJobView:
    """The widget view when one can render (or ``mode == "widget"``), else the text view
    (see :func:`widget_echo`)."""
    echo = widget_echo(mode)
    return TextJobView(record) if echo is None else WidgetJobView(record, echo=echo)


class WidgetJobView:
    """An ipywidgets view of one job, redrawn at most :data:`MAX_FPS` times a second."""

    def __init__(self, record: JobRecord, fps: float = MAX_FPS, *, echo: bool = False) -> None:
        import ipywidgets as w

        self.record = record
        self.progress = JobProgress(record)
        #: Where no page shows the widget, the text view's lines printed as well.
        self.echo = TextJobView(record, progress=self.progress) if echo else None
        self.min_interval = 1.0 / fps
        self._drawn_at = 0.0
        self._drawn_version = -1
        self.cancel_requested = self.detach_requested = False
        self.header = w.HTML()
        self.message = w.HTML()
        self.rows: dict[int, tuple[Any, Any, Any]] = {}
        self.rank_box = w.VBox()
        self.chart_rank = w.Dropdown(
            options=[("rank 0", 0)], value=0, description="Chart:", layout=w.Layout(width="180px")
        )
        self.chart = w.HTML()
        self.log_rank = w.Dropdown(
            options=[("all ranks", -1)],
            value=-1,
            description="Log:",
            layout=w.Layout(width="180px"),
        )
        self.dropped = w.HTML()
        self.log = w.HTML()
        self.cancel_button = w.Button(
            description="Cancel",
            button_style="danger",
            icon="stop",
            tooltip="Stop every worker of this job",
        )
        self.detach_button = w.Button(
            description="Detach", icon="eject", tooltip="Stop waiting; the job keeps running"
        )
        self.cancel_button.on_click(lambda _: setattr(self, "cancel_requested", True))
        self.detach_button.on_click(lambda _: setattr(self, "detach_requested", True))
        for control in (self.chart_rank, self.log_rank):
            control.observe(lambda _: self.draw(force=True), names="value")
        self.widget = w.VBox(
            [
                self.header,
                self.message,
                self.rank_box,
                w.HBox([self.chart_rank]),
                self.chart,
                w.HBox([self.log_rank, self.dropped]),
                self.log,
                w.HBox([self.cancel_button, self.detach_button]),
            ],
            layout=w.Layout(border="1px solid #ddd", padding="6px"),
        )
        self._sync_rank_rows()

    # -- the view protocol used by the magic -------------------------------------------------

    def show_submitted(self) -> None:
        from IPython.display import display

        self.draw(force=True)
        self._recorded_at = time.monotonic()
        self.display = display(self._bundle(), raw=True, display_id=True)
        if self.echo is not None:
            self.echo.show_submitted()

    def _bundle(self) -> dict[str, Any]:
        """The widget, and the job's readable record for wherever it cannot render."""
        return widget_bundle(
            self.widget,
            summary_text(self.progress, self.record),
            summary_html(self.progress, self.record),
        )

    def _update_record(self, force: bool = False) -> None:
        """Refresh the record in place (same display id), every few seconds or ``force``."""
        handle = getattr(self, "display", None)
        now = time.monotonic()
        if handle is None or not (force or now - self._recorded_at >= RECORD_SECONDS):
            return
        self._recorded_at = now
        handle.update(self._bundle(), raw=True)

    def handle(self, event: Event) -> None:
        self.progress.apply(event)
        if self.echo is not None:
            self.echo.write(event)
        self.draw()

    def tick(self) -> None:
        self.draw()

    def show_finished(self, record: JobRecord) -> None:
        self.record = record
        self.progress.phase = record.phase
        self.progress.message = record.message
        self.progress.started = record.started or self.progress.started
        self.progress.finished = record.finished or self.progress.finished
        self.cancel_button.disabled = self.detach_button.disabled = True
        self.draw(force=True)
        self._update_record(force=True)
        if self.echo is not None:
            self.echo.show_finished(record)

    def close(self) -> None:
        self.cancel_button.disabled = self.detach_button.disabled = True

    # -- drawing ------------------------------------------------------------------------------

    def draw(self, force: bool = False) -> None:
        """Redraw if something changed and the frame budget allows (or ``force``)."""
        now = time.monotonic()
        if not force and (
            self.progress.version == self._drawn_version or now - self._drawn_at < self.min_interval
        ):
            return
        self._drawn_at, self._drawn_version = now, self.progress.version
        self._update_record()
        self._sync_rank_rows()
        p = self.progress
        color = PHASE_COLORS.get(p.phase, "#616161")
        spec = self.record.spec
        gpus = f" x {spec.gpus} GPU" if spec.gpus else ""
        self.header.value = (
            f"<b>{html.escape(self.record.name)}</b> &nbsp;"
            f"<span style='background:{color};color:white;border-radius:8px;padding:1px 8px'>"
            f"{p.phase}</span> &nbsp; {html.escape(spec.framework)} · "
            f"{spec.workers} workers{gpus} · {html.escape(self.record.backend)} · "
            f"{_clock(p.elapsed())} · <code>{self.record.id}</code>"
        )
        notes = []
        if self.record.parent_id:
            notes.append(f"resumes <code>{html.escape(self.record.parent_id)}</code>")
        if p.checkpoints:
            notes.append(f"{len(p.checkpoints)} checkpoint(s), latest step {p.checkpoints[-1]}")
        if notes:
            self.header.value += "<br><small>" + " · ".join(notes) + "</small>"
        self.message.value = f"<i>{html.escape(p.message)}</i>" if p.message else ""
        for rank, (phase, bar, metrics) in self.rows.items():
            state = p.ranks[rank]
            phase.value = (
                f"<span style='color:{PHASE_COLORS.get(state.phase, '#616161')}'>"
                f"{html.escape(state.phase)}</span> {html.escape(state.detail)}"
            )
            bar.value = state.fraction if state.fraction is not None else 0.0
            bar.description = (
                f"{state.step}/{state.total}"
                if state.total
                else (f"step {state.step}" if state.step is not None else "")
            )
            metrics.value = html.escape(_format_metrics(state.metrics))
        self.chart.value = render_charts(p, self.chart_rank.value)
        rank = None if self.log_rank.value == -1 else self.log_rank.value
        lines = p.log_lines(rank)[-LOG_PANE_LINES:]
        self.log.value = (
            "<pre style='max-height:240px;overflow:auto;margin:0;font-size:12px'>"
            + html.escape("\n".join(lines))
            + "</pre>"
        )
        self.dropped.value = (
            f"<small>{p.dropped_lines} earlier lines dropped · "
            f"%train_logs {self.record.id} shows all</small>"
            if p.dropped_lines
            else ""
        )

    def _sync_rank_rows(self) -> None:
        import ipywidgets as w

        ranks = sorted(self.progress.ranks)
        if list(self.rows) == ranks[:MAX_RANK_ROWS]:
            return
        for rank in ranks[:MAX_RANK_ROWS]:
            if rank not in self.rows:
                self.rows[rank] = (
                    w.HTML(layout=w.Layout(width="220px")),
                    w.FloatProgress(
                        min=0.0,
                        max=1.0,
                        layout=w.Layout(width="260px"),
                        style={"description_width": "70px"},
                    ),
                    w.HTML(),
                )
        self.rank_box.children = [
            w.HBox([w.HTML(f"<b>rank {rank}</b>", layout=w.Layout(width="60px")), *self.rows[rank]])
            for rank in sorted(self.rows)
        ]
        options = [(f"rank {r}", r) for r in ranks]
        self.chart_rank.options = options
        self.log_rank.options = [("all ranks", -1), *options]


def render_charts(progress: JobProgress, rank: int, width: int = 300, height: int = 110) -> str:
    """Inline SVG line charts, one per metric, of ``rank``'s reported values over steps."""
    charts = []
    for name in sorted(progress.series):
        points = progress.series[name].get(rank) or []
        xs, ys = [x for x, _ in points], [y for _, y in points]
        charts.append(svg_chart(name, [(f"rank {rank}", xs, ys)], width=width, height=height))
    return "<div style='display:flex;flex-wrap:wrap'>" + "".join(charts) + "</div>"


def html_job_table(records: list[JobRecord]) -> str:
    """The same table as HTML, with phase badges (``%train_jobs`` in a frontend)."""
    head = "".join(
        f"<th style='text-align:left'>{h}</th>"
        for h in (
            "id",
            "name",
            "phase",
            "framework",
            "backend",
            "workers",
            "GPUs",
            "duration",
            "metrics",
        )
    )
    body = []
    for record in records:
        cells = list(_row(record))
        color = PHASE_COLORS.get(record.phase, "#616161")
        cells_html = [html.escape(c) for c in cells]
        cells_html[0] = f"<code>{cells_html[0]}</code>"
        cells_html[2] = (
            f"<span style='background:{color};color:white;border-radius:8px;"
            f"padding:1px 8px'>{cells_html[2]}</span>"
        )
        body.append(
            "<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in cells_html) + "</tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
