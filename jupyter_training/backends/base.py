"""The Backend protocol: what every place that runs jobs provides."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from ..events import Event
from ..runtime.payload import Payload
from ..spec import JobSpec
from ..store import JobRecord


class SubmitError(RuntimeError):
    """The backend refused or failed to start a job; the message says why."""


class Backend(Protocol):
    """Runs jobs somewhere and reports on them through the event stream."""

    name: str

    def submit(
        self,
        spec: JobSpec,
        payload: Payload,
        *,
        cell: str,
        notebook: str | None = None,
        workdir: str | None = None,
        job_id: str | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> JobRecord:
        """Start a job (under ``job_id`` if given) and return its Pending record.

        ``secrets`` holds the values of ``spec.secrets_from_environment``: they go
        to the workers only, never into the store, a log or a ConfigMap.
        """

    def check(self, spec: JobSpec) -> None:
        """Refuse a spec this backend cannot run (raises SpecError or SubmitError)."""

    def dry_run(self, spec: JobSpec, payload: Payload, *, notebook: str | None = None) -> str:
        """What :meth:`submit` would do, as text; nothing is started."""

    def get(self, job_id: str) -> JobRecord:
        """The job's current record."""

    def list(self, *, limit: int = 50) -> list[JobRecord]:
        """This backend's jobs, newest first."""

    def events(
        self, job_id: str, *, follow: bool = True, stop: threading.Event | None = None
    ) -> Iterator[Event]:
        """The job's events from the start; with ``follow``, until it ends (or ``stop``)."""

    def cancel(self, job_id: str, *, phase: str = "Cancelled", message: str = "") -> JobRecord:
        """Stop the job (no-op if it has ended) and return its final record.

        The job ends in ``phase``: Cancelled, or Pruned when a sweep's pruner stops it
        (``events.STOP_PHASES``), with ``message`` (or the phase's default).
        """

    def describe(self) -> dict[str, Any]:
        """What the sidebar's launch form needs to know about this backend, as JSON types.

        Always ``available`` (bool); when False, ``error`` says why. The rest is
        the backend's own (the local one: ``gpus``, ``cpus``). It reports a
        problem rather than raising it.
        """
