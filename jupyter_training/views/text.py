"""The plain-text view of a job and the job tables, for terminals and text outputs.

:class:`TextJobView` renders a :class:`~jupyter_training.views.progress.JobProgress`
line by line: phases, rank-prefixed output (rate-limited), and rank 0's
progress, tqdm-style. It works in JupyterLab, terminal IPython, nbclient and
the ``jupyter training`` command alike. :func:`format_job_table` is the job
list as plain text.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..events import Event
from ..store import JobRecord
from .progress import JobProgress

UNLIMITED = 1 << 62


class TextJobView:
    """Prints a job's events as lines: phases, rate-limited output, periodic progress."""

    def __init__(
        self,
        record: JobRecord,
        stream: TextIO | None = None,
        max_lines_per_second: int = 200,
        *,
        progress: JobProgress | None = None,
    ) -> None:
        self.record = record
        #: Folded by :meth:`handle`; a view that echoes this one's lines passes its own.
        self.progress = progress if progress is not None else JobProgress(record)
        self.stream = stream
        self.width = len(str(max(record.world_size - 1, 0)))
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
        gpus = f", {spec.gpus} GPU(s) each" if spec.gpus else ""
        nproc = self.record.nproc_per_worker
        procs = f" x {nproc} processes ({self.record.world_size} ranks)" if nproc > 1 else ""
        elastic = f" (elastic, at least {spec.min_workers})" if spec.min_workers else ""
        self.out.write(
            f"[{self.record.name}] job {self.record.id}: {spec.framework}, "
            f"{_plural(spec.workers, 'worker')}{elastic}{procs}{gpus}, backend {spec.backend}\n"
        )
        if self.record.parent_id:
            self.out.write(
                f"[{self.record.name}] resumes job {self.record.parent_id}: its checkpoints "
                f"(lineage {self.record.lineage}) are where latest_checkpoint() looks\n"
            )

    def handle(self, event: Event) -> None:
        """Fold in and print one event."""
        self.progress.apply(event)
        self.write(event)
        self.out.flush()

    def write(self, event: Event) -> None:
        """Print one event already folded into :attr:`progress` (a view that echoes its
        lines shares it); unflushed, so a kernel sends many lines as one stream message."""
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
        saved = self.progress.checkpoints
        mark = f" (checkpoint: step {saved[-1]})" if saved else ""
        line = f"[{self.record.name}] rank 0: {bar}{_format_metrics(state.metrics)}{mark}\n"
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
