"""Views of a running job in the notebook.

:class:`TextJobView` prints phase changes and every rank's output as it
arrives, prefixed by its rank; it works in JupyterLab, terminal IPython and
under nbclient/papermill alike.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .events import Event
from .store import JobRecord


class TextJobView:
    """Prints a job's events as lines of text."""

    def __init__(self, record: JobRecord, stream: TextIO | None = None) -> None:
        self.record = record
        self.stream = stream
        self.width = len(str(max(record.workers - 1, 0)))

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
        """Print one event."""
        if event.kind == "log":
            self.out.write(f"[rank {event.rank:>{self.width}}] {event.data.get('line', '')}\n")
        elif event.kind == "phase" and not event.is_terminal:  # show_finished reports it
            message = event.data.get("message") or ""
            phase = event.data["phase"]
            self.out.write(
                f"[{self.record.name}] {phase}" + (f": {message}" if message else "") + "\n"
            )
        elif event.kind == "worker" and event.data.get("state") == "exited":
            code = event.data.get("exit_code")
            if code:
                self.out.write(f"[{self.record.name}] rank {event.rank} exited with code {code}\n")
        self.out.flush()

    def show_finished(self, record: JobRecord) -> None:
        if record.started and record.finished:
            took = f" in {record.finished - record.started:.1f} s"
        else:
            took = ""
        self.out.write(f"[{record.name}] {record.phase}{took}\n")
        self.out.flush()


def format_job_table(records: list[JobRecord]) -> str:
    """A plain-text table of jobs, newest first."""
    header = ("ID", "NAME", "PHASE", "FRAMEWORK", "BACKEND", "WORKERS", "GPUS", "AGE")
    rows = [header]
    now = time.time()
    for r in records:
        age = _duration(now - r.created)
        rows.append(
            (r.id, r.name, r.phase, r.framework, r.backend, str(r.workers), str(r.gpus), age)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"
