"""The one way through: capture a cell, record it, hand it to a backend.

The magic, the CLI (and later the server) use :class:`TrainingClient`, so a
job is submitted, listed, followed and cancelled the same way everywhere.
A submission that fails after its spec was accepted is still recorded (phase
Failed, with the cell and spec) so nothing the user wrote is lost.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .backends import make_backend
from .backends.base import Backend, SubmitError
from .capture import CaptureError, capture_cell
from .events import CANCELLED, FAILED, SUCCEEDED, Event, phase_event
from .runtime.payload import Payload
from .settings import TrainingSettings, load_settings
from .spec import JobSpec, SpecError, secret_values
from .store import JobRecord, JobStore, new_job_id, pending_record
from .tracking.params import FLAG_PARAMS as _FLAG_PARAMS
from .tracking.params import notebook_params
from .tracking.query import backfill_local, run_rows


class ResumeWarning(UserWarning):
    """A resumed job will not find the checkpoints its lineage saved."""


class TrainingClient:
    """Submits and follows jobs for one user (one store)."""

    def __init__(self, settings: TrainingSettings | None = None) -> None:
        self.settings = settings or load_settings()
        self.store = JobStore(self.settings.store_path)
        self._backends: dict[str, Backend] = {}

    def backend(self, name: str) -> Backend:
        """The backend called ``name`` (created once)."""
        if name not in self._backends:
            self._backends[name] = make_backend(name, self.store, self.settings)
        return self._backends[name]

    def submit(
        self,
        spec: JobSpec,
        cell: str,
        namespace: Mapping[str, Any] | None = None,
        *,
        hidden: Iterable[str] = (),
        history: Iterable[str] = (),
        notebook: str | None = None,
        workdir: str | None = None,
    ) -> JobRecord:
        """Capture ``cell`` with the names of ``namespace`` it uses and start it.

        Raises :class:`CaptureError` or :class:`SubmitError` (after recording the
        failed submission) when the job cannot start.
        """
        job_id = new_job_id()
        workdir = workdir or os.getcwd()
        try:
            self.check_limits(spec)
            payload = self._capture(spec, cell, namespace, hidden, history, workdir)
        except (CaptureError, SpecError, OSError) as err:
            self._record_failed_submission(job_id, spec, cell, notebook, workdir, err)
            raise
        return self.submit_payload(
            spec,
            payload,
            cell,
            params=self.notebook_params(spec, payload, namespace),
            notebook=notebook,
            workdir=workdir,
            job_id=job_id,
        )

    def submit_payload(
        self,
        spec: JobSpec,
        payload: Payload,
        cell: str,
        *,
        params: Mapping[str, Any] | None = None,
        notebook: str | None = None,
        workdir: str | None = None,
        job_id: str | None = None,
    ) -> JobRecord:
        """Start an already captured ``payload`` (a sweep's trials share one capture);
        ``params`` are the notebook values it carries, recorded with the run."""
        job_id = job_id or new_job_id()
        workdir = workdir or os.getcwd()
        try:
            self.check_limits(spec)
            backend = self.backend(spec.backend)
            secrets = secret_values(spec, os.environ)
            record = backend.submit(
                spec,
                payload,
                cell=cell,
                notebook=notebook,
                workdir=workdir,
                job_id=job_id,
                secrets=secrets,
            )
        except (SubmitError, SpecError, OSError) as err:
            self._record_failed_submission(job_id, spec, cell, notebook, workdir, err)
            raise
        except KeyboardInterrupt:  # interrupted mid-launch: do not leave a job running
            with contextlib.suppress(Exception):
                self.cancel(job_id)
            raise
        values = dict(params or {})
        flags = record.params or {}
        # Notebook values win over flags; a quick cell's log_params() may have landed: it wins.
        self.store.merge(record.id, "params", values, keep_existing=True, override=flags)
        record.params = {**flags, **values}
        return record

    def resume(
        self,
        ref: str,
        changes: Mapping[str, Any] | None = None,
        cell: str | None = None,
        namespace: Mapping[str, Any] | None = None,
        *,
        hidden: Iterable[str] = (),
        history: Iterable[str] = (),
        notebook: str | None = None,
    ) -> JobRecord:
        """A new job that carries on from the failed or cancelled job ``ref`` (id, prefix or
        name): its recorded cell (or ``cell``) and spec with ``changes``, in the same
        checkpoint lineage, so ``latest_checkpoint()`` finds where it stopped."""
        from .tracking.query import resolve

        parent = resolve(self.store, ref)
        if not parent.is_terminal:
            parent = self.get(parent.id)
        if parent.phase == SUCCEEDED:
            raise SpecError(
                "%train_resume",
                f"job {parent.id} ({parent.name}) succeeded: there is nothing to resume "
                "(run it again with %%train_distributed)",
            )
        if not parent.is_terminal:
            raise SpecError(
                "%train_resume",
                f"job {parent.id} ({parent.name}) is {parent.phase}: wait for it, or "
                f"%train_cancel {parent.id} first",
            )
        lineage = parent.lineage or parent.id
        self._warn_if_checkpoints_gone(parent, lineage)
        spec = parent.spec.replace(
            **{"name": parent.name, **(changes or {})},
            sweep=None,
            parent=parent.id,
            lineage=lineage,
        )
        notebook = notebook or parent.notebook
        recorded = self._recorded_payload(parent)
        if cell is None and recorded is not None:
            # The same cell: the values it was captured with, even after a kernel restart.
            params = {k: v for k, v in (parent.params or {}).items() if k not in _FLAG_PARAMS}
            return self.submit_payload(
                spec,
                recorded,
                parent.cell,
                params=params,
                notebook=notebook,
                workdir=parent.workdir,
            )
        return self.submit(
            spec,
            parent.cell if cell is None else cell,
            namespace,
            hidden=hidden,
            history=history,
            notebook=notebook,
            workdir=parent.workdir,
        )

    def _warn_if_checkpoints_gone(self, parent: JobRecord, lineage: str) -> None:
        """A lineage that saved checkpoints whose directory is gone starts from scratch."""
        saved = [r for r in self.store.lineage_jobs(lineage) if r.checkpoints]
        if not saved or parent.backend != "local":
            return
        directory = Path(self.store.path).parent / "checkpoints" / lineage
        if not directory.is_dir() or not any(directory.glob("step-*")):
            warnings.warn(
                f"job {parent.id} saved checkpoints, but {directory} is gone: the resumed job "
                "starts from scratch (latest_checkpoint() returns None)",
                ResumeWarning,
                stacklevel=3,
            )

    def _recorded_payload(self, record: JobRecord) -> Payload | None:
        """The payload a local job ran with, if its files are still there."""
        if record.backend != "local":
            return None
        backend = self.backend("local")
        path = backend.files(record.id).payload  # type: ignore[attr-defined]
        try:
            return Payload.read(path)
        except (OSError, ValueError):
            return None

    def capture(
        self,
        spec: JobSpec,
        cell: str,
        namespace: Mapping[str, Any] | None = None,
        *,
        hidden: Iterable[str] = (),
        history: Iterable[str] = (),
        workdir: str | None = None,
    ) -> Payload:
        """The payload ``cell`` would ship (raises :class:`CaptureError`); nothing starts."""
        self.check_limits(spec)
        return self._capture(spec, cell, namespace, hidden, history, workdir or os.getcwd())

    def notebook_params(
        self, spec: JobSpec, payload: Payload, namespace: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The plain notebook values ``payload`` carries, recorded as the run's params."""
        try:
            secrets = secret_values(spec, os.environ)
        except SpecError:
            secrets = {}
        return notebook_params(namespace or {}, [v.name for v in payload.values], secrets.values())

    def dry_run(
        self,
        spec: JobSpec,
        cell: str,
        namespace: Mapping[str, Any] | None = None,
        *,
        hidden: Iterable[str] = (),
        history: Iterable[str] = (),
        notebook: str | None = None,
        workdir: str | None = None,
    ) -> str:
        """What submitting would create or start, as text; nothing is recorded or launched."""
        self.check_limits(spec)
        secret_values(spec, os.environ)  # refuse missing secrets here too, without showing them
        payload = self._capture(spec, cell, namespace, hidden, history, workdir or os.getcwd())
        return self.backend(spec.backend).dry_run(spec, payload, notebook=notebook)

    def _capture(
        self,
        spec: JobSpec,
        cell: str,
        namespace: Mapping[str, Any] | None,
        hidden: Iterable[str],
        history: Iterable[str],
        workdir: str,
    ) -> Payload:
        return capture_cell(
            cell,
            namespace or {},
            hidden=hidden,
            history=history,
            max_bytes=self.settings.max_payload_bytes,
            files=spec.files,
            root=Path(workdir),
        )

    def check_limits(self, spec: JobSpec) -> None:
        """Enforce this installation's limits (``c.TrainingApp.max_*``) on every path."""
        for flag, value, limit, name in (
            ("--workers", spec.workers, self.settings.max_workers, "max_workers"),
            ("--gpus", spec.gpus, self.settings.max_gpus_per_worker, "max_gpus_per_worker"),
        ):
            if value > limit:
                raise SpecError(
                    flag,
                    f"{value} is over this installation's limit of {limit} (c.TrainingApp.{name})",
                )

    def _record_failed_submission(
        self,
        job_id: str,
        spec: JobSpec,
        cell: str,
        notebook: str | None,
        workdir: str,
        err: Exception,
    ) -> None:
        reason = f"not submitted: {err}"
        try:
            self.store.get(job_id)
        except KeyError:
            record = pending_record(job_id, spec, cell, notebook=notebook, workdir=workdir)
            record.phase, record.message, record.finished = FAILED, reason, time.time()
            record.failure = {"reason": reason}
            self.store.add(record)

    def get(self, job_id: str) -> JobRecord:
        """The job's current record (a running job's as its backend sees it now)."""
        record = self.store.get(job_id)
        if record.is_terminal:
            return record  # history needs no backend, and its backend may be gone
        return self.backend(record.backend).get(record.id)

    def list(self, *, limit: int = 50, phase: str | None = None) -> list[JobRecord]:
        """Jobs of every backend, newest first, unfinished ones checked with their backend."""
        records = self.store.list(limit=limit, phase=phase)
        return [r if r.is_terminal else self._refresh(r) for r in records]

    def find(
        self,
        *,
        limit: int = 50,
        phase: str | None = None,
        name: str | None = None,
        notebook: str | None = None,
        tag: str | None = None,
        where: str | None = None,
        sort: str | None = None,
    ) -> list[JobRecord]:
        """Jobs filtered by name/notebook glob, tag and ``--where``, ordered by ``--sort``
        (newest first by default); raises ``WhereError`` for a filter that does not parse."""
        if not any((name, notebook, tag, where, sort)):
            backfill_local(self.store)  # finished jobs nobody followed get their metrics
            return self.list(limit=limit, phase=phase)
        rows = run_rows(
            self.store,
            name=name,
            phase=phase,
            notebook=notebook,
            tag=tag,
            where=where,
            sort=sort,
            limit=limit,
        )
        records = [self.store.get(row["id"]) for row in rows]
        return [r if r.is_terminal else self._refresh(r) for r in records]

    def _refresh(self, record: JobRecord) -> JobRecord:
        try:
            return self.backend(record.backend).get(record.id)
        except SubmitError:
            return record

    def events(
        self, job_id: str, *, follow: bool = True, stop: threading.Event | None = None
    ) -> Iterator[Event]:
        """The job's event stream (see :mod:`jupyter_training.events`).

        A job that never started (a failed submission) yields its final phase.
        """
        record = self.store.get(job_id)
        produced = False
        if not (record.is_terminal and record.started is None):
            backend = self.backend(record.backend)
            for event in backend.events(record.id, follow=follow, stop=stop):
                produced = True
                yield event
        if not produced and record.is_terminal:
            yield phase_event(record.id, record.phase, record.message)

    def logs(
        self, job_id: str, *, rank: int | None = None, follow: bool = False
    ) -> Iterator[Event]:
        """The job's ``log`` events, optionally of one rank."""
        for event in self.events(job_id, follow=follow):
            if event.kind == "log" and (rank is None or event.rank == rank):
                yield event

    def cancel(self, job_id: str, *, phase: str = CANCELLED, message: str = "") -> JobRecord:
        """Stop the job and return its final record; it ends in ``phase`` (Cancelled, or
        Pruned when a sweep's pruner stops it)."""
        record = self.store.get(job_id)
        if record.is_terminal:
            return record
        return self.backend(record.backend).cancel(record.id, phase=phase, message=message)
