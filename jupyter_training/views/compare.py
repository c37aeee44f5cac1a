"""``%train_compare``'s view: params and final metrics side by side, curves overlaid.

HTML (a table with the differing params highlighted and the best run marked,
then one SVG chart per metric with a line per run) inside a small ipywidgets
view (objective and mode pickers, "only params that differ") where widgets
render, and the same table as text everywhere else.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any

from ..tracking.compare import MISSING, Comparison
from .charts import svg_chart

HIGHLIGHT = "#fff3cd"
BEST = "#e8f5e9"


def compare_text(comparison: Comparison) -> str:
    """The comparison as a plain-text table (params marked ``*`` where runs differ)."""
    runs = comparison.runs
    best = comparison.best
    header = ["", *(f"{r.name} ({r.id[:6]})" + (" *best*" if r.id == best else "") for r in runs)]
    rows = [header, ["phase", *(r.phase for r in runs)]]
    for param in comparison.params:
        mark = "* " if param in comparison.differing else "  "
        rows.append([f"{mark}{param}", *(_show(comparison.value(r, param)) for r in runs)])
    for metric in comparison.metrics:
        rows.append([f"  {metric}", *(_show((r.metrics or {}).get(metric, MISSING)) for r in runs)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    objective = comparison.objective
    if objective is not None:
        winner = next((r for r in runs if r.id == best), None)
        verdict = f"{winner.name} ({winner.id})" if winner else "no run reported it"
        lines.append(f"best by {objective.metric}:{objective.mode}: {verdict}")
    if comparison.differing:
        lines.append("* params that differ between these runs")
    return "\n".join(lines)


def compare_html(comparison: Comparison, *, width: int = 340, height: int = 140) -> str:
    """The comparison as HTML: the table, then one overlaid chart per metric."""
    runs = comparison.runs
    best = comparison.best
    head = "".join(
        f"<th style='text-align:left;{_best_style(r.id == best)}'>{html.escape(r.name)}"
        f"<br><code style='font-size:10px'>{r.id}</code>"
        + ("<br><b>&#9733; best</b>" if r.id == best else "")
        + "</th>"
        for r in runs
    )
    body = [_html_row("phase", [r.phase for r in runs], False, kind="run")]
    for param in comparison.params:
        values = [_show(comparison.value(r, param)) for r in runs]
        body.append(_html_row(param, values, param in comparison.differing))
    for metric in comparison.metrics:
        values = [_show((r.metrics or {}).get(metric, MISSING)) for r in runs]
        label = metric
        if comparison.objective and comparison.objective.metric == metric:
            label += f" ({comparison.objective.mode})"
        body.append(_html_row(label, values, False, kind="metric"))
    table = (
        "<table class='jt-compare'><thead><tr><th></th>"
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )
    charts = [
        svg_chart(
            metric,
            [(f"{c.name} ({c.run_id[:6]})", c.x, c.y) for c in curves],
            width=width,
            height=height,
            legend=True,
        )
        for metric, curves in comparison.curves.items()
    ]
    note = (
        f"<div style='font-size:11px'>highlighted: params that differ; &#9733;: best by "
        f"{html.escape(comparison.objective.metric)}:{comparison.objective.mode}</div>"
        if comparison.objective
        else ""
    )
    return (
        f"<div class='jt-compare-view'>{table}{note}"
        f"<div style='display:flex;flex-wrap:wrap;margin-top:6px'>{''.join(charts)}</div></div>"
    )


def _html_row(label: str, values: list[str], differs: bool, kind: str = "param") -> str:
    style = f"background:{HIGHLIGHT};" if differs else ""
    weight = "font-weight:bold;" if differs else ""
    cells = "".join(f"<td style='text-align:left;{style}'>{html.escape(v)}</td>" for v in values)
    return (
        f"<tr class='jt-{kind}{' jt-differs' if differs else ''}'>"
        f"<td style='text-align:left;{style}{weight}'>{html.escape(label)}</td>{cells}</tr>"
    )


def _best_style(is_best: bool) -> str:
    return f"background:{BEST};" if is_best else ""


def _show(value: Any) -> str:
    if value is MISSING:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class CompareWidget:
    """``%train_compare`` as an ipywidgets view: pick the objective metric and its mode,
    or show only the params that differ, and the table and charts redraw."""

    def __init__(self, comparison: Comparison) -> None:
        import ipywidgets as w

        self.comparison = comparison
        objective = comparison.objective
        self.metric = w.Dropdown(
            options=comparison.metrics or ["-"],
            value=objective.metric if objective else None,
            description="Best by",
            layout=w.Layout(width="220px"),
        )
        self.mode = w.ToggleButtons(
            options=[("lowest", "min"), ("highest", "max")],
            value=objective.mode if objective else "min",
            style={"button_width": "70px"},
        )
        self.only_differing = w.Checkbox(value=False, description="only params that differ")
        self.page = w.HTML()
        for control in (self.metric, self.mode, self.only_differing):
            control.observe(self._changed, names="value")
        controls = w.HBox([self.metric, self.mode, self.only_differing])
        self.widget = w.VBox([controls, self.page])
        self.draw()

    def _changed(self, _change: Any) -> None:
        from ..tracking.compare import Objective, best_run

        if self.comparison.metrics:
            objective = Objective(self.metric.value, self.mode.value)
            self.comparison.objective = objective
            self.comparison.best = best_run(self.comparison.runs, objective)
        self.draw()

    def draw(self) -> None:
        shown = self.comparison
        if self.only_differing.value:
            shown = dataclasses.replace(shown, params=list(shown.differing))
        self.page.value = compare_html(shown)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/plain"] = compare_text(self.comparison)
        return bundle
