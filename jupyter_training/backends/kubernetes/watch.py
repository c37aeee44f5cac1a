"""Live view of one Kubeflow job: watches, never timed polling.

Three watches (the job object, its pods, and Kubernetes events) and one log
stream per container instance feed a queue of :class:`~jupyter_training.events.Event`.
Logs start as soon as a container starts (Pending pods are tracked until
then), continue across restarts, and fall back to the previous container's
log when a crash happened before a stream could attach. The HTTP request
count is a constant per job plus one log stream per container instance.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from ...events import (
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    TERMINAL_PHASES,
    Event,
    LineSplitter,
    output_events,
    phase_event,
)
from .cluster import Cluster, ClusterError
from .pods import PodView, describe_failure, pod_view
from .targets import Target, job_phase

T = TypeVar("T")

#: Server-side watch length; a watch that ends is resumed (a real API server ends
#: watches after at most this long, so a job's request count stays bounded).
WATCH_SECONDS = 1800
#: How long the end of a job waits for the logs of its ended containers to drain.
DRAIN_SECONDS = 10.0
#: ... and for the logs of containers still running then (a job deleted by someone
#: else, a failed job whose other pods are still being stopped): their streams end only
#: when those pods go, which need not happen soon.
RUNNING_DRAIN_SECONDS = 0.5
LOG_TAIL_LINES = 40
#: A log stream may stay silent this long (a quiet training step) before it is dropped.
LOG_READ_TIMEOUT = 24 * 3600
_EVENT_REASONS = frozenset({"Pulling", "Scheduled", "Started", "Killing", "Preempted"})


class JobWatch:
    """Streams one job's events until it ends (or :meth:`stop` is called)."""

    def __init__(
        self, cluster: Cluster, target: Target, namespace: str, name: str, job_id: str
    ) -> None:
        self.cluster = cluster
        self.target = target
        self.namespace = namespace
        self.name = name
        self.job_id = job_id
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.phase: str | None = None
        self.final: Event | None = None
        self.pods: dict[str, PodView] = {}
        self.streamed: dict[tuple[str, int], str] = {}  # (pod, instance) -> open|done|failed
        self.log_threads: list[tuple[str, threading.Thread]] = []  # (pod name, stream)
        self.errors: dict[int, dict[str, Any]] = {}
        self.tails: dict[int, deque[str]] = {}
        self.seen_events: set[tuple[str, int]] = set()
        self._responses: set[Any] = set()
        self._threads: list[threading.Thread] = []
        self.cancel_requested = False
        #: Asked when the job disappears: the (phase, message) a stop recorded for it, from
        #: any process (a user's cancel, a sweep's pruner), or None if nobody stopped it.
        self.stopped_as: Callable[[], tuple[str, str] | None] = lambda: None
        #: Set by a consumer that wants the stream to end early (a closed browser tab).
        self.outer_stop = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> JobWatch:
        for target, label in (
            (self._watch_job, "job"),
            (self._watch_pods, "pods"),
            (self._watch_events, "events"),
        ):
            thread = threading.Thread(target=target, name=f"jt-watch-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop every watch and log stream (closes their connections)."""
        self.stopping.set()
        with self.lock:
            responses = list(self._responses)
        for response in responses:
            _close(response)

    def __iter__(self) -> Iterator[Event]:
        """Events in arrival order; the terminal phase event comes last."""
        try:
            while not self.outer_stop.is_set():
                try:
                    event = self.events.get(timeout=0.2)
                except queue.Empty:
                    continue
                if event is None:
                    return
                yield event
                if event.is_terminal:
                    return
        finally:
            self.stop()

    def emit(self, event: Event) -> None:
        self.events.put(event)

    # -- watches -----------------------------------------------------------------------------

    def _watch(
        self,
        list_call: Callable[..., Any],
        handle: Callable[[str, dict], None],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        while not self.stopping.is_set():
            try:
                response = list_call(
                    *args,
                    watch=True,
                    timeout_seconds=WATCH_SECONDS,
                    _preload_content=False,
                    _request_timeout=(self.cluster.timeout, WATCH_SECONDS + 60),
                    **kwargs,
                )
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as err:
                if self.stopping.wait(1.0):
                    return
                self._warn(f"watch failed, retrying: {err}")
                continue
            with self.lock:
                self._responses.add(response)
            try:
                for line in iter_resp_lines(response):
                    if self.stopping.is_set():
                        return
                    message = json.loads(line)
                    if message.get("type") == "ERROR":
                        break
                    handle(message.get("type", ""), message.get("object") or {})
            except (urllib3.exceptions.HTTPError, OSError, ValueError):
                pass  # connection closed or timed out: resume unless stopping
            except AttributeError:
                if not self.stopping.is_set():
                    raise
                return  # closed by stop() mid-read: http.client's fp is None under us
            finally:
                with self.lock:
                    self._responses.discard(response)
                _close(response)

    def _watch_job(self) -> None:
        self._watch(
            self.cluster.custom.list_namespaced_custom_object,
            self._on_job,
            self.target.group,
            self.target.version,
            self.namespace,
            self.target.plural,
            field_selector=f"metadata.name={self.name}",
        )

    def _watch_pods(self) -> None:
        self._watch(
            self.cluster.core.list_namespaced_pod,
            self._on_pod,
            self.namespace,
            label_selector=self.target.pod_selector(self.name),
        )

    def _watch_events(self) -> None:
        self._watch(self.cluster.core.list_namespaced_event, self._on_k8s_event, self.namespace)

    # -- handlers ----------------------------------------------------------------------------

    def _on_job(self, kind: str, job: dict[str, Any]) -> None:
        if (job.get("metadata") or {}).get("name") != self.name:
            return
        if kind == "DELETED":
            stopped = _within(2.0, self.stopped_as)
            if stopped:
                self._set_phase(*stopped)
            elif self.cancel_requested:
                self._set_phase(CANCELLED, "cancelled by user")
            else:
                self._set_phase(FAILED, f"the {self.target.kind} was deleted from the cluster")
            return
        phase, message = job_phase(self.target, job)
        if phase is None:  # a TrainJob: running once a node pod runs
            phase = RUNNING if any(p.started for p in self.pods.values()) else PENDING
        self._set_phase(phase, message)

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        if not self.target.owns_pod(self.name, pod):
            return
        view = pod_view(self.target, pod)
        if view.rank is None:
            return
        with self.lock:
            previous = self.pods.get(view.name)
            if kind == "DELETED":
                self.pods.pop(view.name, None)
            else:
                self.pods[view.name] = view
        for data in view.changes_since(previous):
            self.emit(Event("worker", self.job_id, data, rank=view.rank))
        if kind != "DELETED":
            self._follow_logs(view, previous)
        if self.target.api == "v2" and self.phase in (None, PENDING) and view.started:
            self._set_phase(RUNNING, "a node pod started")

    def _on_k8s_event(self, kind: str, event: dict[str, Any]) -> None:
        involved = event.get("involvedObject") or {}
        name = involved.get("name") or ""
        if kind == "DELETED" or not (name == self.name or name in self.pods):
            return
        key = (
            (event.get("metadata") or {}).get("uid") or name + (event.get("reason") or ""),
            int(event.get("count") or 1),
        )
        if key in self.seen_events:
            return
        self.seen_events.add(key)
        if event.get("type") != "Warning" and event.get("reason") not in _EVENT_REASONS:
            return
        rank = self.pods[name].rank if name in self.pods else None
        data = {
            "state": "event",
            "type": event.get("type"),
            "reason": event.get("reason"),
            "message": event.get("message"),
            "object": name,
        }
        self.emit(Event("worker", self.job_id, data, rank=rank))

    # -- phases ------------------------------------------------------------------------------

    def _set_phase(self, phase: str, message: str) -> None:
        with self.lock:
            if phase == self.phase or self.phase in TERMINAL_PHASES:
                return
            self.phase = phase
        if phase not in TERMINAL_PHASES:
            self.emit(phase_event(self.job_id, phase, message))
            return
        threading.Thread(target=self._finish, args=(phase, message), daemon=True).start()

    def _finish(self, phase: str, message: str) -> None:
        """Let the log streams drain, then emit the terminal event with the failure."""
        deadline = time.monotonic() + DRAIN_SECONDS
        try:  # one read of the final pod states, so no container's log is missed
            final_pods = self.cluster.list_pods(self.target, self.namespace, self.name)
        except ClusterError:
            final_pods = []
        for pod in final_pods:
            self._on_pod("MODIFIED", pod)
        with self.lock:
            running = {name for name, view in self.pods.items() if view.state != "terminated"}
        short = time.monotonic() + RUNNING_DRAIN_SECONDS
        for pod_name, thread in list(self.log_threads):
            thread.join(max(0.0, (short if pod_name in running else deadline) - time.monotonic()))
        extra: dict[str, Any] = {}
        if phase == FAILED:
            failure = self.failure(message)
            extra["failure"] = failure
            message = failure["reason"]
        elif phase == SUCCEEDED and not message:
            message = "all workers succeeded"
        self.emit(phase_event(self.job_id, phase, message, **extra))

    def failure(self, message: str) -> dict[str, Any]:
        """Who failed and why, from pod states, error records and log tails."""
        with self.lock:
            pods = list(self.pods.values())
            errors = dict(self.errors)
            tails = {rank: list(lines) for rank, lines in self.tails.items()}
        return describe_failure(pods, errors, tails, message)

    # -- logs --------------------------------------------------------------------------------

    def _follow_logs(self, view: PodView, previous: PodView | None) -> None:
        if view.started and (view.name, view.instance) not in self.streamed:
            self._start_stream(view, view.instance, follow=True)
        crashed_unseen = [
            instance
            for instance in range(view.instance)
            if (view.name, instance) not in self.streamed
            or self.streamed[(view.name, instance)] == "failed"
        ]
        if crashed_unseen and view.instance > 0:
            # Only the previous instance's log is still kept by the kubelet.
            if (view.name, view.instance - 1) not in self.streamed or self.streamed[
                (view.name, view.instance - 1)
            ] == "failed":
                self._start_stream(view, view.instance - 1, follow=False, previous=True)
            for instance in crashed_unseen:
                self.streamed.setdefault((view.name, instance), "lost")

    def _start_stream(
        self, view: PodView, instance: int, *, follow: bool, previous: bool = False
    ) -> None:
        self.streamed[(view.name, instance)] = "open"
        thread = threading.Thread(
            target=self._stream_log,
            args=(view, instance, follow, previous),
            daemon=True,
            name=f"jt-log-{view.name}-{instance}",
        )
        self.log_threads.append((view.name, thread))
        thread.start()

    def _stream_log(self, view: PodView, instance: int, follow: bool, previous: bool) -> None:
        key = (view.name, instance)
        try:
            response = self.cluster.core.read_namespaced_pod_log(
                view.name,
                self.namespace,
                container=view.container,
                follow=follow,
                previous=previous,
                _preload_content=False,
                _request_timeout=(self.cluster.timeout, LOG_READ_TIMEOUT),
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            self.streamed[key] = "failed"
            return
        with self.lock:
            self._responses.add(response)
        splitter = LineSplitter()
        try:
            for chunk in response.stream(64 * 1024, decode_content=True):
                for line in splitter.feed(chunk):
                    self._on_line(view.rank, line)
            for line in splitter.flush():
                self._on_line(view.rank, line)
            self.streamed[key] = "done"
        except (urllib3.exceptions.HTTPError, OSError):
            self.streamed[key] = "failed" if not self.stopping.is_set() else "done"
        except AttributeError:
            if not self.stopping.is_set():
                raise
            self.streamed[key] = "done"  # closed by stop() mid-read (see _watch)
        finally:
            with self.lock:
                self._responses.discard(response)
            _close(response)

    def _on_line(self, rank: int, line: str) -> None:
        for event in output_events(self.job_id, rank, line):
            if event.kind == "error":
                with self.lock:  # by pod: a pod of several ranks keeps its first error
                    if event.rank == rank or rank not in self.errors:
                        self.errors[rank] = event.data
            elif event.kind == "log":
                with self.lock:
                    self.tails.setdefault(rank, deque(maxlen=LOG_TAIL_LINES)).append(
                        event.data["line"]
                    )
            self.emit(event)

    def _warn(self, message: str) -> None:
        data = {"state": "event", "type": "Warning", "reason": "WatchRetry", "message": message}
        self.emit(Event("worker", self.job_id, data))


def _within(seconds: float, answer: Callable[[], T | None]) -> T | None:
    """``answer()`` once it is not None, waiting up to ``seconds`` (a stop records itself
    late); None after that."""
    deadline = time.monotonic() + seconds
    while True:
        value = answer()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _close(response: Any) -> None:
    for method in ("shutdown", "release_conn", "close"):
        with contextlib.suppress(Exception):  # closing a dead connection may fail any way
            getattr(response, method)()
