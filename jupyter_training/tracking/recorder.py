"""Keeps a run in the store as its events stream past: every metric point, params, context.

Whoever follows a job (the kernel's view, the server's monitor, or a replay of a
finished local job) feeds its events to a :class:`RunRecorder`. Points are
written in batches; a point's worker time and sequence number make it unique,
so two followers of one job store it once. Each series also keeps a thinned
chart preview (:mod:`.envelope`), and rank 0's last values become the run's
final metrics. A follower that has seen less than another (one still catching
up, or one interrupted halfway) never overwrites what the other wrote.

The recorder never raises into the view that feeds it: a failed write keeps its
data for the next try, warns once, and leaves the history marked incomplete.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from ..events import Event
from ..store import JobStore
from .envelope import PREVIEW_BUCKETS, Envelope

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
FLUSH_POINTS = 20_000
#: A series' preview is rewritten when it has grown this much, or this long after the last.
PREVIEW_GROWTH = 0.1
PREVIEW_SECONDS = 5.0

Key = tuple[str, int]


class RunRecorder:
    """Folds one job's events into the store (thread-safe: a timer may flush it)."""

    def __init__(self, store: JobStore, job_id: str, *, mlflow_uri: str | None = None) -> None:
        self.store = store
        self.job_id = job_id
        self.mlflow_uri = mlflow_uri
        self._points: list[tuple[str, int, float, int, int | None, float | None]] = []
        self._envelopes: dict[Key, Envelope] = {}
        self._counts: dict[Key, int] = {}
        self._written: dict[Key, tuple[int, float]] = {}  # preview: (count, when) last written
        self._final: dict[str, tuple[float | None, int]] = {}  # rank 0: (value, count)
        self._final_changed = False
        self._params: dict[str, Any] = {}
        self._checkpoints: list[dict[str, Any]] = []
        self._context: dict[str, Any] = {}
        self._last_flush = time.monotonic()
        self._exporting = False
        self._failed = False
        self._warned = False
        self._lock = threading.RLock()

    def feed(self, event: Event) -> None:
        """Take one event; writes go out in batches (see :meth:`flush`)."""
        with self._lock:
            if event.kind == "report":
                self._on_report(event)
            elif event.kind == "params":
                self._params.update(event.data.get("params") or {})
            elif event.kind == "checkpoint":
                when = event.data.get("time", event.time)  # the worker's clock
                self._checkpoints.append({"step": event.data.get("step"), "time": when})
            elif event.kind == "context":
                self._context.update(
                    versions=event.data.get("versions") or {}, worker_host=event.data.get("host")
                )
            else:
                return
            if not self._exporting and self.mlflow_uri:
                self._start_export()
            if (
                len(self._points) >= FLUSH_POINTS
                or time.monotonic() - self._last_flush >= FLUSH_SECONDS
            ):
                self.flush()

    def _on_report(self, event: Event) -> None:
        data = event.data
        rank = event.rank if event.rank is not None else int(data.get("rank") or 0)
        step = data.get("step")
        seq = data.get("seq")
        for name, value in (data.get("metrics") or {}).items():
            key = (name, rank)
            index = self._counts.get(key, 0)
            self._counts[key] = index + 1
            number = isinstance(value, int | float) and not math.isnan(value)
            order = index if seq is None else seq
            self._points.append((name, rank, event.time, order, step, value if number else None))
            envelope = self._envelopes.get(key)
            if envelope is None:  # envelopes keep the order metrics were first reported
                envelope = self._envelopes[key] = Envelope(PREVIEW_BUCKETS)
            if number and math.isfinite(value):
                envelope.add(float(step if step is not None else order), float(value))
            if rank == 0:  # a run that ended on nan or inf ends on "no value"
                final = value if number and math.isfinite(value) else None
                self._final[name] = (final, index + 1)
                self._final_changed = True

    def flush_if_due(self) -> None:
        """Write what waits if the last write is a flush interval old (a job gone quiet
        must not keep its last points to itself); safe from another thread."""
        with self._lock:
            if time.monotonic() - self._last_flush >= FLUSH_SECONDS and self._pending():
                self.flush()

    def _pending(self) -> bool:
        waiting = self._points or self._params or self._context or self._checkpoints
        return bool(waiting or self._final_changed) or any(
            self._counts[key] != written[0] for key, written in self._written.items()
        )

    def flush(self, *, final: bool = False) -> bool:
        """Write what has been taken since the last flush; False (data kept for the next
        try, one warning) when the store refused."""
        with self._lock:
            self._last_flush = time.monotonic()
            try:
                self._write(final)
            except Exception as err:  # e.g. the database stayed locked past its timeout
                self._failed = True
                if not self._warned:
                    self._warned = True
                    log.warning("jupyter-training: recording job %s: %s", self.job_id, err)
                return False
            return True

    def _write(self, final: bool) -> None:
        if self._points:
            self.store.add_points(self.job_id, self._points)
            self._points = []
        now = time.monotonic()
        previews = []
        for key, envelope in self._envelopes.items():
            count = self._counts[key]
            written, when = self._written.get(key, (0, 0.0))
            if count == written:
                continue
            grown = count - written >= max(1, int(written * PREVIEW_GROWTH))
            if final or grown or now - when >= PREVIEW_SECONDS:
                kept = envelope.points()
                previews.append((*key, count, [p[0] for p in kept], [p[1] for p in kept]))
        self.store.save_previews(self.job_id, previews)
        for name, rank, count, *_ in previews:
            self._written[(name, rank)] = (count, now)
        if self._params:
            self.store.merge(self.job_id, "params", self._params)
            self._params = {}
        if self._context:
            self.store.merge(self.job_id, "context", self._context)
            self._context = {}
        if self._checkpoints:
            self.store.add_checkpoints(self.job_id, self._checkpoints)
            self._checkpoints = []
        if self._final_changed:
            self.store.set_final_metrics(self.job_id, dict(self._final))
            self._final_changed = False

    def close(self, *, complete: bool) -> None:
        """Write the rest; ``complete`` when the stream ran to the job's end (the history
        is then marked whole, unless a write failed)."""
        with self._lock:
            written = self.flush(final=True)
            if complete and written and not self._failed:
                try:
                    self.store.update(self.job_id, history_done=1)
                except Exception as err:
                    log.warning("jupyter-training: recording job %s: %s", self.job_id, err)
        if self.mlflow_uri:  # again: an exporter that gave up earlier resumes now
            self._start_export()

    def _start_export(self) -> None:
        self._exporting = True
        start_export(self.store, self.job_id, self.mlflow_uri)


def start_export(store: JobStore, job_id: str, mlflow_uri: str | None) -> None:
    """Log ``job_id`` to MLflow in the background, if a tracking URI is configured."""
    if not mlflow_uri:
        return
    try:
        from .mlflow import exporter_for

        exporter_for(store, mlflow_uri).start(job_id)
    except Exception as err:  # MLflow broken: the job and its history go on
        log.warning("jupyter-training: jobs are not logged to MLflow at %s: %s", mlflow_uri, err)
