"""Keeps a run in the store as its events stream past: every metric point, params, context.

Whoever follows a job (the kernel's view, the server's monitor, or a replay of a
finished local job) feeds its events to a :class:`RunRecorder`. Points are
written in batches; a point's worker time and sequence number make it unique,
so two followers of one job store it once. Each series also keeps a thinned
chart preview (:mod:`.envelope`), and rank 0's last values become the run's
final metrics.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from ..events import Event
from ..store import JobStore
from .envelope import Envelope

FLUSH_SECONDS = 1.0
FLUSH_POINTS = 20_000
#: Buckets of a chart preview (at most about twice as many points).
PREVIEW_BUCKETS = 1000


class RunRecorder:
    """Folds one job's events into the store."""

    def __init__(self, store: JobStore, job_id: str, *, mlflow_uri: str | None = None) -> None:
        self.store = store
        self.job_id = job_id
        self.mlflow_uri = mlflow_uri
        self._points: list[tuple[str, int, float, int, int | None, float | None]] = []
        self._envelopes: dict[tuple[str, int], Envelope] = {}
        self._counts: dict[tuple[str, int], int] = {}
        self._dirty: set[tuple[str, int]] = set()
        self._final: dict[str, float] = {}
        self._final_changed = False
        self._params: dict[str, Any] = {}
        self._context: dict[str, Any] = {}
        self._last_flush = time.monotonic()
        self._exporting = False
        self._lock = threading.RLock()

    def feed(self, event: Event) -> None:
        """Take one event; writes go out in batches (see :meth:`flush`)."""
        with self._lock:
            self._feed(event)

    def _feed(self, event: Event) -> None:
        if event.kind == "report":
            self._on_report(event)
        elif event.kind == "params":
            self._params.update(event.data.get("params") or {})
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
        for name, value in (data.get("metrics") or {}).items():
            key = (name, rank)
            index = self._counts.get(key, 0)
            self._counts[key] = index + 1
            seq = data.get("seq")
            finite = isinstance(value, int | float) and not math.isnan(value)
            self._points.append(
                (
                    name,
                    rank,
                    event.time,
                    index if seq is None else seq,
                    step,
                    value if finite else None,
                )
            )
            envelope = self._envelopes.get(key)
            if envelope is None:  # envelopes keep the order metrics were first reported
                envelope = self._envelopes[key] = Envelope(PREVIEW_BUCKETS)
            self._dirty.add(key)
            if finite:
                envelope.add(float(step if step is not None else index), float(value))
                if rank == 0:
                    self._final[name] = value
                    self._final_changed = True

    def flush_if_due(self) -> None:
        """Write what waits if the last write is a flush interval old (a job gone quiet
        must not keep its last points to itself); safe from another thread."""
        with self._lock:
            if time.monotonic() - self._last_flush >= FLUSH_SECONDS and self._pending():
                self.flush()

    def _pending(self) -> bool:
        return bool(self._points or self._dirty or self._params or self._context)

    def flush(self) -> None:
        """Write what has been taken since the last flush."""
        self._last_flush = time.monotonic()
        points, self._points = self._points, []
        self.store.add_points(self.job_id, points)
        previews = []
        for name, rank in [key for key in self._envelopes if key in self._dirty]:
            envelope = self._envelopes[(name, rank)]
            kept = envelope.points()
            previews.append(
                (name, rank, self._counts[(name, rank)], [p[0] for p in kept], [p[1] for p in kept])
            )
        self._dirty.clear()
        self.store.save_previews(self.job_id, previews)
        if self._params:
            self.store.merge(self.job_id, "params", self._params)
            self._params = {}
        if self._context:
            self.store.merge(self.job_id, "context", self._context)
            self._context = {}
        if self._final_changed:
            self._final_changed = False
            self.store.update(self.job_id, metrics=dict(self._final))

    def close(self, *, complete: bool) -> None:
        """Write the rest; ``complete`` when the stream ran to the job's end."""
        with self._lock:
            self.flush()
        if complete:
            self.store.update(self.job_id, history_done=1)
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
    except Exception as err:  # MLflow missing or broken: the job and its history go on
        _warn_once(mlflow_uri, err)


_WARNED: set[str] = set()


def _warn_once(uri: str, err: Exception) -> None:
    if uri in _WARNED:
        return
    _WARNED.add(uri)
    import warnings

    warnings.warn(
        f"jupyter-training: jobs are not logged to MLflow at {uri}: {err} "
        "(install mlflow-skinny, or unset MLFLOW_TRACKING_URI / c.TrainingApp.mlflow_tracking_uri)",
        RuntimeWarning,
        stacklevel=2,
    )
