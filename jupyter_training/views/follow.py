"""Waiting for a job in the kernel: events to a view, UI clicks, results, cancel and detach.

The job's event stream is read on a helper thread into a bounded queue (so a
job printing millions of lines cannot grow the kernel's memory); the kernel's
thread folds events into the view (and the run's history, see
:mod:`jupyter_training.tracking.recorder`) in batches, redraws on a clock,
and, when a widget view is shown, lets the frontend's button clicks through
while the cell runs.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from ..client import TrainingClient
from ..events import Event
from ..results import ResultCollector
from ..tracking.recorder import RunRecorder
from .uipoll import ui_events

TICK_SECONDS = 0.1
QUEUE_LIMIT = 10_000
BATCH = 5_000
_END = object()


class JobView(Protocol):
    cancel_requested: bool
    detach_requested: bool

    def handle(self, event: Event) -> None: ...
    def tick(self) -> None: ...


class Follower:
    """Feeds one job's events to a view until the job ends, or the view detaches."""

    def __init__(
        self, client: TrainingClient, job_id: str, view: JobView, *, ui_events: bool = False
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.view = view
        self.results = ResultCollector()
        self.recorder = RunRecorder(client.store, job_id, mlflow_uri=client.settings.mlflow_uri)
        self.detached = False
        self._ui_events = ui_events
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._stop = threading.Event()

    def run(self) -> None:
        """Block until the job's terminal event has been handled (or a detach)."""
        thread = threading.Thread(target=self._pump, name="jt-follow", daemon=True)
        thread.start()
        ended = False
        try:
            with ui_poller(self._ui_events) as poll_ui:
                while True:
                    batch = self._next_batch()
                    for item in batch:
                        if item is _END:
                            return
                        if isinstance(item, BaseException):
                            raise item
                        self.view.handle(item)
                        self.results.feed(item)
                        self.recorder.feed(item)
                        ended = ended or item.is_terminal
                    self.view.tick()
                    self.recorder.flush_if_due()
                    poll_ui()
                    if self.view.cancel_requested:
                        self.view.cancel_requested = False
                        self.client.cancel(self.job_id)
                    if self.view.detach_requested:
                        self.detached = True
                        return
        finally:
            self._stop.set()
            self.recorder.close(complete=ended)

    def _next_batch(self) -> list[Any]:
        try:
            items = [self._queue.get(timeout=TICK_SECONDS)]
        except queue.Empty:
            return []
        while len(items) < BATCH:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _pump(self) -> None:
        events = self.client.events(self.job_id)
        try:
            for event in events:
                if not self._put(event):
                    return
        except BaseException as err:  # handed to the kernel's thread to raise
            self._put(err)
        finally:
            with contextlib.suppress(Exception):
                events.close()  # type: ignore[attr-defined]
            self._put(_END)

    def _put(self, item: Any) -> bool:
        """Queue ``item``, waiting while the queue is full; False once the follower stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=TICK_SECONDS)
                return True
            except queue.Full:
                continue
        return False


@contextlib.contextmanager
def ui_poller(enabled: bool) -> Iterator[Callable[[], None]]:
    """A function that processes pending widget messages (button clicks) while the cell
    is busy (a no-op unless ``enabled`` and the kernel supports it; see :mod:`.uipoll`)."""
    if not enabled:
        yield lambda: None
        return
    with ui_events() as poll:
        yield poll
