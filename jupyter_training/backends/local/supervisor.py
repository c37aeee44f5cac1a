"""The detached supervisor of one local job.

Started by :class:`~jupyter_training.backends.local.LocalBackend` as
``python -m jupyter_training.backends.local.supervisor``, it forks away from the
kernel (so the job survives it), spawns one worker process per rank with the
Kubeflow env contract, writes phase and worker events, stops every rank when
one fails (SIGTERM, then SIGKILL), restarts the whole group up to
``max_restarts`` times, and leaves nothing running when the job ends.
It imports nothing heavy: no torch, no xgboost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...events import (
    CANCELLED,
    FAILED,
    RESTARTING,
    RUNNING,
    STOP_PHASES,
    SUCCEEDED,
    Event,
    phase_event,
)
from ...frameworks import COMMON_ENV, Placement
from ...runtime import records
from ...runtime.checkpoints import CHECKPOINT_ENV, RESTART_COUNT_ENV
from ...runtime.masking import ENV_NAMES as SECRET_ENV_NAMES
from ...runtime.reporting import ARTIFACTS_ENV
from ...spec import JobSpec
from ...store import JobStore
from .files import JobFiles
from .forking import ForkedWorker, fork_worker
from .host import (
    die_with_parent,
    exit_fd,
    free_ports,
    oom_kills,
    process_start_time,
    signal_groups,
    signal_name,
    visible_gpu_ids,
    wait_readable,
)

POLL_SECONDS = 0.02
#: Longest the supervisor sleeps without looking (a worker's exit or a signal wakes it sooner).
IDLE_SECONDS = 1.0
#: Kernel variables that must not leak into workers.
_KERNEL_ONLY_ENV = ("MPLBACKEND", "JPY_PARENT_PID", "JPY_SESSION_NAME", "PYDEVD_USE_FRAME_EVAL")


def worker_env(
    job_id: str,
    spec: JobSpec,
    rank: int,
    ports: Sequence[int],
    gpu_ids: list[str],
    base: dict[str, str],
    files_dir: str = "",
    result_limit: int | None = None,
    restart_count: int = 0,
    artifacts_dir: str = "",
    checkpoint_dir: str = "",
) -> dict[str, str]:
    """The environment of global ``rank``: its framework's contract, our runtime's names.

    A worker is a "node": its ``nproc_per_worker`` processes share the worker's
    GPUs (``CUDA_VISIBLE_DEVICES``) and pick theirs by ``LOCAL_RANK``, as under
    torchrun on one node or in a PyTorchJob pod.
    """
    framework = spec.framework_descriptor
    place = Placement(
        job_id=job_id,
        rank=rank,
        nnodes=spec.workers,
        nproc_per_node=int(spec.nproc_per_worker),
        ports=tuple(ports),
        restart_count=restart_count,
        max_restarts=spec.max_restarts,
    )
    gpus = spec.gpus
    env = {k: v for k, v in base.items() if k not in _KERNEL_ONLY_ENV}
    env.update(spec.env)
    for key, value in framework.local_env(place).items():
        # Names a user may set (TORCH_NCCL_ASYNC_ERROR_HANDLING) are defaults only.
        if key in framework.reserved_env or key in COMMON_ENV or key not in env:
            env[key] = value
    env.update(
        PYTHONUNBUFFERED="1",
        CUDA_VISIBLE_DEVICES=",".join(
            gpu_ids[place.node_rank * gpus : (place.node_rank + 1) * gpus]
        ),
        JUPYTER_TRAINING_FRAMEWORK=framework.name,
        JUPYTER_TRAINING_JOB_ID=job_id,
        JUPYTER_TRAINING_FILES_DIR=files_dir,
        JUPYTER_TRAINING_OUT=",".join(spec.out),
    )
    if artifacts_dir:
        env[ARTIFACTS_ENV] = artifacts_dir
    if checkpoint_dir:
        env[CHECKPOINT_ENV] = checkpoint_dir
    env[RESTART_COUNT_ENV] = str(restart_count)
    if result_limit is not None:
        env["JUPYTER_TRAINING_RESULT_LIMIT"] = str(result_limit)
    if spec.secret_env:  # names only: the values come from ``base``
        env[SECRET_ENV_NAMES] = ",".join(spec.secret_env)
    if "OMP_NUM_THREADS" not in env:
        # Like torchrun: N workers on one machine share its cores; without this each
        # worker's intra-op pool takes every core and they slow each other down.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, place.world_size)))
    return env


class Supervisor:
    """Runs one job's attempts until it succeeds, fails for good or is cancelled."""

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        files: JobFiles,
        grace: float,
        result_limit: int | None = None,
        *,
        fork_workers: bool = False,
    ) -> None:
        self.result_limit = result_limit
        #: Fork ranks from this (warm) process instead of starting new interpreters.
        self.fork_workers = fork_workers
        self.store = store
        self.job_id = job_id
        self.files = files
        self.grace = grace
        self.record = store.get(job_id)
        self.spec = self.record.spec
        self.stop_reason: str | None = None
        self.workers: dict[int, subprocess.Popen[bytes] | ForkedWorker] = {}
        self.exited: dict[int, int] = {}
        self.deadline: float | None = None
        #: The OOM-kill count read before the previous look at the workers: a SIGKILL with
        #: the count risen since was most likely the OOM killer's.
        self.oom_kills_before: int | None = None
        self.exit_fds: dict[int, int] = {}
        #: Readable when a signal arrived (``signal.set_wakeup_fd``), so a cancel wakes ``watch``.
        self.signal_fd: int | None = None

    def request_cancel(self, *_: Any) -> None:
        self.stop_reason = "cancel"

    def stop_phase(self) -> tuple[str, str]:
        """The phase and message the stop asked for (Cancelled unless a sweep pruned)."""
        try:
            asked = json.loads(self.files.stop_request.read_text())
        except (OSError, ValueError):
            asked = {}
        phase = asked.get("phase") if asked.get("phase") in STOP_PHASES else CANCELLED
        return phase, str(asked.get("message") or STOP_PHASES[phase])

    def emit(self, event: Event) -> None:
        self.files.append_event(event)

    def set_phase(self, phase: str, message: str = "", **fields: Any) -> None:
        self.store.set_phase(self.job_id, phase, message=message, **fields)
        self.emit(phase_event(self.job_id, phase, message, **fields))

    def run(self) -> None:
        self.store.update(
            self.job_id,
            supervisor_pid=os.getpid(),
            supervisor_start=process_start_time(os.getpid()),
        )
        gpu_ids = visible_gpu_ids() if self.spec.gpus else []
        attempt = 0
        self.current_workers = self.spec.workers
        while True:
            outcome, failure = self.run_attempt(attempt, gpu_ids)
            if self.stop_reason == "cancel":  # a cancel during a stop wins over a restart
                outcome = "cancelled"
            if outcome == "succeeded":
                self.set_phase(SUCCEEDED, "all workers exited with code 0", finished=time.time())
                return
            if outcome == "cancelled":
                phase, message = self.stop_phase()
                self.set_phase(phase, message, finished=time.time())
                return
            if outcome == "failed" and attempt < self.spec.max_restarts:
                least = self.spec.min_workers
                if least is not None:  # elastic: go on with the survivors
                    survivors = self.current_workers - failure.get("lost_workers", 1)
                    if survivors < least:
                        reason = f"{failure['reason']}; {survivors} worker(s) left, fewer than "
                        reason += f"the {least} --workers {least}:{self.spec.workers} needs"
                        failure["reason"] = reason
                        self.set_phase(FAILED, reason, failure=failure, finished=time.time())
                        return
                    self.current_workers = survivors
                attempt += 1
                message = f"{failure['reason']}; restarting all workers (restart {attempt} of "
                message += f"{self.spec.max_restarts})"
                if least is not None:
                    message += f" with {self.current_workers} of {self.spec.workers} workers"
                self.set_phase(RESTARTING, message, attempt=attempt, failure=failure)
                continue
            self.set_phase(FAILED, failure["reason"], failure=failure, finished=time.time())
            return

    def run_attempt(self, attempt: int, gpu_ids: list[str]) -> tuple[str, dict[str, Any]]:
        base_env = dict(os.environ)
        spec = self.spec
        if self.current_workers != spec.workers:  # an elastic job that lost workers
            spec = spec.replace(workers=self.current_workers)
        self.attempt_spec = spec
        world = spec.world_size
        ports = free_ports(spec.framework_descriptor.ports_needed(world))
        self.store.merge(self.job_id, "context", self._context(attempt, spec.workers))
        # Counted before any rank runs: a forked (warm) rank can meet the OOM killer
        # before watch() first looks.
        self.oom_kills_before = oom_kills()
        for rank in range(world):
            self.workers[rank] = self.spawn(
                rank,
                worker_env(
                    self.job_id,
                    spec,
                    rank,
                    ports,
                    gpu_ids,
                    base_env,
                    str(self.files.shipped),
                    self.result_limit,
                    restart_count=attempt,
                    artifacts_dir=str(self.files.artifacts),
                    checkpoint_dir=str(self.checkpoint_dir),
                ),
            )
        now = time.time()
        if attempt == 0:
            timeout = self.spec.timeout
            self.deadline = now + timeout if timeout else None
            workers = self.spec.workers
            started = f"{workers} worker(s) started"
            if world != workers:
                started = f"{workers} worker(s) x {world // workers} "
                started += f"processes ({world} ranks) started"
            self.set_phase(RUNNING, started, started=now)
        elif spec.workers != self.spec.workers:
            self.set_phase(
                RUNNING, f"attempt {attempt + 1}: {spec.workers} of {self.spec.workers} workers"
            )
        else:
            self.set_phase(RUNNING, f"attempt {attempt + 1}: all workers restarted")
        return self.watch()

    @property
    def checkpoint_dir(self) -> Path:
        """The lineage's checkpoints: ``<store dir>/checkpoints/<first job of the lineage>``."""
        lineage = self.record.lineage or self.job_id
        return Path(self.store.path).parent / "checkpoints" / lineage

    def _context(self, attempt: int, workers: int) -> dict[str, Any]:
        """What the record's context learns at each attempt (once: how workers start)."""
        context: dict[str, Any] = {"attempts": self._attempts(attempt, workers)}
        if attempt == 0:
            context["warm"] = self.fork_workers
        return context

    def _attempts(self, attempt: int, workers: int) -> list[dict[str, int]]:
        """Each attempt's worker count so far (the views show how an elastic job shrank)."""
        self.attempt_workers = [*getattr(self, "attempt_workers", [])[:attempt], workers]
        return [{"attempt": n, "workers": w} for n, w in enumerate(self.attempt_workers)]

    def spawn(self, rank: int, env: dict[str, str]) -> subprocess.Popen[bytes] | ForkedWorker:
        with self.files.open_rank_log(rank) as log:
            if self.fork_workers:
                payload, cwd = str(self.files.payload), self.record.workdir or None
                process: subprocess.Popen[bytes] | ForkedWorker = fork_worker(
                    payload, env, cwd, log.fileno()
                )
            else:
                process = subprocess.Popen(
                    [sys.executable, "-m", "jupyter_training.runtime", str(self.files.payload)],
                    env=env,
                    cwd=self.record.workdir or None,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
        fd = exit_fd(process.pid)
        if fd is not None:
            self.exit_fds[rank] = fd
        self.emit(Event("worker", self.job_id, {"state": "started", "pid": process.pid}, rank))
        return process

    def sleep_until_change(self, exited: dict[int, int]) -> None:
        """Sleep until a running worker exits, a signal arrives or the deadline is near."""
        if self.signal_fd is None or len(self.exit_fds) < len(self.workers):
            time.sleep(POLL_SECONDS)  # no pidfds here: poll
            return
        running = [fd for rank, fd in self.exit_fds.items() if rank not in exited]
        timeout = IDLE_SECONDS
        if self.deadline is not None:
            timeout = min(timeout, max(0.0, self.deadline - time.time()) + POLL_SECONDS)
        wait_readable([*running, self.signal_fd], timeout)
        with contextlib.suppress(BlockingIOError):
            os.read(self.signal_fd, 512)

    def watch(self) -> tuple[str, dict[str, Any]]:
        exited = self.exited = {}
        while True:
            # An OOM kill counts before its process has exited: a rank found dead now was
            # killed after the previous look's count was read, never before it.
            oom_count = oom_kills()
            if self.stop_reason == "cancel":
                self.stop_workers()
                return "cancelled", {}
            if self.deadline is not None and time.time() > self.deadline:
                self.stop_workers()
                reason = f"timed out after {self.spec.timeout:g} s (--timeout)"
                return "timed out", {"reason": reason, "rank": None, "exit_code": None}
            newly_failed = []
            for rank, process in self.workers.items():
                code = process.poll()
                if code is None or rank in exited:
                    continue
                exited[rank] = code
                self.emit(
                    Event("worker", self.job_id, {"state": "exited", "exit_code": code}, rank)
                )
                if code != 0:
                    newly_failed.append(rank)
            if newly_failed:
                first = min(newly_failed, key=self.files.rank_log_mtime)
                failure = self.describe_failure(first, exited[first])
                per_worker = int(self.spec.nproc_per_worker)
                failure["lost_workers"] = len({rank // per_worker for rank in newly_failed})
                self.stop_workers()
                return "failed", failure
            if len(exited) == len(self.workers):
                self.stop_workers()  # reaps leftovers such as data-loader children
                return "succeeded", {}
            self.oom_kills_before = oom_count
            self.sleep_until_change(exited)

    def describe_failure(self, rank: int, code: int) -> dict[str, Any]:
        oom_killed = False
        if code < 0:
            name = signal_name(-code)
            reason = f"rank {rank} was killed by {name}"
            kills = oom_kills()
            before = self.oom_kills_before
            if code == -signal.SIGKILL and None not in (kills, before) and kills > before:
                oom_killed = True
                reason += ": out of memory (the kernel's OOM killer ran as it died)"
        else:
            name = None
            reason = f"rank {rank} exited with code {code}"
        failure: dict[str, Any] = {
            "reason": reason,
            "rank": rank,
            "exit_code": code,
            "signal": name,
            "oom_killed": oom_killed,
        }
        tail, error = self.files.rank_log_tail(rank)
        failure["log_tail"] = tail
        if error is not None:
            failure.update(
                exc_type=error.get("exc_type"),
                exc_module=error.get("exc_module"),
                exc_qualname=error.get("exc_qualname"),
                message=error.get("message"),
                traceback=error.get("traceback"),
            )
            failure["reason"] = f"{reason}: {error.get('exc_type')}: {error.get('message')}"
        return failure

    def stop_workers(self) -> None:
        """SIGTERM every worker's process group, then SIGKILL what is left."""
        signal_groups(self.workers.values(), signal.SIGTERM)
        end = time.time() + self.grace
        while time.time() < end and any(p.poll() is None for p in self.workers.values()):
            time.sleep(POLL_SECONDS)
        signal_groups(self.workers.values(), signal.SIGKILL)
        reported = getattr(self, "exited", {})
        for rank, process in self.workers.items():
            code = process.wait()
            if rank not in reported:  # stopped by us: say so, so no view shows it running
                data = {"state": "exited", "exit_code": code, "reason": "stopped"}
                self.emit(Event("worker", self.job_id, data, rank))
        for fd in self.exit_fds.values():
            os.close(fd)
        self.workers = {}
        self.exited = {}
        self.exit_fds = {}


#: How the backend starts a supervisor: fork away from the launcher first, import after,
#: so the launcher waits only for an interpreter's start (the imports cost ~100 ms).
BOOT = (
    "import os, sys\n"
    "if os.fork() > 0:\n"
    "    os._exit(0)\n"
    "from jupyter_training.backends.local.supervisor import main\n"
    "main(sys.argv[1:], forked=True)\n"
    "sys.stdout.flush()\n"
    "os._exit(0)\n"
)


def main(argv: list[str] | None = None, *, forked: bool = False, warm: bool = False) -> None:
    """Supervise one job; ``forked``: already detached; ``warm``: fork the workers too."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--job", required=True)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--result-limit", type=int, default=None)
    args = parser.parse_args(argv)
    if not forked and os.fork() > 0:  # the kernel reaps this parent at once: no zombie
        os._exit(0)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    files = JobFiles(args.dir)
    store = JobStore(args.db)
    supervisor = Supervisor(
        store, args.job, files, args.grace, args.result_limit, fork_workers=warm
    )
    signal.signal(signal.SIGTERM, supervisor.request_cancel)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    supervisor.signal_fd = wake_read
    try:
        supervisor.run()
    except BaseException as err:  # record why, never leave the job Running forever
        supervisor.stop_workers()
        reason = f"supervisor error: {type(err).__name__}: {err}"
        supervisor.set_phase(FAILED, reason, failure={"reason": reason}, finished=time.time())
        records.emit("error", stream=sys.stderr, message=reason)
        raise


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
