"""The MLflow exporter against real MLflow: a ``sqlite:///`` store and an ``mlflow server``.

Jobs are built directly in a temporary job store; what reaches MLflow is read
back with MLflow's own client.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from jupyter_training.events import CANCELLED, FAILED, RUNNING, SUCCEEDED
from jupyter_training.spec import JobSpec
from jupyter_training.store import JobStore, new_job_id, pending_record
from jupyter_training.tracking.mlflow import JOB_ID_TAG, MlflowExporter, exporter_for

from conftest import wait_until

mlflow = pytest.importorskip("mlflow")

#: Metric names as jobs report them -> their MLflow keys (``@`` is not allowed there).
KEYS = {"loss": "loss", "acc@1": "acc_1"}
SERVER_TIMEOUT = pytest.mark.timeout(180)  # the module's mlflow server starts in ~10-20 s
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")


@pytest.fixture(scope="module", autouse=True)
def mlflow_env(tmp_path_factory):
    """No telemetry; the working directory (where a sqlite store puts its mlruns) is ours."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.chdir(tmp_path_factory.mktemp("mlflow-cwd"))
        yield


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow-sqlite') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory):
    """A real ``mlflow server`` on a free loopback port, for the whole module."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log_path = folder / "server.log"
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{folder / 'mlflow.db'}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            cwd=folder,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
            start_new_session=True,  # its uvicorn worker goes down with it
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not healthy(uri):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(3)  # a graceful uvicorn shutdown can take longer; its data is scratch
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(params=["sqlite", "server"])
def tracking_uri(request) -> str:
    return request.getfixturevalue(f"{request.param}_uri")


@pytest.fixture
def store(tmp_path) -> JobStore:
    return JobStore(tmp_path / "jobs.db")


@pytest.fixture
def exporters():
    """Make exporters (short lease and poll for tests); all are closed at the end."""
    made: list[MlflowExporter] = []

    def make(store: JobStore, uri: str, owner: str | None = None, **options) -> MlflowExporter:
        options = {"lease_seconds": 2.0, "poll_seconds": 0.1, **options}
        made.append(MlflowExporter(store, uri, owner, **options))
        return made[-1]

    yield make
    for exporter in made:
        exporter.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def make_job(store: JobStore, *, phase: str = SUCCEEDED, points=(), **fields) -> str:
    """A job in ``phase`` with ``points``; a terminal job has its whole history stored."""
    job_id = new_job_id()
    spec = fields.pop("spec", None) or JobSpec(workers=3, name=f"job-{job_id}")
    defaults = {"notebook": f"/home/me/{job_id}.ipynb", "started": 1_700_000_000.5}
    store.add(pending_record(job_id, spec, "print('training')\n", **{**defaults, **fields}))
    store.add_points(job_id, list(points))
    terminal = phase in (SUCCEEDED, FAILED, CANCELLED)
    store.update(job_id, phase=phase, history_done=int(terminal))
    if terminal:
        store.update(job_id, finished=1_700_000_100.25)
    return job_id


def make_points(ranks=3, count=2000, start=0, t0=1_700_000_000.0, names=tuple(KEYS)):
    """``ranks`` x metrics x ``count`` points; every third has no step (MLflow gets ``seq``),
    some are nan (``None`` in the store)."""
    return [
        (name, rank, t0 + i * 0.01, i, None if i % 3 == 0 else i // 2, reported(i))
        for rank in range(ranks)
        for name in names
        for i in range(start, start + count)
    ]


def reported(i: int) -> float | None:
    return None if i % 97 == 5 else random.random()


def comparable(value: float | None) -> tuple[bool, float]:
    """A value as ``(is_nan, value)``: nan never equals itself."""
    missing = value is None or math.isnan(value)
    return missing, 0.0 if missing else value


def expected_history(store: JobStore, job_id: str) -> dict[str, list[tuple[int, int, float]]]:
    history: dict[str, list[tuple[int, int, float]]] = {}
    for _, name, rank, when, seq, step, value in store.points_after(job_id, 0, 10**9):
        key = KEYS[name] if rank == 0 else f"rank{rank}/{KEYS[name]}"
        point = (int(when * 1000), seq if step is None else step, comparable(value))
        history.setdefault(key, []).append(point)
    return {key: sorted(points) for key, points in history.items()}


def assert_same_history(client, run_id: str, store: JobStore, job_id: str) -> None:
    """Every stored point is in the run exactly once, and nothing else is."""
    expected = expected_history(store, job_id)
    assert set(client.get_run(run_id).data.metrics) == set(expected)
    for key, points in expected.items():
        history = client.get_metric_history(run_id, key)
        got = sorted((m.timestamp, m.step, comparable(m.value)) for m in history)
        assert got == points, key


def runs_of(client, job_id: str):
    return client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`{JOB_ID_TAG}` = '{job_id}'",
    )


WITHOUT_MLFLOW = """
import sys, time
sys.modules["mlflow"] = None  # as if not installed
from jupyter_training.store import JobStore
from jupyter_training.tracking.mlflow import MlflowExporter
exporter = MlflowExporter(JobStore(sys.argv[1]), "sqlite:///never.db")
started = time.monotonic()
exporter.start(sys.argv[2])
print(exporter.wait(sys.argv[2], timeout=30), time.monotonic() - started < 5)
"""


def test_without_mlflow_the_module_imports_and_one_warning_says_so(store):
    job_id = make_job(store, points=make_points(1, 10))
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_MLFLOW, str(store.path), job_id],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]  # not exported; given up at once
    (warning,) = [line for line in done.stderr.splitlines() if "MLflow" in line]
    assert "sqlite:///never.db" in warning and "pip install mlflow-skinny" in warning


def test_one_shared_exporter_per_store_and_uri(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    first = exporter_for(store, "sqlite:///a.db")
    assert exporter_for(JobStore(tmp_path / "jobs.db"), "sqlite:///a.db") is first
    assert exporter_for(store, "sqlite:///b.db") is not first
    first.close()
    assert exporter_for(store, "sqlite:///a.db") is not first


@SERVER_TIMEOUT
def test_mlflow_ignores_a_point_it_already_has(tracking_uri):
    """What exactly-once rests on: re-sending a batch after a crash adds nothing."""
    from mlflow.entities import Metric

    client = mlflow.MlflowClient(tracking_uri)
    experiment_id = client.create_experiment(f"dedup-{new_job_id()}")
    run_id = client.create_run(experiment_id).info.run_id
    values = [math.nan if i % 100 == 0 else float(i % 7) for i in range(1000)]
    batch = [Metric("loss", v, 1_700_000_000_000 + i, i // 2) for i, v in enumerate(values)]
    client.log_batch(run_id, metrics=batch, synchronous=True)
    client.log_batch(run_id, metrics=batch[500:], synchronous=True)
    history = client.get_metric_history(run_id, "loss")
    assert sorted((m.timestamp, m.step, comparable(m.value)) for m in history) == sorted(
        (m.timestamp, m.step, comparable(m.value)) for m in batch
    )


@SERVER_TIMEOUT
def test_a_finished_job_becomes_one_complete_run(
    tracking_uri, store, exporters, tmp_path, monkeypatch
):
    monkeypatch.setenv("API_TOKEN", "token-value-456")
    files = tmp_path / "artifacts"
    (files / "sub").mkdir(parents=True)
    (files / "model.txt").write_text("weights")
    (files / "sub" / "notes.txt").write_text("notes")
    spec = JobSpec(
        workers=3,
        gpus=0,
        name="resnet-lr",
        env={"VISIBLE_SETTING": "env-value-123"},
        secret_env={"API_TOKEN": ""},
    )
    job_id = make_job(
        store,
        spec=spec,
        points=make_points(),
        notebook="/home/me/work/train-mnist.ipynb",
        params={"lr": 0.001, "layers": [64, 64], "long": "x" * 7000, "bad key!": 1},
        tags={"team": "vision"},
        artifacts=str(files),
    )
    exporter = exporters(store, tracking_uri)
    exporter.start(job_id)
    assert exporter.wait(job_id, timeout=60)

    client = mlflow.MlflowClient(tracking_uri)
    (run,) = runs_of(client, job_id)
    assert store.export_state(job_id, tracking_uri)["run_id"] == run.info.run_id
    assert client.get_experiment(run.info.experiment_id).name == "train-mnist"
    assert (run.info.run_name, run.info.status) == ("resnet-lr", "FINISHED")
    assert (run.info.start_time, run.info.end_time) == (1_700_000_000_500, 1_700_000_100_250)
    params = {"lr": "0.001", "layers": "[64, 64]", "long": "x" * 6000, "bad key_": "1"}
    assert run.data.params == params
    tags = run.data.tags
    assert {k: tags[k] for k in tags if k.startswith("jupyter_training.")} == {
        "jupyter_training.job_id": job_id,
        "jupyter_training.framework": "pytorch",
        "jupyter_training.backend": "local",
        "jupyter_training.workers": "3",
        "jupyter_training.gpus": "0",
    }
    assert (tags["team"], tags["mlflow.source.name"]) == (
        "vision",
        "/home/me/work/train-mnist.ipynb",
    )
    sent = " ".join([*run.data.params.values(), *tags.values()])
    assert "token-value-456" not in sent and "env-value-123" not in sent
    assert_same_history(client, run.info.run_id, store, job_id)
    assert {f.path for f in client.list_artifacts(run.info.run_id)} == {
        "cell.py",
        "model.txt",
        "sub",
    }
    cell = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id,
        artifact_path="cell.py",
        dst_path=str(tmp_path / "got"),
        tracking_uri=tracking_uri,
    )
    assert Path(cell).read_text() == "print('training')\n"


def test_status_and_experiment_of_each_run(sqlite_uri, store, exporters):
    """The phase sets the status; the experiment is --experiment, else the notebook's name."""
    jobs = {
        SUCCEEDED: make_job(store, spec=JobSpec(workers=1, experiment="lr-search")),
        FAILED: make_job(store, phase=FAILED, notebook=None),
        CANCELLED: make_job(store, phase=CANCELLED, notebook="/home/me/Tune It.ipynb"),
    }
    exporter = exporters(store, sqlite_uri)
    for job_id in jobs.values():
        exporter.start(job_id)
    client = mlflow.MlflowClient(sqlite_uri)
    runs = {}
    for phase, job_id in jobs.items():
        assert exporter.wait(job_id, timeout=60)
        (run,) = runs_of(client, job_id)
        runs[phase] = run.info.status, client.get_experiment(run.info.experiment_id).name
    assert runs == {
        SUCCEEDED: ("FINISHED", "lr-search"),
        FAILED: ("FAILED", "jupyter-training"),
        CANCELLED: ("KILLED", "Tune It"),
    }


def test_a_running_job_is_followed_until_its_history_is_complete(sqlite_uri, store, exporters):
    job_id = make_job(store, phase=RUNNING, points=make_points(2, 300), params={"lr": 0.1})
    exporter = exporters(store, sqlite_uri)
    exporter.start(job_id)
    exporter.start(job_id)  # idempotent: still one thread
    assert sum(t.name == f"jt-mlflow-{job_id}" for t in threading.enumerate()) == 1
    client = mlflow.MlflowClient(sqlite_uri)
    run_id = wait_until(lambda: exporter.run_id(job_id), timeout=60)
    wait_until(lambda: len(client.get_metric_history(run_id, "rank1/loss")) == 300, timeout=30)
    assert client.get_run(run_id).info.status == "RUNNING"

    store.add_points(job_id, make_points(2, 300, start=300))
    store.merge(job_id, "params", {"epochs": 3})  # log_params() while the job runs
    store.update(job_id, phase=SUCCEEDED, finished=time.time())
    time.sleep(0.5)  # ended, but its follower has not stored the whole history yet
    assert not exporter.is_done(job_id)
    store.update(job_id, history_done=1)
    assert exporter.wait(job_id, timeout=30)

    assert runs_of(client, job_id)[0].info.run_id == run_id
    assert client.get_run(run_id).data.params == {"lr": "0.1", "epochs": "3"}
    assert_same_history(client, run_id, store, job_id)


@SERVER_TIMEOUT
def test_two_followers_make_one_run_without_duplicates(server_uri, store, exporters):
    job_id = make_job(store, phase=RUNNING, points=make_points(3, 1000))
    first, second = exporters(store, server_uri, "kernel"), exporters(store, server_uri, "server")
    first.start(job_id)
    second.start(job_id)
    wait_until(lambda: (store.export_state(job_id, server_uri) or {}).get("watermark"), timeout=60)
    store.add_points(job_id, make_points(3, 1000, start=1000))
    store.update(job_id, phase=SUCCEEDED, history_done=1, finished=time.time())
    assert first.wait(job_id, timeout=60) and second.wait(job_id, timeout=60)

    client = mlflow.MlflowClient(server_uri)
    (run,) = runs_of(client, job_id)
    assert run.info.status == "FINISHED"
    assert_same_history(client, run.info.run_id, store, job_id)


CRASHING_EXPORTER = """
import sys, time
from jupyter_training.store import JobStore
from jupyter_training.tracking.mlflow import MlflowExporter
exporter = MlflowExporter(JobStore(sys.argv[1]), sys.argv[2], "doomed", lease_seconds=2)
exporter.start(sys.argv[3])
time.sleep(600)
"""


@SERVER_TIMEOUT
def test_after_a_crash_another_exporter_continues_the_same_run(server_uri, store, exporters):
    job_id = make_job(store, phase=RUNNING, points=make_points(3, 2000))
    doomed = subprocess.Popen(
        [sys.executable, "-c", CRASHING_EXPORTER, str(store.path), server_uri, job_id]
    )
    try:
        wait_until(
            lambda: (store.export_state(job_id, server_uri) or {}).get("watermark", 0) >= 1000,
            timeout=60,
            interval=0.01,
        )
    finally:
        doomed.kill()  # SIGKILL mid-export: no clean-up, the lease just lapses
        doomed.wait()
    # As if it died between sending a batch and storing the watermark: the batch goes again.
    state = store.export_state(job_id, server_uri)
    assert state["run_id"] and 1000 <= state["watermark"] < 6 * 2000  # killed mid-export
    assert store.update_export(job_id, server_uri, "doomed", watermark=state["watermark"] - 1000)
    store.add_points(job_id, make_points(3, 500, start=2000))
    store.update(job_id, phase=FAILED, history_done=1, finished=time.time())

    rescuer = exporters(store, server_uri, "rescuer")
    rescuer.start(job_id)
    assert rescuer.wait(job_id, timeout=60)
    client = mlflow.MlflowClient(server_uri)
    (run,) = runs_of(client, job_id)
    assert (run.info.run_id, run.info.status) == (state["run_id"], "FAILED")
    assert_same_history(client, run.info.run_id, store, job_id)
    assert store.export_state(job_id, server_uri)["owner"] == "rescuer"


def test_a_down_mlflow_blocks_nothing_and_warns_once(store, exporters, caplog):
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    caplog.set_level(logging.DEBUG, logger="jupyter_training.tracking.mlflow")
    port = free_port()  # closed again: nothing listens there
    uri = f"http://me:s3cr3t-pw@127.0.0.1:{port}"
    jobs = [make_job(store, points=make_points(2, 50)) for _ in range(2)]
    before = {job_id: (store.get(job_id), store.points_after(job_id, 0, 10**6)) for job_id in jobs}
    exporter = exporters(store, uri, give_up_after=1.5)

    started = time.monotonic()
    for job_id in jobs:
        exporter.start(job_id)
    assert time.monotonic() - started < 0.5  # start() only starts a thread
    for job_id in jobs:
        assert not exporter.wait(job_id, timeout=30)
    elapsed = time.monotonic() - started
    # MLflow's own defaults (7 retries with backoff per call) would take minutes.
    assert elapsed < 15, elapsed

    ours = [r for r in caplog.records if r.name == "jupyter_training.tracking.mlflow"]
    warnings = [r for r in ours if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert f"http://me@127.0.0.1:{port}" in message and "s3cr3t" not in message
    gave_up = [r for r in ours if r.getMessage().startswith("gave up")]
    assert len(gave_up) == 2
    # Retried until the bound, then given up (every call fails at once: connection refused).
    assert 1.5 <= max(r.created for r in gave_up) - warnings[0].created < 1.5 + 1.0
    for job_id in jobs:
        assert (store.get(job_id), store.points_after(job_id, 0, 10**6)) == before[job_id]
        state = store.export_state(job_id, f"http://me@127.0.0.1:{port}")
        assert (state["run_id"], state["watermark"], state["done"], state["lease"]) == (
            None,
            0,
            0,
            0,
        )
    # The user's process-wide MLflow settings are as they were.
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ
    assert (MLFLOW_HTTP_REQUEST_TIMEOUT.get(), MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()) == (120, 7)


LR_CELL = (
    "import jupyter_training as jt\n"
    "for i in range(300):\n"
    "    jt.report(step=i, loss=(1 - lr) ** i + jt.rank())\n"
)


@SERVER_TIMEOUT
def test_three_notebook_jobs_are_three_mlflow_runs_with_full_histories(ip, server_uri, monkeypatch):
    """The done-when scenario through the magic: MLFLOW_TRACKING_URI set in the kernel."""
    from IPython.utils.capture import capture_output

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server_uri)
    monkeypatch.setenv("JPY_SESSION_NAME", "studies/lr search.ipynb")
    for lr in (0.001, 0.01, 0.1):
        ip.user_ns["lr"] = lr
        name = f"lr-{str(lr).replace('.', '-')}"
        with capture_output():
            ip.run_cell_magic("train_distributed", f"-w 2 --name {name} --tag team=vision", LR_CELL)
    store = ip.magics_manager.registry["TrainingMagics"].client.store
    records = store.list()
    exporter = exporter_for(store, server_uri)
    for record in records:
        assert exporter.wait(record.id, 60), record.id
    client = mlflow.MlflowClient(server_uri)
    experiment = client.get_experiment_by_name("lr search")  # the notebook's name
    found = client.search_runs([experiment.experiment_id], order_by=["metrics.loss ASC"])
    assert [r.info.run_name for r in found] == ["lr-0-1", "lr-0-01", "lr-0-001"]
    for run in found:
        record = next(r for r in records if r.name == run.info.run_name)
        assert run.info.status == "FINISHED"
        assert run.data.params["lr"] == str(record.params["lr"])
        assert run.data.tags[JOB_ID_TAG] == record.id and run.data.tags["team"] == "vision"
        lr = record.params["lr"]
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [(m.step, m.value) for m in history] == [
            (i, pytest.approx((1 - lr) ** i)) for i in range(300)
        ]
        assert len(client.get_metric_history(run.info.run_id, "rank1/loss")) == 300
        assert "cell.py" in [a.path for a in client.list_artifacts(run.info.run_id)]
