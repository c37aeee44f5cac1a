"""Views of a sweep: a live widget (trials table, best so far, objective chart, each running
trial's progress, a Stop button) and a text view for where widgets do not render."""

from __future__ import annotations

import html
import time
from typing import Any

from ..events import TERMINAL_PHASES
from ..store import SweepRecord
from ..sweeps.launch import driver_alive
from ..sweeps.state import SweepState, TrialInfo
from .charts import svg_chart
from .widget import PHASE_COLORS, RECORD_SECONDS, widget_bundle, widget_echo

MAX_FPS = 4.0


def make_sweep_view(mode: str = "auto") -> SweepTextView | SweepWidgetView:
    """The widget view where one can render (or ``mode == "widget"``), else text; as for a
    job's view (:func:`~.widget.widget_echo`), a headless widget view also prints."""
    echo = widget_echo(mode)
    return SweepTextView() if echo is None else SweepWidgetView(echo=echo)


def _value(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _shown(value: Any) -> str:
    return _value(value) if isinstance(value, float) else str(value)


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={_shown(v)}" for k, v in params.items())


def _duration(trial: TrialInfo) -> str:
    seconds = trial.duration
    return "" if seconds is None else f"{seconds:.1f}s"


def _progress(trial: TrialInfo) -> str:
    if trial.is_terminal or trial.step is None:
        return ""
    if trial.total:
        return f"{trial.step}/{trial.total}"
    return f"step {trial.step}"


def sweep_table_rows(state: SweepState) -> list[list[str]]:
    """The trials table as text cells: trial, params..., phase, objective, progress, time."""
    names = [p.name for p in state.spec.params]
    best = state.best
    rows = []
    for trial in state.ranked():
        mark = "*" if best is not None and trial.number == best.number else ""
        shown = trial.value if trial.value is not None else trial.current
        values = [_shown(trial.params.get(n)) for n in names]
        rows.append(
            [
                f"{mark}t{trial.number}",
                *values,
                trial.phase,
                _value(shown),
                _progress(trial),
                _duration(trial),
            ]
        )
    return rows


def summary_line(state: SweepState) -> str:
    """``sweep-x (id): 5/12 trials, 2 running, best t3 loss=0.12 lr=0.01``."""
    done = sum(1 for t in state.trials.values() if t.is_terminal)
    budget = state.spec.trials
    text = f"{state.sweep.name} ({state.sweep.id}) {state.phase}: {done}/{budget} trials"
    if state.running:
        text += f", {len(state.running)} running"
    best = state.best
    if best is not None:
        text += (
            f"; best t{best.number} {state.spec.metric}={_value(best.value)} "
            f"({_params(best.params)})"
        )
    return text


def format_sweep_table(state: SweepState) -> str:
    """The whole sweep as plain text: a summary line and the ranked trials."""
    header = ["trial", *(p.name for p in state.spec.params), "phase", state.spec.metric, "", "time"]
    rows = [header, *sweep_table_rows(state)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [summary_line(state)]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    if state.message and state.phase != "Running":
        lines.append(state.message)
    return "\n".join(line.rstrip() for line in lines)


class SweepTextView:
    """Prints a line as each trial starts and ends, and the ranked table at the end."""

    def __init__(self) -> None:
        self.stop_requested = False
        self._seen: dict[int, str] = {}
        self._final_printed = False

    def refresh(self, state: SweepState) -> None:
        for number in sorted(state.trials):
            trial = state.trials[number]
            before = self._seen.get(number)
            if before == trial.phase:
                continue
            self._seen[number] = trial.phase
            if before is None and not trial.is_terminal:
                print(
                    f"[{state.sweep.name}] t{number} started: {_params(trial.params)}"
                    + (f" (job {trial.job_id})" if trial.job_id else ""),
                    flush=True,
                )
            elif trial.is_terminal:
                outcome = f"{state.spec.metric}={_value(trial.value)}" if trial.value else ""
                best = state.best
                if best is not None and best.number == number:
                    outcome += " (best so far)"
                detail = trial.message if trial.phase != "Succeeded" else ""
                print(
                    f"[{state.sweep.name}] t{number} {trial.phase} in {_duration(trial)} "
                    f"{outcome} {detail}".rstrip(),
                    flush=True,
                )
        if state.phase != "Running" and not self._final_printed:
            self._final_printed = True
            print(format_sweep_table(state), flush=True)

    def close(self) -> None:
        pass


class SweepWidgetView:
    """The live sweep widget, redrawn at most :data:`MAX_FPS` times a second."""

    def __init__(self, fps: float = MAX_FPS, *, echo: bool = False) -> None:
        import ipywidgets as w
        from IPython.display import display

        self.stop_requested = False
        #: Where no page shows the widget, the text view's lines printed as well.
        self.echo = SweepTextView() if echo else None
        self._recorded_at = 0.0
        self.min_interval = 1.0 / fps
        self._drawn_at = 0.0
        self.header = w.HTML()
        self.table = w.HTML()
        self.chart = w.HTML()
        self.stop_button = w.Button(
            description="Stop sweep",
            button_style="danger",
            icon="stop",
            tooltip="Start no more trials and stop the running ones",
        )
        self.stop_button.on_click(lambda _: setattr(self, "stop_requested", True))
        self.widget = w.VBox(
            [self.header, self.table, self.chart, self.stop_button],
            layout=w.Layout(border="1px solid #ddd", padding="6px"),
        )
        starting = "sweep starting"
        self.display = display(
            widget_bundle(self.widget, starting, f"<pre>{starting}</pre>"),
            raw=True,
            display_id=True,
        )

    def refresh(self, state: SweepState) -> None:
        now = time.monotonic()
        final = state.phase != "Running"
        if self.echo is not None:
            self.echo.refresh(state)
        if final or now - self._recorded_at >= RECORD_SECONDS:
            self._recorded_at = now
            table = format_sweep_table(state)
            markup = _header_html(state) + sweep_table_html(state)
            self.display.update(widget_bundle(self.widget, table, markup), raw=True)
        if not final and now - self._drawn_at < self.min_interval:
            return
        self._drawn_at = now
        self.header.value = _header_html(state)
        self.table.value = sweep_table_html(state)
        self.chart.value = objective_chart(state)
        if final:
            self.stop_button.disabled = True

    def close(self) -> None:
        self.stop_button.disabled = True


def _badge(phase: str) -> str:
    color = PHASE_COLORS.get(phase, "#9e9e9e")
    return (
        f"<span style='background:{color};color:white;border-radius:8px;padding:0 6px'>"
        f"{html.escape(phase)}</span>"
    )


def _header_html(state: SweepState) -> str:
    done = sum(1 for t in state.trials.values() if t.is_terminal)
    text = (
        f"<b>{html.escape(state.sweep.name)}</b> &nbsp;{_badge(state.phase)} &nbsp;"
        f"{done}/{state.spec.trials} trials, {len(state.running)} running "
        f"(--parallel {state.spec.parallel}) &nbsp;"
        f"objective {html.escape(state.spec.objective_text)}"
    )
    best = state.best
    if best is not None:
        text += (
            f"<br>best so far: <b>t{best.number}</b> {html.escape(state.spec.metric)}="
            f"<b>{_value(best.value)}</b> ({html.escape(_params(best.params))})"
        )
    if state.message and state.phase != "Running":
        text += f"<br>{html.escape(state.message)}"
    return text


def sweep_table_html(state: SweepState) -> str:
    """The ranked trials as an HTML table, the best row marked, running ones with a bar."""
    names = [p.name for p in state.spec.params]
    head = "".join(
        f"<th style='text-align:left;padding:0 8px'>{html.escape(h)}</th>"
        for h in ["trial", *names, "phase", state.spec.metric, "progress", "time"]
    )
    best = state.best
    body = []
    for trial in state.ranked():
        is_best = best is not None and trial.number == best.number
        style = " style='background:#fff8c4;font-weight:bold'" if is_best else ""
        mark = "★ " if is_best else ""
        shown = trial.value if trial.value is not None else trial.current
        cells = [
            f"{mark}t{trial.number}",
            *(html.escape(_shown(trial.params.get(n))) for n in names),
            _badge(trial.phase),
            _value(shown),
            _bar(trial),
            _duration(trial),
        ]
        row = "".join(f"<td style='padding:0 8px'>{c}</td>" for c in cells)
        body.append(f"<tr{style}>{row}</tr>")
    return f"<table style='border-collapse:collapse'><tr>{head}</tr>{''.join(body)}</table>"


def _bar(trial: TrialInfo) -> str:
    if trial.is_terminal or trial.step is None:
        return ""
    if not trial.total:
        return f"step {trial.step}"
    share = max(0.0, min(1.0, trial.step / trial.total))
    return (
        f"<progress value='{share:.3f}' max='1' style='width:80px'></progress> "
        f"{trial.step}/{trial.total}"
    )


def objective_chart(state: SweepState) -> str:
    """The objective of each finished trial and the best so far, by trial number."""
    scored = sorted(
        (t for t in state.trials.values() if t.value is not None), key=lambda t: t.number
    )
    if not scored:
        return ""
    line = state.best_so_far()
    return svg_chart(
        f"{state.spec.metric} per trial",
        [
            ("objective", [t.number for t in scored], [t.value for t in scored]),
            ("best so far", [n for n, _ in line], [v for _, v in line]),
        ],
        width=420,
        height=140,
        legend=True,
        x_label="trial",
    )


def format_sweep_list(sweeps: list[SweepRecord]) -> str:
    """A plain-text table of sweeps: id, name, phase, trials done / asked, the best."""
    header = ("SWEEP", "NAME", "PHASE", "TRIALS", "OBJECTIVE", "BEST")
    rows = [header]
    for sweep in sweeps:
        options = sweep.spec
        done = sum(1 for t in sweep.trials.values() if t.get("phase") in TERMINAL_PHASES)
        best = sweep.best or {}
        objective = ""
        if "metric" in options:
            short = "min" if options.get("direction") == "minimize" else "max"
            objective = f"{options['metric']}:{short}"
        shown = ""
        if best.get("value") is not None:
            params = _params(best.get("params") or {})
            shown = f"t{best.get('trial')} {_value(best['value'])} ({params})"
        phase = sweep.phase
        if phase == "Running" and not driver_alive(sweep):
            phase = "Stopped"
        rows.append(
            (sweep.id, sweep.name, phase, f"{done}/{options.get('trials', '?')}", objective, shown)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
