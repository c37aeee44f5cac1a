"""A job's readable record: the plain-text and HTML stand-ins of its live view.

A saved notebook keeps, beside a widget's model id, what the display offered
as ``text/plain`` and ``text/html``; that is what GitHub, ``nbconvert --to
markdown`` and a terminal show. These functions render the job's state there:
name, id, phase, workers, elapsed time, each rank's phase, progress and last
metrics, the failure, and the last lines of output (bounded).
"""

from __future__ import annotations

import html
from typing import Any

from ..store import JobRecord
from .progress import JobProgress
from .text import _clock, _format_metrics

#: Output lines the record keeps (the newest).
TAIL_LINES = 20
#: Ranks listed one per line (the rest are counted).
RANK_LINES = 16


def summary_text(progress: JobProgress, record: JobRecord, tail: int = TAIL_LINES) -> str:
    """The job's state as plain text."""
    spec = record.spec
    gpus = f" x {spec.gpus} GPU" if spec.gpus else ""
    lines = [
        f"{record.name} ({record.id}): {progress.phase} · {spec.framework} · "
        f"{spec.workers} workers{gpus} · {record.backend} · {_clock(progress.elapsed())}"
    ]
    if progress.message:
        lines.append(progress.message)
    for rank in sorted(progress.ranks)[:RANK_LINES]:
        lines.append(f"  rank {rank}: {_rank_text(progress, rank)}")
    if len(progress.ranks) > RANK_LINES:
        lines.append(f"  ... and {len(progress.ranks) - RANK_LINES} more ranks")
    failure = _failure_text(record)
    if failure:
        lines.append(failure)
    output = progress.log_lines()[-tail:]
    if output:
        skipped = progress.total_lines - len(output)
        lines.append(f"last {len(output)} of {progress.total_lines} output lines:")
        if skipped > 0:
            lines.append(f"  (%train_logs {record.id} prints all {progress.total_lines})")
        lines.extend(f"  {line}" for line in output)
    return "\n".join(lines)


def summary_html(progress: JobProgress, record: JobRecord, tail: int = TAIL_LINES) -> str:
    """The same state as HTML (a ``<pre>``: it reads the same everywhere)."""
    return (
        "<pre style='white-space:pre-wrap'>"
        + html.escape(summary_text(progress, record, tail))
        + "</pre>"
    )


def _rank_text(progress: JobProgress, rank: int) -> str:
    state = progress.ranks[rank]
    parts = [state.phase + (f" ({state.detail.strip()})" if state.detail.strip() else "")]
    if state.step is not None:
        parts.append(f"step {state.step}/{state.total}" if state.total else f"step {state.step}")
    if state.metrics:
        parts.append(_format_metrics(state.metrics))
    return " · ".join(parts)


def _failure_text(record: JobRecord) -> str:
    failure: dict[str, Any] = record.failure or {}
    if not failure.get("reason"):
        return ""
    text = f"failure: {failure['reason']}"
    trace = (failure.get("traceback") or "").strip().splitlines()
    if trace:
        text += "\n" + "\n".join(f"  {line}" for line in trace[-8:])
    return text
