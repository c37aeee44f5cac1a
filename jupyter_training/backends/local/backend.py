"""The embedded default backend: jobs run as processes on this machine.

Each job gets a directory under ``<store_dir>/jobs/<id>`` and a detached
supervisor (:mod:`.supervisor`) that outlives the kernel. Status comes from the
store, events and logs from tailing the job's files.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ...events import CANCELLED, FAILED, STOP_PHASES, Event
from ...runtime.payload import Payload
from ...settings import TrainingSettings
from ...spec import JobSpec
from ...store import JobRecord, JobStore, new_job_id, pending_record
from ..base import SubmitError
from .files import JobFiles
from .host import process_start_time, visible_gpu_ids, wait_for_exit
from .supervisor import BOOT as SUPERVISOR_BOOT
from .supervisor import worker_env
from .warm import WARM, WarmProcesses, imported_modules

SUPERVISOR_START_SECONDS = 10.0


class LocalBackend:
    """Runs jobs as local worker processes under a detached supervisor."""

    name = "local"

    def __init__(
        self, store: JobStore, settings: TrainingSettings, *, warm: WarmProcesses | None = WARM
    ) -> None:
        self.store = store
        self.settings = settings
        self.jobs_dir = Path(settings.store_dir) / "jobs"
        #: Where warm workers come from (None: every job starts cold, as from the CLI).
        self.warm = warm

    def files(self, job_id: str) -> JobFiles:
        return JobFiles(self.jobs_dir / job_id)

    def check(self, spec: JobSpec) -> None:
        """Refuse what this machine cannot run (raises :class:`SubmitError`)."""
        if spec.gpus:
            available = visible_gpu_ids()
            needed = spec.gpus * spec.workers
            if needed > len(available):
                raise SubmitError(
                    f"--gpus: {spec.workers} workers x {spec.gpus} GPUs need {needed} GPUs, "
                    f"but this machine has {len(available)} visible; lower --workers or --gpus, "
                    "or use --backend kubernetes"
                )

    def dry_run(self, spec: JobSpec, payload: Payload, *, notebook: str | None = None) -> str:
        """The worker command and contract environment of every rank; nothing runs."""
        self.check(spec)
        gpu_ids = visible_gpu_ids()
        names = ", ".join(payload.names()) or "none"
        lines = [
            f"# local job: {spec.workers} {spec.framework} worker(s) x {spec.nproc_per_worker} "
            f"process(es) = {spec.world_size} rank(s) under a detached supervisor",
            f"# payload: {payload.nbytes()} bytes; notebook names: {names}",
            f"# files: {', '.join(p for p, _ in payload.files) or 'none'}",
        ]
        ports = (0,) * spec.framework_descriptor.ports_needed(spec.world_size)
        for rank in range(spec.world_size):
            env = worker_env("<job-id>", spec, rank, ports, gpu_ids, {}, "<job-dir>/files")
            env.update({k: "<free port>" for k, v in env.items() if k.endswith("_PORT")})
            env.update({k: "<secret, from the kernel's environment>" for k in spec.secret_env})
            lines.append(f"rank {rank}: {sys.executable} -m jupyter_training.runtime payload.bin")
            lines.extend(f"    {key}={value}" for key, value in sorted(env.items()))
        return "\n".join(lines) + "\n"

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
        """Record the job, write its payload and start its supervisor.

        ``secrets`` reach the workers through the supervisor's environment only.
        """
        self.check(spec)
        job_id = job_id or new_job_id()
        files = self.files(job_id)
        self.jobs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        files.create()
        payload.write(files.payload)
        record = pending_record(
            job_id,
            spec,
            cell,
            notebook=notebook,
            workdir=workdir or os.getcwd(),
            artifacts=str(files.artifacts),
            context={"host": platform.node()},
        )
        self.store.add(record)
        warm = self.settings.warm_workers and self.warm
        modules = imported_modules(cell, payload.imports) if warm else ()
        self.start_supervisor(
            job_id, files, secrets or {}, spec=spec if warm else None, modules=modules
        )
        return record

    def start_supervisor(
        self,
        job_id: str,
        files: JobFiles,
        secrets: Mapping[str, str] | None = None,
        *,
        spec: JobSpec | None = None,
        modules: Iterable[str] = (),
    ) -> None:
        """Start the job's supervisor: forked from the framework's warm process when
        ``spec`` is given and one is ready, else as a new interpreter."""
        arguments = [
            "--db",
            str(self.store.path),
            "--job",
            job_id,
            "--dir",
            str(files.root),
            "--grace",
            str(self.settings.stop_grace_seconds),
            "--result-limit",
            str(self.settings.max_result_bytes),
        ]
        if spec is not None:
            request = {
                "argv": arguments,
                "env": {**os.environ, **(secrets or {})},
                "cwd": os.getcwd(),
                "log": str(files.supervisor_log),
            }
            if self.warm.launch(
                spec.framework,
                request,
                job_env=spec.env,
                modules=modules,
                idle=self.settings.warm_idle_timeout,
                log=self.jobs_dir.parent / "warm.log",
            ):
                return
        command = [sys.executable, "-c", SUPERVISOR_BOOT, *arguments]
        with files.open_supervisor_log() as log:
            starter = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(secrets or {})},
            )
        code = wait_for_exit(starter, SUPERVISOR_START_SECONDS)
        if code is None:  # hung before it could detach
            starter.kill()
            starter.wait()
        if code != 0:
            reason = f"the job supervisor did not start (see {files.supervisor_log})"
            self.store.set_phase(job_id, FAILED, message=reason, failure={"reason": reason})
            raise SubmitError(reason)

    def warm_up(self, framework: str, modules: Iterable[str] = ()) -> dict[str, Any]:
        """Start the framework's warm process (with ``modules`` too) and wait until ready."""
        if not (self.settings.warm_workers and self.warm):
            raise SubmitError(
                "warm workers are off (c.TrainingApp.warm_workers = False); every job's "
                "workers start as new interpreters"
            )
        return self.warm.warm_up(
            framework,
            modules=modules,
            idle=self.settings.warm_idle_timeout,
            log=self.jobs_dir.parent / "warm.log",
        )

    def get(self, job_id: str) -> JobRecord:
        """The job's record, marked Failed if its supervisor vanished mid-job."""
        record = self.store.get(job_id)
        if not record.is_terminal and not self._supervisor_alive(record):
            reason = "supervisor lost: the process running this job exited unexpectedly"
            if self.store.set_phase(
                record.id, FAILED, message=reason, failure={"reason": reason}, finished=time.time()
            ):
                self.files(record.id).append_event(
                    Event("phase", record.id, {"phase": FAILED, "message": reason})
                )
            record = self.store.get(job_id)
        return record

    def _supervisor_alive(self, record: JobRecord) -> bool:
        if record.supervisor_pid is None:
            # Not started yet: give it a moment before calling it lost.
            return time.time() - record.created < SUPERVISOR_START_SECONDS
        return process_start_time(record.supervisor_pid) == record.supervisor_start

    def list(self, *, limit: int = 50) -> list[JobRecord]:
        return self.store.list(limit=limit, backend=self.name)

    def describe(self) -> dict[str, Any]:
        """Always available: this machine's visible GPUs and its CPU count."""
        return {"available": True, "gpus": len(visible_gpu_ids()), "cpus": os.cpu_count()}

    def events(
        self, job_id: str, *, follow: bool = True, stop: threading.Event | None = None
    ) -> Iterator[Event]:
        record = self.store.get(job_id)
        alive = None if record.is_terminal else lambda: not self.get(record.id).is_terminal
        return self.files(record.id).follow(
            record.id,
            record.world_size,
            follow=follow and not record.is_terminal,
            alive=alive,
            stop=stop,
        )

    def cancel(
        self, job_id: str, *, phase: str = CANCELLED, message: str = "", wait: float = 30.0
    ) -> JobRecord:
        """SIGTERM the supervisor, which stops every worker and ends the job in ``phase``
        (Cancelled, or Pruned for a sweep's pruner), then wait for the end."""
        if phase not in STOP_PHASES:
            raise ValueError(f"a stop ends a job as {' or '.join(STOP_PHASES)}, not {phase!r}")
        record = self.get(job_id)
        deadline = time.time() + wait
        while not record.is_terminal and record.supervisor_pid is None and time.time() < deadline:
            time.sleep(0.05)
            record = self.get(job_id)
        if record.is_terminal:
            return record
        if self._supervisor_alive(record) and record.supervisor_pid:
            request = {"phase": phase, "message": message or STOP_PHASES[phase]}
            with contextlib.suppress(OSError):
                self.files(record.id).stop_request.write_text(json.dumps(request))
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.supervisor_pid, signal.SIGTERM)
        while time.time() < deadline:
            record = self.get(job_id)
            if record.is_terminal:
                return record
            time.sleep(0.05)
        raise SubmitError(f"job {job_id} did not stop within {wait:g} s of cancelling")
