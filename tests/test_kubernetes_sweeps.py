"""Sweeps on the emulated cluster: every trial a real Kubeflow job, its pods run as local
processes whose output streams into the pod logs line by line, so the driver and its pruner
see each report live; a pruned trial's job is deleted and it ends Pruned, never Failed."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest
from IPython.utils.capture import capture_output
from test_kubernetes import Consumer

from jupyter_training.backends.kubernetes.targets import LABEL_SWEEP, target_for
from jupyter_training.backends.kubernetes.watch import JobWatch
from jupyter_training.client import TrainingClient
from jupyter_training.events import FAILED, PRUNED, RUNNING, SUCCEEDED
from jupyter_training.spec import JobSpec

from conftest import processes_of, wait_until
from k8s.fixtures import *  # noqa: F403 - pytest fixtures: kube, kubeconfig, operator, ...
from k8s.kubelet import start_pods

NS = "default"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

#: The loss is smallest at lr = 0.01; three reports per trial.
LR_CELL = (
    "import math\n"
    "import jupyter_training as jt\n"
    "for step in range(3):\n"
    "    jt.report(step=step, total=3, loss=(math.log10(lr) + 2) ** 2 + 0.1 / (step + 1))\n"
)

#: A larger lr is worse at every step; each step takes a while, so the pruner can stop a
#: trial while its pod still runs.
SLOW_CELL = (
    "import time\n"
    "import jupyter_training as jt\n"
    "for step in range(8):\n"
    "    jt.report(step=step, loss=lr + 1 / (step + 1))\n"
    "    time.sleep(0.25)\n"
)


class Kubelet:
    """The operator and a kubelet for every job of ``kinds`` that appears: pods created and
    run as local processes, each line of their output appended to the pod's log as it is
    printed; a job that succeeds or fails when its processes exit; and, as the garbage
    collector would after a foreground delete, pods killed and removed once their job is
    gone (a pruned or cancelled trial)."""

    def __init__(self, kube, operator, root: Path, kinds: tuple[str, ...]) -> None:
        self.kube, self.operator, self.root, self.kinds = kube, operator, root, kinds
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.deleted: list[str] = []  # jobs whose pods were killed because the job went
        self.processes: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._loop = threading.Thread(target=self._run, name="kubelet", daemon=True)

    def __enter__(self) -> Kubelet:
        self._loop.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._loop.join(10)
        for thread in self._threads:
            thread.join(30)
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        if exc[0] is None:
            assert self.errors == [], self.errors

    def _run(self) -> None:
        while not self.stopping.is_set():
            for kind in self.kinds:
                try:
                    job = self.operator.wait_for_job(kind, NS, timeout=0.05)
                except TimeoutError:
                    continue
                thread = threading.Thread(target=self._serve, args=(job,), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _gone(self, job) -> bool:
        return self.kube.get(job.kind.resource, NS, job.name) is None

    def _serve(self, job) -> None:
        try:
            job.create_pods()
            job.run_all()
            processes = start_pods(self.kube, job, self.root / job.name)
            self.processes += processes
            pipes = [
                threading.Thread(target=self._pipe, args=(job, rank, process), daemon=True)
                for rank, process in zip(job.ranks(), processes, strict=True)
            ]
            for pipe in pipes:
                pipe.start()
            while any(p.poll() is None for p in processes):
                if self._gone(job) or self.stopping.is_set():
                    self._kill(job, processes)
                    return
                time.sleep(0.05)
            for pipe in pipes:
                pipe.join(10)
            for rank, process in zip(job.ranks(), processes, strict=True):
                job.exit(rank, process.returncode)
            if all(p.returncode == 0 for p in processes):
                job.succeed()
            else:
                job.fail("a replica failed")
        except Exception as err:
            if not self._gone(job):  # a job deleted under our feet is not an error
                self.errors.append(err)

    def _pipe(self, job, rank: int, process) -> None:
        for line in process.stdout:
            with contextlib.suppress(LookupError):  # the pod is gone
                job.log(rank, line)

    def _kill(self, job, processes) -> None:
        self.deleted.append(job.name)
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(5)
            except Exception:
                process.kill()
        for pod in job.pods():
            self.kube.delete("pods", NS, pod["metadata"]["name"])


def run_sweep(ip, line: str, cell: str) -> dict[str, Any] | None:
    with capture_output():
        return ip.run_cell_magic(
            "train_sweep", f"--progress text --backend kubernetes {line}", cell
        )


def store_of(ip):
    return ip.magics_manager.registry["TrainingMagics"].client.store


def finished(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(
        c["type"] in ("Succeeded", "Failed", "Complete") and c["status"] == "True"
        for c in conditions
    )


def most_unfinished_at_once(history: list[tuple[str, dict[str, Any]]], sweep_id: str) -> int:
    """From the API server's watch history: the most of the sweep's jobs that existed
    unfinished at the same moment."""
    alive: set[str] = set()
    peak = 0
    for kind, obj in history:
        if (obj["metadata"].get("labels") or {}).get(LABEL_SWEEP) != sweep_id:
            continue
        name = obj["metadata"]["name"]
        if kind == "ADDED":
            alive.add(name)
        elif kind == "DELETED" or finished(obj):
            alive.discard(name)
        peak = max(peak, len(alive))
    return peak


# -- a sweep of PyTorchJobs ------------------------------------------------------------------


def test_a_sweep_runs_each_trial_as_a_labelled_pytorchjob_two_at_a_time(
    ip, kubeconfig, kube, operator, tmp_path
):
    with Kubelet(kube, operator, tmp_path, ("pytorchjobs",)):
        best = run_sweep(
            ip,
            "--api v1 --queue team-q -w 2 --param lr=loguniform(1e-4,1) --trials 4 "
            "--parallel 2 --objective loss:min --seed 5 --name lrk8s",
            LR_CELL,
        )
    store = store_of(ip)
    sweep = store.get_sweep("lrk8s")
    assert sweep.phase == SUCCEEDED, sweep.message
    trials = store.sweep_jobs(sweep.id)
    assert sorted(t.name for t in trials) == [f"lrk8s-t{n}" for n in range(4)]
    assert {t.phase for t in trials} == {SUCCEEDED}
    assert all(t.sweep == sweep.id and t.backend == "kubernetes" for t in trials)
    # Every trial is a PyTorchJob of two pods, labelled with the sweep and the queue.
    for trial in trials:
        job = kube.get("pytorchjobs", NS, trial.name)
        labels = job["metadata"]["labels"]
        assert labels[LABEL_SWEEP] == sweep.id and labels[QUEUE_LABEL] == "team-q"
        assert labels["jupyter-training.io/job-id"] == trial.id
        assert job["spec"]["runPolicy"]["schedulingPolicy"]["queue"] == "team-q"
        specs = job["spec"]["pytorchReplicaSpecs"]
        assert (specs["Master"]["replicas"], specs["Worker"]["replicas"]) == (1, 1)
    # Created as slots freed up: never more than --parallel unfinished, and really that many.
    assert most_unfinished_at_once(kube.history("pytorchjobs", NS), sweep.id) == 2
    # The best trial's values come back, and its record says so.
    values = {t.id: t.params["lr"] for t in trials}
    losses = {t.id: store.history(t.id, "loss", rank=0)[-1][2] for t in trials}
    winner = min(losses, key=losses.get)
    assert best == {"lr": values[winner]}
    assert sweep.best["job"] == winner and sweep.best["params"] == {"lr": values[winner]}
    assert math.isclose(sweep.best["value"], losses[winner])
    # Each trial's history came from its pods' logs: three steps on each of two ranks.
    for trial in trials:
        points = store.history(trial.id, "loss")
        assert sorted((rank, step) for rank, step, _, _ in points) == [
            (rank, step) for rank in (0, 1) for step in range(3)
        ]
        lr = trial.params["lr"]
        assert points[-1][2] == pytest.approx((math.log10(lr) + 2) ** 2 + 0.1 / 3)
        assert sweep.trials[trial.tags["trial"]]["phase"] == SUCCEEDED


# -- pruning ---------------------------------------------------------------------------------


def test_median_pruning_deletes_the_hopeless_trials_pytorchjobs(
    ip, kubeconfig, kube, operator, tmp_path
):
    with Kubelet(kube, operator, tmp_path, ("pytorchjobs",)) as kubelet:
        best = run_sweep(
            ip,
            "--api v1 -w 1 --param lr=choice(1,2,3,4,5,6) --sampler grid --seed 7 --trials 6 "
            "--parallel 2 --prune median --name prunek8s",
            SLOW_CELL,
        )
    store = store_of(ip)
    sweep = store.get_sweep("prunek8s")
    trials = store.sweep_jobs(sweep.id)
    phases = [t.phase for t in trials]
    assert sweep.phase == SUCCEEDED, sweep.message  # pruned trials are not failures
    assert PRUNED in phases and FAILED not in phases, phases
    history = kube.history("pytorchjobs", NS)
    pruned = [t for t in trials if t.phase == PRUNED]
    for record in pruned:
        assert record.message.startswith("pruned at step")
        assert sweep.trials[record.tags["trial"]]["phase"] == PRUNED
        # Its PyTorchJob was deleted before the operator could call it finished.
        assert kube.get("pytorchjobs", NS, record.name) is None
        events = [(kind, obj) for kind, obj in history if obj["metadata"]["name"] == record.name]
        assert events[-1][0] == "DELETED" and not any(finished(obj) for _, obj in events)
        wait_until(lambda record=record: processes_of(record.id) == [], timeout=10)
    # A trial worse than a finished one at its first step is stopped while its pod runs
    # (one pruned near its end may have seen its process exit just before the delete).
    early = [t for t in pruned if t.name in kubelet.deleted]
    assert early, (pruned, kubelet.deleted)
    assert any(len(store.history(t.id, "loss", rank=0)) < 8 for t in early)
    assert best["lr"] == min(t.params["lr"] for t in trials if t.phase == SUCCEEDED)


def test_a_stop_as_pruned_deletes_the_job_and_ends_its_stream_pruned(
    settings, kubeconfig, kube, operator
):
    client = TrainingClient(settings)
    record = client.submit(
        JobSpec(backend="kubernetes", api="v1", workers=2, name="doomed"), "pass", {}
    )
    stream = Consumer(client, record.id)
    job = operator.wait_for_job("pytorchjobs", NS, record.name)
    job.create_pods()
    job.run_all()
    job.log(0, ["step 0"])
    wait_until(lambda: RUNNING in stream.phases(), timeout=10)
    final = client.backend("kubernetes").cancel(
        record.id, phase=PRUNED, message="pruned at step 0: loss=3 (--prune median)"
    )
    assert (final.phase, final.message) == (PRUNED, "pruned at step 0: loss=3 (--prune median)")
    stream.join()
    phases = stream.phases()
    assert phases[-1] == PRUNED and FAILED not in phases, phases
    assert stream.lines(0) == ["step 0"]
    assert kube.get("pytorchjobs", NS, "doomed") is None
    assert kube.get("configmaps", NS, "doomed-payload") is None
    again = TrainingClient(settings).get(record.id)  # another kernel reads the same
    assert (again.phase, again.message) == (PRUNED, final.message) and again.finished


class _ClosedMidRead:
    """A watch response that ``JobWatch.stop()`` closes while it is read: http.client's
    ``fp`` is then None, and urllib3 fails with AttributeError."""

    def __init__(self, watch: JobWatch, *, stop: bool) -> None:
        self.watch, self.do_stop = watch, stop

    def stream(self, *args: Any, **kwargs: Any):
        if self.do_stop:
            self.watch.stop()
        raise AttributeError("'NoneType' object has no attribute 'read'")
        yield b""  # pragma: no cover - a generator, like urllib3's


@pytest.mark.parametrize("stop", [True, False], ids=["stopped", "not-stopped"])
def test_a_watch_closed_by_stop_mid_read_ends_quietly(stop):
    """A stream ended by its consumer (every trial's, once its job ends or is pruned)
    stops its watches while they read; that is no error. Without a stop it is one."""
    cluster = types.SimpleNamespace(timeout=1.0, core=types.SimpleNamespace())
    watch = JobWatch(cluster, target_for("pytorch", "v1"), NS, "job", "0123456789ab")
    cluster.core.list_namespaced_pod = lambda *a, **k: _ClosedMidRead(watch, stop=stop)
    if stop:
        watch._watch_pods()  # returns: no exception left for the thread to die of
        assert watch.stopping.is_set()
    else:
        with pytest.raises(AttributeError):
            watch._watch_pods()


# -- the other kinds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "kind"),
    [("-f xgboost --api v1", "xgboostjobs"), ("--api v2", "trainjobs")],
    ids=["xgboostjob", "trainjob"],
)
def test_xgboostjob_and_trainjob_trials(ip, kubeconfig, kube, operator, tmp_path, flags, kind):
    if "xgboost" in flags:
        pytest.importorskip("xgboost")
    with Kubelet(kube, operator, tmp_path, (kind,)):
        best = run_sweep(
            ip,
            f"{flags} -w 2 --param lr=choice(0.001,0.01) --sampler grid --trials 2 "
            "--parallel 2 --name kinds",
            LR_CELL,
        )
    store = store_of(ip)
    sweep = store.get_sweep("kinds")
    assert sweep.phase == SUCCEEDED, sweep.message
    assert best == {"lr": 0.01}
    trials = store.sweep_jobs(sweep.id)
    assert sorted(t.name for t in trials) == ["kinds-t0", "kinds-t1"]
    for trial in trials:
        assert trial.phase == SUCCEEDED and trial.sweep == sweep.id
        obj = kube.get(kind, NS, trial.name)
        assert obj["metadata"]["labels"][LABEL_SWEEP] == sweep.id
        assert len(store.history(trial.id, "loss", rank=0)) == 3
