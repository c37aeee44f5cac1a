"""Server-side fan-out of job updates and event streams to WebSocket clients.

The monitor tails the store's change feed (every kernel, supervisor, sweep
driver and server appends job and sweep ids to it), follows every unfinished
job's event stream (watches for Kubernetes, file tails locally) to keep live
metrics and the store current, and pushes job and sweep updates to sockets
through the server's event loop.
No client polls, and nothing here polls a backend on a timer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from ..client import TrainingClient
from ..events import RUNNING, TERMINAL_PHASES, Event
from ..store import JobNotFound, JobRecord, SweepRecord
from ..sweeps.launch import driver_alive
from ..tracking.recorder import RunRecorder

log = logging.getLogger(__name__)

FEED_TAIL_SECONDS = 0.1
METRICS_PUSH_SECONDS = 1.0
RECORD_FLUSH_SECONDS = 1.0
#: Most log lines per second one subscription forwards to a browser.
LOG_LINES_PER_SECOND = 500

Send = Callable[[dict[str, Any]], None]


class JobMonitor:
    """Follows jobs for the server and fans their updates out to subscribers."""

    def __init__(self, client: TrainingClient) -> None:
        self.client = client
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.listeners: dict[int, Send] = {}
        self.followed: set[str] = set()
        self.metrics: dict[str, dict[str, float]] = {}
        self._metrics_pushed: dict[str, float] = {}
        self.recorders: dict[str, RunRecorder] = {}

    def start(self) -> None:
        threading.Thread(target=self._tail_feed, name="jt-feed", daemon=True).start()
        threading.Thread(target=self._flush_recorders, name="jt-record", daemon=True).start()
        for record in self.client.store.list(limit=500):
            if not record.is_terminal:
                self.follow(record.id)

    def stop(self) -> None:
        self.stopping.set()

    # -- listeners ------------------------------------------------------------------------------

    def add_listener(self, send: Send) -> int:
        with self.lock:
            key = id(send)
            self.listeners[key] = send
        return key

    def remove_listener(self, key: int) -> None:
        with self.lock:
            self.listeners.pop(key, None)

    def broadcast(self, message: dict[str, Any]) -> None:
        with self.lock:
            listeners = list(self.listeners.values())
        for send in listeners:
            send(message)

    def job_message(self, record: JobRecord) -> dict[str, Any]:
        return {"type": "job", "job": self.job_json(record)}

    def job_json(self, record: JobRecord) -> dict[str, Any]:
        """A job as the REST API and the WebSocket show it (with live metrics)."""
        data = record.summary()
        metrics = self.metrics.get(record.id) or record.metrics
        if metrics:  # JSON has no nan or inf: a run that ended on one shows null
            metrics = {k: v if _finite(v) else None for k, v in metrics.items()}
        data["metrics"] = metrics
        data["checkpoints"] = _distinct_steps(record.checkpoints or [])
        # Each attempt's worker count (an elastic job may shrink): [{"attempt", "workers"}].
        attempts = (record.context or {}).get("attempts")
        data["attempts"] = attempts if isinstance(attempts, list) else []
        return data

    def lineage_json(self, record: JobRecord) -> list[dict[str, Any]]:
        """The resume chain ``record`` belongs to, oldest first: each job's id, name, phase,
        the job it resumed, when it was created and ended, and how many checkpoints it saved
        (``GET /jobs/ID``'s ``lineage_jobs``)."""
        chain = []
        for job in self.client.store.lineage_jobs(record.lineage or record.id):
            summary = job.summary()
            chain.append(
                {
                    key: summary[key]
                    for key in ("id", "name", "phase", "parent_id", "created", "finished")
                }
                | {"checkpoints": len(_distinct_steps(job.checkpoints or []))}
            )
        return chain

    def sweep_message(self, sweep: SweepRecord) -> dict[str, Any]:
        return {"type": "sweep", "sweep": self.sweep_json(sweep)}

    def sweep_json(self, sweep: SweepRecord) -> dict[str, Any]:
        """A sweep as the REST API and the WebSocket show it: its record, how many trials
        run and have ended, and whether it stopped without ending (its driver is gone)."""
        data = sweep.to_dict()
        data["trials"] = {n: _finite_value(t) for n, t in sweep.trials.items()}
        data["best"] = _finite_value(sweep.best) if sweep.best else None
        phases = [self._trial_phase(trial) for trial in sweep.trials.values()]
        done = sum(phase in TERMINAL_PHASES for phase in phases)
        data.update(
            running=len(phases) - done,
            done=done,
            stopped=sweep.phase == RUNNING and not driver_alive(sweep),
        )
        return data

    def _trial_phase(self, trial: dict[str, Any]) -> str | None:
        """The trial's phase; an unfinished one's from its job (the driver writes a trial's
        entry as it starts and ends, its job's phase moves in between)."""
        phase = trial.get("phase")
        if phase not in TERMINAL_PHASES and trial.get("job"):
            with contextlib.suppress(JobNotFound):
                phase = self.client.store.get(trial["job"]).phase
        return phase

    # -- the change feed -----------------------------------------------------------------------

    def _tail_feed(self) -> None:
        path = self.client.store.change_feed
        offset = path.stat().st_size if path.exists() else 0
        tail = b""
        while not self.stopping.is_set():
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size < offset:  # truncated by a writer: start over
                offset, tail = 0, b""
            if size == offset:
                time.sleep(FEED_TAIL_SECONDS)
                continue
            with open(path, "rb") as feed:
                feed.seek(offset)
                chunk = feed.read(size - offset)
            offset += len(chunk)
            *lines, tail = (tail + chunk).split(b"\n")
            changed = []
            for line in lines:
                try:
                    record_id = json.loads(line)["id"]
                except (ValueError, KeyError, TypeError):
                    continue
                if isinstance(record_id, str) and record_id not in changed:
                    changed.append(record_id)
            for record_id in changed:
                try:
                    self._changed(record_id)
                except Exception as err:  # a locked or odd record must not stop the feed
                    log.warning("jupyter-training: change of %s not pushed: %s", record_id, err)

    def _changed(self, record_id: str) -> None:
        """Push the job or the sweep with this id (the feed carries both)."""
        try:
            record = self.client.store.get(record_id)
        except JobNotFound:
            self._sweep_changed(record_id)
            return
        self.broadcast(self.job_message(record))
        # A job may run to its end between two looks at the feed (a warm start takes
        # tens of milliseconds): following it then replays its files into the history.
        if not record.is_terminal or (record.started and not record.history_done):
            self.follow(record.id)

    def _sweep_changed(self, sweep_id: str) -> None:
        try:
            sweep = self.client.store.get_sweep(sweep_id)
        except JobNotFound:
            return  # neither (a job since deleted, or a line of another version)
        if sweep.id == sweep_id:  # get_sweep also takes prefixes and names
            self.broadcast(self.sweep_message(sweep))

    # -- following jobs --------------------------------------------------------------------------

    def follow(self, job_id: str) -> None:
        """Follow an unfinished job's events (once) for live metrics and status."""
        with self.lock:
            if job_id in self.followed:
                return
            self.followed.add(job_id)
        threading.Thread(
            target=self._follow, args=(job_id,), name=f"jt-follow-{job_id}", daemon=True
        ).start()

    def _follow(self, job_id: str) -> None:
        recorder = RunRecorder(
            self.client.store, job_id, mlflow_uri=self.client.settings.mlflow_uri
        )
        with self.lock:
            self.recorders[job_id] = recorder
        ended = False
        try:
            for event in self.client.events(job_id, stop=self.stopping):
                recorder.feed(event)
                ended = ended or event.is_terminal
                if event.kind == "report" and event.rank == 0 and event.data.get("metrics"):
                    self._update_metrics(job_id, event.data["metrics"])
        except Exception as err:  # a broken stream must not take the server down
            log.warning("jupyter-training: following job %s stopped: %s", job_id, err)
        finally:
            try:
                recorder.close(complete=ended)  # announces the change
            except Exception as err:
                log.warning("jupyter-training: recording job %s failed: %s", job_id, err)
            with self.lock:
                self.followed.discard(job_id)
                self.recorders.pop(job_id, None)

    def _flush_recorders(self) -> None:
        """Once a second, write what jobs gone quiet reported last (the follow threads
        write only when the next event comes)."""
        while not self.stopping.wait(RECORD_FLUSH_SECONDS):
            with self.lock:
                recorders = list(self.recorders.values())
            for recorder in recorders:
                try:
                    recorder.flush_if_due()
                except Exception as err:  # a locked store now is retried next second
                    log.warning("jupyter-training: recording job %s: %s", recorder.job_id, err)

    def _update_metrics(self, job_id: str, metrics: dict[str, float]) -> None:
        self.metrics.setdefault(job_id, {}).update(metrics)
        now = time.monotonic()
        if now - self._metrics_pushed.get(job_id, 0.0) >= METRICS_PUSH_SECONDS:
            self._metrics_pushed[job_id] = now
            with contextlib.suppress(JobNotFound):
                self.broadcast(self.job_message(self.client.store.get(job_id)))

    # -- per-client job subscriptions ------------------------------------------------------------

    def subscribe(self, job_id: str, send: Send) -> threading.Event:
        """Replay ``job_id``'s events from its start to ``send``; set the returned event to stop."""
        stop = threading.Event()
        threading.Thread(
            target=self._stream,
            args=(job_id, send, stop),
            name=f"jt-subscribe-{job_id}",
            daemon=True,
        ).start()
        return stop

    def _stream(self, job_id: str, send: Send, stop: threading.Event) -> None:
        window, sent, dropped = time.monotonic(), 0, 0
        try:
            for event in self.client.events(job_id, stop=stop):
                if stop.is_set() or self.stopping.is_set():
                    return
                if event.kind == "log":
                    now = time.monotonic()
                    if now - window >= 1.0:
                        if dropped:
                            send(_event_message(job_id, _dropped(job_id, dropped)))
                        window, sent, dropped = now, 0, 0
                    if sent >= LOG_LINES_PER_SECOND:
                        dropped += 1
                        continue
                    sent += 1
                send(_event_message(job_id, event))
            if dropped:
                send(_event_message(job_id, _dropped(job_id, dropped)))
        except Exception as err:
            send({"type": "error", "job_id": job_id, "message": str(err)})


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _distinct_steps(marks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A job's checkpoints, each step once (its first save), oldest first.

    A checkpoint is the file of its step: saving a step again replaces it. And every
    follower of a job (the kernel's, the server's) records the save with the time it read
    the record, so the store may hold one save twice.
    """
    seen: set[Any] = set()
    distinct = []
    for mark in sorted(marks, key=lambda m: m.get("time") or 0.0):
        if mark.get("step") not in seen:
            seen.add(mark.get("step"))
            distinct.append(mark)
    return distinct


def _finite_value(entry: dict[str, Any]) -> dict[str, Any]:
    """A trial entry whose objective JSON can carry (nan and inf become null)."""
    value = entry.get("value")
    return entry if value is None or _finite(value) else {**entry, "value": None}


def _event_message(job_id: str, event: Event) -> dict[str, Any]:
    data = event.to_dict()
    if event.kind == "result":  # results are pickles for the kernel, not for the browser
        data["data"] = {"name": event.data.get("name"), "error": event.data.get("error")}
    elif event.kind == "report" and not all(map(_finite, event.data.get("metrics", {}).values())):
        metrics = {k: v if _finite(v) else None for k, v in event.data["metrics"].items()}
        data["data"] = {**event.data, "metrics": metrics}
    return {"type": "event", "job_id": job_id, "event": data}


def _dropped(job_id: str, count: int) -> Event:
    line = f"[{count} lines not shown here; %train_logs {job_id} prints them all]"
    return Event("log", job_id, {"line": line}, rank=None)
