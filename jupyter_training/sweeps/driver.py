"""The sweep loop: ask Optuna for a trial, run it as a job, feed its reports back, tell.

At most ``--parallel`` trial jobs run at once, and exactly that many while
trials remain. Each trial's event stream is read on its own thread into one
queue; the driver's thread records every trial's history (as a single job's
follower does), feeds rank 0's objective to the pruner, stops a pruned trial's
job (phase Pruned), and tells the study each outcome. The study lives in a
SQLite file, and each trial's outcome in the job store, so a sweep whose
kernel died carries on with ``--resume``: finished trials are told, running
ones adopted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pickle
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..backends.local.host import process_start_time
from ..client import TrainingClient
from ..events import CANCELLED, FAILED, PRUNED, RUNNING, SUCCEEDED, Event
from ..runtime.payload import Payload, ValueBlob
from ..spec import SpecError
from ..store import JobRecord, SweepRecord
from ..tracking.recorder import RunRecorder
from . import study as optuna_study
from .options import SweepSpec
from .state import SweepState, TrialInfo

TICK_SECONDS = 0.1
#: How often the driver looks for a cancel made elsewhere (``%train_cancel SWEEP``).
CANCEL_CHECK_SECONDS = 0.5
_END = object()


class SweepError(RuntimeError):
    """The sweep stopped before its trials were done (the message says why)."""


class SweepView(Protocol):
    stop_requested: bool

    def refresh(self, state: SweepState) -> None: ...
    def close(self) -> None: ...


def sweep_dir(store_path: Path, sweep_id: str) -> Path:
    """Where a sweep keeps its study, its captured payload and the notebook params."""
    return Path(store_path).parent / "sweeps" / sweep_id


@dataclasses.dataclass
class _Running:
    """A trial whose job runs, and what the driver tracks for it."""

    info: TrialInfo
    trial: Any  # optuna.Trial
    recorder: RunRecorder
    stop: threading.Event
    reports: int = 0
    best: float | None = None
    pushed: set[int] = dataclasses.field(default_factory=set)
    unpushed: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    stopping: bool = False
    ended: bool = False


class SweepDriver:
    """Runs one sweep's remaining trials in the calling thread."""

    def __init__(
        self,
        client: TrainingClient,
        sweep: SweepRecord,
        view: SweepView,
        *,
        workdir: str | None = None,
        on_state: Callable[[SweepState], None] | None = None,
    ) -> None:
        self.client = client
        self.sweep = sweep
        self.spec = SweepSpec.from_dict(sweep.spec)
        self.view = view
        self.workdir = workdir or os.getcwd()
        self.directory = sweep_dir(client.store.path, sweep.id)
        self.payload = Payload.read(self.directory / "payload.bin")
        self.base_params = json.loads((self.directory / "params.json").read_text())
        self.state = SweepState(sweep, self.spec)
        self.study = optuna_study.open_study(self.directory / "study.db", sweep.id, self.spec)
        self.distributions = optuna_study.distributions(self.spec.params)
        self.running: dict[int, _Running] = {}
        self.failures = 0
        self.reported_objective = False
        #: Why the sweep ends early: (Failed or Cancelled, message).
        self.problem: tuple[str, str] | None = None
        self.stopping = False
        self._events: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=20_000)
        self._last_cancel_check = 0.0
        self._on_state = on_state

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> SweepState:
        """Run (or continue) the sweep until its trials are done, it fails or is stopped."""
        self.client.store.update_sweep(
            self.sweep.id,
            phase=RUNNING,
            message="",
            finished=None,
            driver_pid=os.getpid(),
            driver_start=process_start_time(os.getpid()),
        )
        interrupted = False
        try:
            self._reconcile()
            while True:
                self._check_stop()
                if self.stopping:  # the running trials are stopped below
                    break
                self._launch_free_slots()
                if not self.running and self._remaining() == 0:
                    break
                self._handle_events()
                self._launch_free_slots()  # a slot a trial just freed, before the pruner
                self._push_reports()
                self.view.refresh(self.state)
                if self._on_state is not None:
                    self._on_state(self.state)
        except KeyboardInterrupt:
            interrupted = True
            self.problem = (CANCELLED, "interrupted: every running trial was cancelled")
            raise
        finally:
            self._stop_all(CANCELLED if interrupted or self.stopping else None)
            self._finish(interrupted)
            self.view.refresh(self.state)
        return self.state

    def _remaining(self) -> int:
        """Trials still to start: the budget less those that ran to an outcome."""
        budget = self.spec.trials
        if self.spec.grid_size is not None:
            budget = min(budget, self.spec.grid_size)
        counted = [t for t in self.state.trials.values() if t.phase != CANCELLED]
        return max(0, budget - len(counted))

    def _launch_free_slots(self) -> None:
        while len(self.running) < self.spec.parallel and self._remaining() > 0:
            self._check_stop(now=True)  # never start a trial after a cancel
            if self.stopping or not self._launch():
                return

    def _launch(self) -> bool:
        trial = self.study.ask(self.distributions)
        values = dict(trial.params)
        name = f"{self.sweep.name}-t{trial.number}"
        info = TrialInfo(trial.number, values, name=name, started=time.time())
        self.state.trials[trial.number] = info
        job = self.spec.job.replace(
            name=name,
            sweep=self.sweep.id,
            tags={**self.spec.job.tags, "sweep": self.sweep.name, "trial": str(trial.number)},
        )
        try:
            record = self.client.submit_payload(
                job,
                self._payload_for(values),
                self.sweep.cell,
                params={**self.base_params, **values},
                notebook=self.sweep.notebook,
                workdir=self.workdir,
            )
        except (SpecError, OSError, RuntimeError) as err:  # SubmitError is a RuntimeError
            info.phase, info.message, info.finished = FAILED, f"not submitted: {err}", time.time()
            self._tell(trial, "FAIL")
            self._record_trial(info)
            self._count_failure(info)
            return not self.stopping
        trial.set_user_attr("job_id", record.id)
        info.job_id = record.id
        self._record_trial(info)
        self._follow(info, trial)
        return True

    def _payload_for(self, values: dict[str, Any]) -> Payload:
        """The sweep's payload with the trial's values in place of (or beside) the
        captured notebook values of the same names."""
        kept = [v for v in self.payload.values if v.name not in values]
        added = [ValueBlob(n, pickle.dumps(v, protocol=4)) for n, v in values.items()]
        return dataclasses.replace(self.payload, values=[*kept, *added])

    def _follow(self, info: TrialInfo, trial: Any, pushed: set[int] | None = None) -> None:
        """Read the trial job's events (from the start) on a thread; ``pushed``: the
        steps the pruner already has (an adopted trial's)."""
        assert info.job_id is not None
        recorder = RunRecorder(
            self.client.store, info.job_id, mlflow_uri=self.client.settings.mlflow_uri
        )
        run = _Running(info, trial, recorder, threading.Event(), pushed=set(pushed or ()))
        self.running[info.number] = run
        thread = threading.Thread(
            target=self._pump, args=(info.number, info.job_id, run.stop), daemon=True
        )
        thread.start()

    def _pump(self, number: int, job_id: str, stop: threading.Event) -> None:
        events = self.client.events(job_id, stop=stop)
        try:
            for event in events:
                if not self._put((number, event), stop):
                    return
        except Exception as err:  # the trial's stream broke: it ends as the store has it
            self._put((number, err), stop)
        finally:
            with contextlib.suppress(Exception):
                events.close()  # type: ignore[attr-defined]
            self._put((number, _END), stop)

    def _put(self, item: tuple[int, Any], stop: threading.Event) -> bool:
        while not stop.is_set():
            try:
                self._events.put(item, timeout=TICK_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    # -- events -----------------------------------------------------------------------------

    def _handle_events(self) -> None:
        try:
            items = [self._events.get(timeout=TICK_SECONDS)]
        except queue.Empty:
            items = []
        while items and len(items) < 5000:
            try:
                items.append(self._events.get_nowait())
            except queue.Empty:
                break
        for number, item in items:
            run = self.running.get(number)
            if run is None:
                continue
            if item is _END or isinstance(item, Exception):
                self._trial_ended(run)
                continue
            self._on_event(run, item)
        for run in list(self.running.values()):
            run.recorder.flush_if_due()

    def _on_event(self, run: _Running, event: Event) -> None:
        run.recorder.feed(event)
        info = run.info
        if event.kind == "phase":
            phase = event.data.get("phase", info.phase)
            if not run.stopping or phase in (PRUNED, CANCELLED):
                info.phase = phase
            info.message = event.data.get("message", "")
        elif event.kind == "report" and event.rank == 0:
            data = event.data
            if data.get("step") is not None:
                info.step = data["step"]
            if data.get("total") is not None:
                info.total = data["total"]
            value = (data.get("metrics") or {}).get(self.spec.metric)
            if isinstance(value, int | float) and math.isfinite(value):
                self.reported_objective = True
                info.current = float(value)
                if run.best is None or self.spec.better(float(value), run.best):
                    run.best = float(value)
                step = data["step"] if data.get("step") is not None else run.reports
                run.reports += 1
                # Only a pruner reads intermediate values (each is a study write, ~10 ms).
                pruning = self.spec.prune != "none"
                if pruning and _worth_pushing(step) and step not in run.pushed:
                    run.unpushed.append((int(step), float(value)))

    def _push_reports(self) -> None:
        """Hand the intermediate values to the pruner; stop a trial it prunes."""
        for run in list(self.running.values()):
            if not run.unpushed or run.stopping:
                continue
            points, run.unpushed = run.unpushed, []
            for step, value in points:
                if step not in run.pushed:
                    run.trial.report(value, step)
                    run.pushed.add(step)
            if self.spec.prune != "none" and run.trial.should_prune():
                step, value = points[-1]
                message = (
                    f"pruned at step {step}: {self.spec.metric}={value:.4g} "
                    f"(--prune {self.spec.prune})"
                )
                self._stop_trial(run, PRUNED, message)

    def _stop_trial(self, run: _Running, phase: str, message: str) -> None:
        run.stopping = True
        run.info.message = message
        job_id = run.info.job_id

        def stop() -> None:
            with contextlib.suppress(Exception):
                self.client.cancel(job_id, phase=phase, message=message)

        threading.Thread(target=stop, name="jt-sweep-stop", daemon=True).start()

    def _trial_ended(self, run: _Running) -> None:
        info = run.info
        for step, value in run.unpushed:  # the pruner keeps the whole curve
            if step not in run.pushed:
                with contextlib.suppress(Exception):
                    run.trial.report(value, step)
        run.unpushed = []
        self.running.pop(info.number, None)
        run.stop.set()
        record = self._final_record(info)
        run.recorder.close(complete=record is not None and record.is_terminal)
        if record is None or not record.is_terminal:
            # The stream broke with the job still running (a lost watch): stop it, so
            # nothing of the sweep is left running, and count it as failed.
            with contextlib.suppress(Exception):
                record = self.client.cancel(info.job_id or "")
            info.phase = FAILED
            info.message = "lost track of the trial's job; it was stopped"
        else:
            info.phase, info.message = record.phase, record.message or info.message
            info.started = record.started or info.started
            info.finished = record.finished or time.time()
        info.finished = info.finished or time.time()
        if info.phase == SUCCEEDED:
            value = run.best if self.spec.objective_mode == "best" else info.current
            if value is None and record is not None:
                value = (record.metrics or {}).get(self.spec.metric)
            if value is None or not math.isfinite(value):
                info.phase = FAILED
                info.message = f"succeeded without reporting {self.spec.metric!r} (--objective)"
                self._tell(run.trial, "FAIL")
                self._record_trial(info)
                if not self.reported_objective:
                    self._stop_early(
                        FAILED,
                        f"--objective: trial {info.number} ran to the end without reporting "
                        f"{self.spec.metric!r}; report it with "
                        f"jupyter_training.report({self.spec.metric}=...) or choose a metric "
                        "the cell reports",
                    )
                else:
                    self._count_failure(info)
                return
            info.value = float(value)
            self._tell(run.trial, "COMPLETE", info.value)
        elif info.phase == PRUNED:
            self._tell(run.trial, "PRUNED")
        elif info.phase == CANCELLED:
            self._tell(run.trial, "FAIL")
        else:
            self._tell(run.trial, "FAIL")
            self._record_trial(info)
            self._count_failure(info)
            return
        self._record_trial(info)

    def _final_record(self, info: TrialInfo) -> JobRecord | None:
        if info.job_id is None:
            return None
        try:
            return self.client.get(info.job_id)
        except (KeyError, RuntimeError):
            return None

    def _count_failure(self, info: TrialInfo) -> None:
        self.failures += 1
        if self.failures >= self.spec.failure_limit:
            self._stop_early(
                FAILED,
                f"stopped after {self.failures} failed trials (--max-failures "
                f"{self.spec.failure_limit}); the last, {info.name}: {info.message}",
            )

    def _stop_early(self, phase: str, message: str) -> None:
        """Start no more trials; the running ones are stopped and the sweep ends in
        ``phase`` (the first reason given wins)."""
        if not self.stopping:
            self.stopping = True
            self.problem = (phase, message)

    def _tell(self, trial: Any, state: str, value: float | None = None) -> None:
        with contextlib.suppress(Exception):  # already told (a resume racing an old driver)
            if state == "COMPLETE":
                self.study.tell(trial, value)
            else:
                self.study.tell(trial, state=optuna_study.trial_state(state))

    def _record_trial(self, info: TrialInfo) -> None:
        self.client.store.set_trial(self.sweep.id, info.number, info.entry())
        best = self.state.best
        if best is not None:
            self.client.store.update_sweep(
                self.sweep.id,
                best={
                    "trial": best.number,
                    "job": best.job_id,
                    "name": best.name,
                    "value": best.value,
                    "params": best.params,
                },
            )

    # -- stopping ---------------------------------------------------------------------------

    def _check_stop(self, *, now: bool = False) -> None:
        """Notice a stop asked for in the view or elsewhere (``%train_cancel SWEEP``)."""
        if self.view.stop_requested:
            self._stop_early(CANCELLED, "stopped from the sweep view")
        clock = time.monotonic()
        if not now and clock - self._last_cancel_check < CANCEL_CHECK_SECONDS:
            return
        self._last_cancel_check = clock
        current = self.client.store.get_sweep(self.sweep.id)
        if current.phase == CANCELLED:
            self._stop_early(CANCELLED, current.message or "cancelled")

    def _stop_all(self, phase: str | None) -> None:
        """Stop every running trial's job (on interrupt, cancel or early stop) and wait;
        also a job an interrupt caught between its launch and its tracking."""
        for run in self.running.values():
            run.stopping = True
        tracked = {run.info.job_id for run in self.running.values()}
        unfinished = {
            r.id for r in self.client.store.sweep_jobs(self.sweep.id) if not r.is_terminal
        }
        threads = []
        for job_id in sorted((tracked | unfinished) - {None}):

            def stop(job_id: str = job_id) -> None:
                with contextlib.suppress(Exception):
                    self.client.cancel(job_id)

            thread = threading.Thread(target=stop, daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(60)
        for run in list(self.running.values()):
            run.stop.set()
            record = self._final_record(run.info)
            run.recorder.close(complete=False)
            info = run.info
            info.phase = record.phase if record is not None and record.is_terminal else CANCELLED
            if info.phase == SUCCEEDED:  # it ended before the stop reached it
                info.phase = CANCELLED
            info.message = info.message or (phase and "stopped with the sweep") or ""
            info.finished = time.time()
            self._tell(run.trial, "FAIL")
            self._record_trial(info)
        self.running.clear()

    def _finish(self, interrupted: bool) -> None:
        if self.problem is None and self._remaining() == 0 and not interrupted:
            phase, message = SUCCEEDED, self._summary()
        else:
            phase, message = self.problem or (CANCELLED, "stopped")
        current = self.client.store.get_sweep(self.sweep.id)
        if current.phase == CANCELLED:  # cancelled from elsewhere: keep its message
            phase, message = CANCELLED, current.message or message
        self.client.store.update_sweep(
            self.sweep.id, phase=phase, message=message, finished=time.time(), driver_pid=None
        )
        self.state.phase, self.state.message = phase, message
        self.state.sweep = self.client.store.get_sweep(self.sweep.id)

    def _summary(self) -> str:
        best = self.state.best
        counts = self.state.counts()
        done = ", ".join(f"{n} {phase.lower()}" for phase, n in sorted(counts.items()))
        if best is None:
            return f"{done}; no trial succeeded"
        return f"{done}; best: trial {best.number} {self.spec.metric}={best.value:.6g}"

    # -- resume -----------------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Take up the trials an earlier driver left: finished ones are told, running
        ones followed; a trial asked for but never started is run again."""
        stored = {int(k): v for k, v in self.sweep.trials.items()}
        frozen = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        for number, entry in sorted(stored.items()):
            info = TrialInfo.from_entry(number, entry)
            self.state.trials[number] = info
            if info.phase == FAILED:
                self.failures += 1
            if info.value is not None:
                self.reported_objective = True
        for number, trial in sorted(frozen.items()):
            info = self.state.trials.get(number)
            handle = optuna_study.trial_handle(self.study, trial._trial_id)
            if info is not None and info.job_id is not None and not info.is_terminal:
                # Its job ran on without a driver: read its events from the start; the
                # outcome (told now, if the study does not have it yet) follows.
                self._follow(info, handle, set(trial.intermediate_values))
            elif trial.state.name != "RUNNING":
                continue
            elif info is None or info.job_id is None:  # asked for, never submitted
                self._tell(handle, "FAIL")
                self.study.enqueue_trial(dict(trial.params))
                if info is not None:
                    info.phase = CANCELLED
                    self._record_trial(info)
            elif info.phase == SUCCEEDED and info.value is not None:
                self._tell(handle, "COMPLETE", info.value)
            else:
                self._tell(handle, "PRUNED" if info.phase == PRUNED else "FAIL")
        for _, info in sorted(self.state.trials.items()):
            if info.phase == CANCELLED and not info.rerun:
                # Stopped with the sweep last time: the resumed sweep runs its values again.
                self.study.enqueue_trial(dict(info.params))
                info.rerun = True
                self._record_trial(info)


def _worth_pushing(step: int) -> bool:
    """Which steps reach the pruner: every one below 10, then every 10th below 100,
    every 100th below 1,000, ... (the same steps for every trial, so the pruner compares
    like with like; about nine study writes per decade of steps)."""
    if step < 10:
        return True
    stride = 10 ** (len(str(int(step))) - 1)
    return step % stride == 0
