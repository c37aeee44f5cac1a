"""Inline SVG line charts for the notebook: one or many series on shared axes.

SVG needs no library and renders wherever HTML does: JupyterLab, Notebook,
VS Code, nbviewer, a papermill or jupyter-scheduler output. Series come in
already thinned (``tracking.envelope``), so a chart has a few thousand points
at most however long the runs were.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

#: Distinct line colors (Tableau 10), one per run or rank.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)

Series = tuple[str, Sequence[float], Sequence[float]]


def svg_chart(
    title: str,
    series: Sequence[Series],
    *,
    width: int = 300,
    height: int = 110,
    legend: bool = False,
    x_label: str = "step",
) -> str:
    """An SVG chart titled ``title`` of ``(label, xs, ys)`` series, each in its own color;
    the x axis is labelled ``x_label`` (at its last value)."""
    lines = []
    for label, xs, ys in series:
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and math.isfinite(y)]
        if points:
            lines.append((label, points))
    if not lines:
        return ""
    all_x = [x for _, pts in lines for x, _ in pts]
    all_y = [y for _, pts in lines for _, y in pts]
    x0, x1 = min(all_x), max(all_x)
    y0, y1 = min(all_y), max(all_y)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    pad = 18
    polylines = []
    for index, (label, points) in enumerate(lines):
        coords = " ".join(
            f"{pad + (x - x0) / (x1 - x0) * (width - 2 * pad):.1f},"
            f"{height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad):.1f}"
            for x, y in points
        )
        color = PALETTE[index % len(PALETTE)]
        polylines.append(
            f"<polyline fill='none' stroke='{color}' stroke-width='1.5' points='{coords}'>"
            f"<title>{html.escape(label)}</title></polyline>"
        )
    subtitle = f"(last {lines[0][1][-1][1]:.4g})" if len(lines) == 1 else ""
    chart = (
        f"<svg width='{width}' height='{height}' style='margin-right:8px;background:#fafafa'>"
        f"<text x='{pad}' y='12' font-size='11'>{html.escape(title)} {subtitle}</text>"
        f"<text x='{width - pad}' y='{height - 4}' font-size='9' text-anchor='end'>"
        f"{html.escape(x_label)} {x1:g}</text>"
        f"<text x='2' y='{pad + 4}' font-size='9'>{y1:.3g}</text>"
        f"<text x='2' y='{height - 4}' font-size='9'>{y0:.3g}</text>"
        + "".join(polylines)
        + "</svg>"
    )
    if not legend:
        return chart
    keys = "".join(
        f"<span style='margin-right:10px;white-space:nowrap'><span style='display:inline-block;"
        f"width:10px;height:3px;background:{PALETTE[i % len(PALETTE)]};vertical-align:middle'>"
        f"</span> {html.escape(label)}</span>"
        for i, (label, _) in enumerate(lines)
    )
    return (
        f"<div style='display:inline-block'>{chart}<div style='font-size:11px'>{keys}</div></div>"
    )
