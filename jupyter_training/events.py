"""The one event stream every view reads: phase, worker, log, error, report, result.

Backends produce :class:`Event` objects; the magic, the CLI, and later the
widgets and the server's WebSocket consume them. Worker output becomes ``log``
events, and framed records in it (see :mod:`jupyter_training.runtime.records`)
become events of their own kind.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

from .runtime import node, records, reporting

PENDING, RUNNING, RESTARTING = "Pending", "Running", "Restarting"
SUCCEEDED, FAILED, CANCELLED = "Succeeded", "Failed", "Cancelled"
#: A sweep trial its pruner stopped early: neither a failure nor a user's cancel.
PRUNED = "Pruned"
PHASES = (PENDING, RUNNING, RESTARTING, SUCCEEDED, FAILED, CANCELLED, PRUNED)
TERMINAL_PHASES = frozenset({SUCCEEDED, FAILED, CANCELLED, PRUNED})
#: The phases a stop can end a job in (``Backend.cancel``), with the default message.
STOP_PHASES = {CANCELLED: "cancelled by user", PRUNED: "pruned by the sweep"}

#: Event kinds, in the order a job usually produces them.
KINDS = (
    "phase",
    "worker",
    "log",
    "params",
    "context",
    "error",
    "report",
    "checkpoint",
    "result",
)


@dataclasses.dataclass(frozen=True)
class Event:
    """One thing that happened to a job.

    ``phase`` events carry ``data["phase"]`` and ``data["message"]``; ``worker``
    events ``data["state"]`` (started/exited) and ``data["exit_code"]``; ``log``
    events ``data["line"]`` of ``rank``'s output; ``error`` events the remote
    exception of ``rank`` (``exc_type``, ``message``, ``traceback``); ``report``
    events one point of ``rank`` (``step``, ``total``, ``metrics``, and ``seq``,
    which with ``time``, the worker's clock, makes the point unique); ``params``
    events ``data["params"]``; ``context`` events ``data["versions"]`` and ``host``.
    """

    kind: str
    job_id: str
    data: dict[str, Any]
    rank: int | None = None
    time: float = dataclasses.field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(**data)

    @property
    def is_terminal(self) -> bool:
        """True for the phase event that ends the job."""
        return self.kind == "phase" and self.data.get("phase") in TERMINAL_PHASES


def phase_event(job_id: str, phase: str, message: str = "", **extra: Any) -> Event:
    """A ``phase`` event moving ``job_id`` to ``phase``."""
    return Event("phase", job_id, {"phase": phase, "message": message, **extra})


def output_events(job_id: str, rank: int, line: str) -> Iterator[Event]:
    """Events for one line of ``rank``'s output: a ``log`` and/or a record event."""
    tagged, line = node.untag(line)  # a line one of a multi-rank pod's ranks printed
    rank = rank if tagged is None else tagged
    text, record = records.split(line)
    if text or record is None:
        yield Event("log", job_id, {"line": text}, rank=rank)
    if record is not None:
        kind = record.pop("type")
        if kind == "reports":  # a batch of points (see runtime.reporting)
            yield from _report_events(job_id, rank, record)
            return
        yield Event(kind if kind in KINDS else "log", job_id, record, rank=rank)


def _report_events(job_id: str, rank: int, record: dict[str, Any]) -> Iterator[Event]:
    try:
        points = reporting.unpack_points(record)
    except (KeyError, TypeError, ValueError) as err:
        yield Event("log", job_id, {"line": f"[jupyter-training] unreadable reports: {err}"}, rank)
        return
    for when, seq, step, total, metrics in points:
        data = {"step": step, "total": total, "metrics": metrics, "seq": seq, "rank": rank}
        yield Event("report", job_id, data, rank=rank, time=when)


class LineSplitter:
    """Turns chunks of bytes into complete text lines, keeping the partial tail."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> list[str]:
        data = self._tail + chunk
        *lines, self._tail = data.split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]

    def flush(self) -> list[str]:
        """The unterminated last line, if any (call once the stream has ended)."""
        tail, self._tail = self._tail, b""
        return [tail.decode("utf-8", "replace")] if tail else []
