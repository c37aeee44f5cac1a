"""Views of a running job in the notebook: an ipywidgets view, or text where none renders.

Both render a :class:`~jupyter_training.progress.JobProgress`. The widget view
shows the job's name, backend, phase badge and elapsed time; one row per rank
with its phase, progress bar and latest metrics; a chart per reported metric
(rank 0, other ranks selectable); the log with a rank filter and the count of
dropped lines; and Cancel / Detach buttons. It redraws at most ``fps`` times a
second however fast events come. The text view prints the same information
line by line, rate-limited, tqdm-style.
"""

from __future__ import annotations

import html
import math
import sys
import time
from typing import Any, TextIO

from .events import Event
from .progress import JobProgress
from .store import JobRecord

MAX_FPS = 10.0
LOG_PANE_LINES = 200
MAX_RANK_ROWS = 16
UNLIMITED = 1 << 62
PHASE_COLORS = {
    "Pending": "#9e9e9e",
    "Running": "#1976d2",
    "Restarting": "#f57c00",
    "Succeeded": "#2e7d32",
    "Failed": "#c62828",
    "Cancelled": "#616161",
}


def widgets_available() -> bool:
    """True in a kernel whose frontend can display ipywidgets."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def make_view(record: JobRecord, mode: str = "auto") -> TextJobView | WidgetJobView:
    """The widget view when one can render (or ``mode == "widget"``), else the text view."""
    if mode == "widget" or (mode == "auto" and widgets_available()):
        return WidgetJobView(record)
    return TextJobView(record)


class TextJobView:
    """Prints a job's events as lines: phases, rate-limited output, periodic progress."""

    def __init__(
        self, record: JobRecord, stream: TextIO | None = None, max_lines_per_second: int = 200
    ) -> None:
        self.record = record
        self.progress = JobProgress(record)
        self.stream = stream
        self.width = len(str(max(record.workers - 1, 0)))
        self.max_lines_per_second = max_lines_per_second
        self._window = (0.0, 0)
        self.hidden_lines = 0
        self._last_progress = 0.0
        self.cancel_requested = self.detach_requested = False

    @property
    def out(self) -> TextIO:
        return self.stream or sys.stdout

    def show_submitted(self) -> None:
        spec = self.record.spec
        gpus = f", {spec['gpus']} GPU(s) each" if spec["gpus"] else ""
        self.out.write(
            f"[{self.record.name}] job {self.record.id}: {spec['framework']}, "
            f"{_plural(spec['workers'], 'worker')}{gpus}, backend {spec['backend']}\n"
        )

    def handle(self, event: Event) -> None:
        """Fold in and print one event."""
        self.progress.apply(event)
        if event.kind == "log":
            if self._admit_line():
                self.out.write(f"[rank {event.rank:>{self.width}}] {event.data.get('line', '')}\n")
            else:
                self.hidden_lines += 1
        elif event.kind == "phase" and not event.is_terminal:  # show_finished reports it
            message = event.data.get("message") or ""
            phase = event.data["phase"]
            self.out.write(
                f"[{self.record.name}] {phase}" + (f": {message}" if message else "") + "\n"
            )
        elif event.kind == "worker":
            self._print_worker(event)
        elif event.kind == "report" and event.rank == 0:
            self._print_progress()
        self.out.flush()

    def tick(self) -> None:
        """Called between events; the text view has nothing to redraw."""

    def _admit_line(self) -> bool:
        now = time.monotonic()
        start, count = self._window
        if now - start >= 1.0:
            start, count = now, 0
        self._window = (start, count + 1)
        return count < self.max_lines_per_second

    def _print_worker(self, event: Event) -> None:
        data = event.data
        state = data.get("state")
        who = f"rank {event.rank}" if event.rank is not None else "job"
        if state == "exited" and data.get("exit_code"):
            reason = f" ({data['reason']})" if data.get("reason") else ""
            self.out.write(
                f"[{self.record.name}] {who} exited with code {data['exit_code']}{reason}\n"
            )
        elif state in ("waiting", "event") and data.get("reason"):
            message = f": {data['message']}" if data.get("message") else ""
            self.out.write(f"[{self.record.name}] {who}: {data['reason']}{message}\n")
        elif state == "restarted":
            self.out.write(f"[{self.record.name}] {who} restarted ({data.get('restarts')})\n")

    def _print_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < 1.0:
            return
        self._last_progress = now
        state = self.progress.ranks.get(0)
        if state is None:
            return
        bar = ""
        if state.fraction is not None:
            filled = int(state.fraction * 20)
            bar = (
                f"|{'█' * filled}{' ' * (20 - filled)}| {state.step}/{state.total} "
                f"({state.fraction:.0%}) "
            )
        elif state.step is not None:
            bar = f"step {state.step} "
        line = f"[{self.record.name}] rank 0: {bar}{_format_metrics(state.metrics)}\n"
        if line != getattr(self, "_last_progress_line", None):
            self._last_progress_line = line
            self.out.write(line)

    def show_finished(self, record: JobRecord) -> None:
        if self.hidden_lines:
            self.out.write(
                f"[{record.name}] {self.hidden_lines} output lines not shown (over "
                f"{self.max_lines_per_second} lines/s); %train_logs {record.id} "
                "prints them all\n"
            )
        if self.progress.ranks.get(0) and self.progress.ranks[0].metrics:
            self._print_progress(force=True)
        took = (
            f" in {record.finished - record.started:.1f} s"
            if (record.started and record.finished)
            else ""
        )
        self.out.write(f"[{record.name}] {record.phase}{took}\n")
        self.out.flush()

    def close(self) -> None:
        """Nothing to tear down."""


class WidgetJobView:
    """An ipywidgets view of one job, redrawn at most :data:`MAX_FPS` times a second."""

    def __init__(self, record: JobRecord, fps: float = MAX_FPS) -> None:
        import ipywidgets as w

        self.record = record
        self.progress = JobProgress(record)
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
        display(self.widget)

    def handle(self, event: Event) -> None:
        self.progress.apply(event)
        self.draw()

    def tick(self) -> None:
        self.draw()

    def show_finished(self, record: JobRecord) -> None:
        self.progress.phase = record.phase
        self.progress.message = record.message
        self.progress.started = record.started or self.progress.started
        self.progress.finished = record.finished or self.progress.finished
        self.cancel_button.disabled = self.detach_button.disabled = True
        self.draw(force=True)

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
        self._sync_rank_rows()
        p = self.progress
        color = PHASE_COLORS.get(p.phase, "#616161")
        spec = self.record.spec
        gpus = f" x {spec['gpus']} GPU" if spec.get("gpus") else ""
        self.header.value = (
            f"<b>{html.escape(self.record.name)}</b> &nbsp;"
            f"<span style='background:{color};color:white;border-radius:8px;padding:1px 8px'>"
            f"{p.phase}</span> &nbsp; {html.escape(spec['framework'])} · "
            f"{spec['workers']} workers{gpus} · {html.escape(self.record.backend)} · "
            f"{_clock(p.elapsed())} · <code>{self.record.id}</code>"
        )
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
        points = [(x, y) for x, y in progress.series[name].get(rank) or [] if math.isfinite(y)]
        if not points:
            continue
        xs, ys = [x for x, _ in points], [y for _, y in points]
        x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
        pad = 18
        coords = " ".join(
            f"{pad + (x - x0) / (x1 - x0) * (width - 2 * pad):.1f},"
            f"{height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad):.1f}"
            for x, y in points
        )
        charts.append(
            f"<svg width='{width}' height='{height}' style='margin-right:8px;background:#fafafa'>"
            f"<text x='{pad}' y='12' font-size='11'>{html.escape(name)} "
            f"(last {ys[-1]:.4g})</text>"
            f"<text x='{width - pad}' y='{height - 4}' font-size='9' text-anchor='end'>"
            f"step {x1:g}</text>"
            f"<text x='2' y='{pad + 4}' font-size='9'>{y1:.3g}</text>"
            f"<text x='2' y='{height - pad}' font-size='9'>{y0:.3g}</text>"
            f"<polyline fill='none' stroke='#1976d2' stroke-width='1.5' points='{coords}'/></svg>"
        )
    return "<div style='display:flex;flex-wrap:wrap'>" + "".join(charts) + "</div>"


def format_job_table(records: list[JobRecord]) -> str:
    """A plain-text table of jobs, newest first."""
    header = (
        "ID",
        "NAME",
        "PHASE",
        "FRAMEWORK",
        "BACKEND",
        "WORKERS",
        "GPUS",
        "DURATION",
        "METRICS",
    )
    rows = [header, *(_row(r) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


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


def _row(r: JobRecord) -> tuple[str, ...]:
    duration = _clock((r.finished or time.time()) - r.started) if r.started else "-"
    return (
        r.id,
        r.name,
        r.phase,
        r.framework,
        r.backend,
        str(r.workers),
        str(r.gpus),
        duration,
        _format_metrics(r.metrics or {}),
    )


def _format_metrics(metrics: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.4g}" for name, value in metrics.items())


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
