"""The embedded local backend with real worker processes and a real supervisor."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from jupyter_training.backends.base import SubmitError
from jupyter_training.client import TrainingClient
from jupyter_training.events import CANCELLED, FAILED, RUNNING, SUCCEEDED
from jupyter_training.spec import JobSpec

from conftest import processes_of, wait_until


@pytest.fixture
def client(settings, worker_start):
    """Each test runs with warm workers (the default) and again with cold ones."""
    return TrainingClient(settings)


def run_to_end(client, spec, cell, namespace=None):
    record = client.submit(spec, textwrap.dedent(cell), namespace or {})
    events = list(client.events(record.id))
    return client.get(record.id), events


ENV_DUMP = """
import json, os, jupyter_training as jt
keys = [k for k in os.environ if k.isupper()]
with open(os.path.join(out, f"env-{jt.rank()}.json"), "w") as f:
    json.dump({k: os.environ[k] for k in keys}, f)
"""


def read_envs(directory, workers):
    return [json.loads((directory / f"env-{r}.json").read_text()) for r in range(workers)]


def test_pytorch_env_contract(client, tmp_path):
    spec = JobSpec(workers=3, env={"SEED": "7"})
    record, _ = run_to_end(client, spec, ENV_DUMP, {"out": str(tmp_path)})
    assert record.phase == SUCCEEDED
    envs = read_envs(tmp_path, 3)
    for rank, env in enumerate(envs):
        assert env["RANK"] == env["PET_NODE_RANK"] == str(rank)
        assert env["WORLD_SIZE"] == env["PET_NNODES"] == "3"
        assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "127.0.0.1"
        assert env["MASTER_PORT"] == env["PET_MASTER_PORT"] == envs[0]["MASTER_PORT"]
        assert (env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"], env["PET_NPROC_PER_NODE"]) == (
            "0",
            "1",
            "1",
        )
        assert env["PYTHONUNBUFFERED"] == "1"
        assert env["CUDA_VISIBLE_DEVICES"] == ""
        assert env["SEED"] == "7"
        assert env["JUPYTER_TRAINING_JOB_ID"] == record.id
        assert "DMLC_TRACKER_URI" not in env


def test_xgboost_env_contract_and_gpu_slices(client, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4")
    spec = JobSpec(framework="xgboost", workers=2, gpus=2)
    record, _ = run_to_end(client, spec, ENV_DUMP, {"out": str(tmp_path)})
    assert record.phase == SUCCEEDED, record.failure
    envs = read_envs(tmp_path, 2)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0,1", "2,3"]
    for rank, env in enumerate(envs):
        assert env["DMLC_TASK_ID"] == env["RANK"] == str(rank)
        assert env["DMLC_NUM_WORKER"] == env["WORLD_SIZE"] == "2"
        assert env["DMLC_TRACKER_URI"] == env["MASTER_ADDR"] == "127.0.0.1"
        assert env["DMLC_TRACKER_PORT"] == env["MASTER_PORT"] == env["WORKER_PORT"]
        assert env["WORKER_ADDRS"] == "127.0.0.1"


def test_more_gpus_than_the_machine_has_is_refused_and_recorded(client, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(SubmitError, match=r"--gpus: 2 workers x 1 GPUs need 2 GPUs.*has 1"):
        client.submit(JobSpec(workers=2, gpus=1), "print('hi')", {})
    (failed,) = client.list()
    assert failed.phase == FAILED
    assert failed.cell == "print('hi')"
    assert failed.spec.gpus == 1


def test_output_streams_per_rank_in_order(client):
    cell = """
    import jupyter_training as jt
    for i in range(50):
        print(f"line {i} from {jt.rank()}")
    """
    record, events = run_to_end(client, JobSpec(workers=2), cell)
    for rank in (0, 1):
        lines = [e.data["line"] for e in events if e.kind == "log" and e.rank == rank]
        assert lines == [f"line {i} from {rank}" for i in range(50)]
    phases = [e.data["phase"] for e in events if e.kind == "phase"]
    assert phases == [RUNNING, SUCCEEDED]
    assert events[-1].data["phase"] == SUCCEEDED
    assert record.started and record.finished >= record.started


def test_failing_rank_stops_the_others_and_is_named(client):
    cell = """
    import time, jupyter_training as jt
    if jt.rank() == 1:
        time.sleep(0.3)
        raise ZeroDivisionError("bad batch")
    time.sleep(600)
    """
    record, events = run_to_end(client, JobSpec(workers=3), cell)
    assert record.phase == FAILED
    failure = record.failure
    assert (failure["rank"], failure["exit_code"]) == (1, 1)
    assert failure["exc_type"] == "ZeroDivisionError"
    assert failure["message"] == "bad batch"
    assert 'raise ZeroDivisionError("bad batch")' in failure["traceback"]
    assert record.finished - record.started < 10  # the sleepers were stopped, not awaited
    assert processes_of(record.id) == []
    error_events = [e for e in events if e.kind == "error"]
    assert [e.rank for e in error_events] == [1]


def test_worker_killed_by_signal(client):
    cell = """
    import os, signal, time, jupyter_training as jt
    if jt.rank() == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)
    """
    record, _ = run_to_end(client, JobSpec(workers=2), cell)
    assert record.phase == FAILED
    assert record.failure["signal"] == "SIGKILL"
    assert record.message == "rank 0 was killed by SIGKILL"
    assert processes_of(record.id) == []


def test_max_restarts_restarts_the_whole_group(client, tmp_path):
    cell = """
    import os, time, jupyter_training as jt
    marker = os.path.join(out, f"attempt-{jt.rank()}")
    with open(marker, "a") as f:
        f.write("x")
    if jt.rank() == 1 and os.path.getsize(marker) < 3:
        peer = os.path.join(out, "attempt-0")
        while not os.path.exists(peer) or os.path.getsize(peer) < os.path.getsize(marker):
            time.sleep(0.01)  # fail only once rank 0 has started this attempt too
        raise RuntimeError("flaky")
    """
    record, events = run_to_end(
        client, JobSpec(workers=2, max_restarts=3), cell, {"out": str(tmp_path)}
    )
    assert record.phase == SUCCEEDED
    assert record.attempt == 2
    assert (tmp_path / "attempt-0").read_text() == "xxx"  # rank 0 restarted with the group
    phases = [e.data["phase"] for e in events if e.kind == "phase"]
    assert phases == ["Running", "Restarting", "Running", "Restarting", "Running", "Succeeded"]


def test_restarts_run_out(client):
    record, _ = run_to_end(client, JobSpec(workers=2, max_restarts=1), "raise SystemExit(3)")
    assert record.phase == FAILED
    assert record.attempt == 1
    assert record.failure["exit_code"] == 3


def test_timeout_fails_the_job(client):
    spec = JobSpec(workers=2, timeout=1, max_restarts=2)
    record, _ = run_to_end(client, spec, "import time; time.sleep(600)")
    assert record.phase == FAILED
    assert record.attempt == 0  # a job out of time is not restarted
    assert "timed out after 1 s" in record.message
    assert processes_of(record.id) == []


def test_cancel_stops_every_process(client):
    record = client.submit(JobSpec(workers=2), "import time; time.sleep(600)", {})
    wait_until(lambda: client.get(record.id).phase == RUNNING)
    wait_until(lambda: len(processes_of(record.id)) >= 3)  # supervisor + 2 workers
    final = client.cancel(record.id)
    assert final.phase == CANCELLED
    wait_until(lambda: processes_of(record.id) == [], timeout=10)
    stopped = [
        e.rank
        for e in client.events(record.id)
        if e.kind == "worker" and e.data.get("reason") == "stopped"
    ]
    assert sorted(stopped) == [0, 1]  # no view keeps showing the ranks as running
    assert client.cancel(record.id).phase == CANCELLED  # idempotent


def test_job_outlives_the_process_that_launched_it(jupyter_dirs, settings):
    launcher = textwrap.dedent(
        """
        from jupyter_training.client import TrainingClient
        from jupyter_training.spec import JobSpec
        cell = "import time\\nfor i in range(3):\\n    print('tick', i); time.sleep(0.5)"
        print(TrainingClient().submit(JobSpec(workers=2), cell, {}).id)
        """
    )
    launched = subprocess.run(
        [sys.executable, "-c", launcher], capture_output=True, text=True, timeout=60, check=True
    )
    job_id = launched.stdout.strip()
    client = TrainingClient(settings)
    events = list(client.events(job_id))
    assert client.get(job_id).phase == SUCCEEDED
    ticks = [e.data["line"] for e in events if e.kind == "log" and e.rank == 0]
    assert ticks == ["tick 0", "tick 1", "tick 2"]


def test_killed_supervisor_takes_its_workers_and_reads_as_failed(client):
    record = client.submit(JobSpec(workers=2), "import time; time.sleep(600)", {})
    wait_until(lambda: client.get(record.id).phase == RUNNING)
    os.kill(client.get(record.id).supervisor_pid, signal.SIGKILL)
    wait_until(lambda: processes_of(record.id) == [], timeout=10)
    final = client.get(record.id)
    assert final.phase == FAILED
    assert final.message.startswith("supervisor lost")


def test_job_files_are_private(client, settings):
    record, _ = run_to_end(client, JobSpec(workers=1), "print('secret')")
    job_dir = client.backend("local").files(record.id).root
    assert stat.S_IMODE(job_dir.stat().st_mode) == 0o700
    for path in job_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_workers_share_the_cores_like_torchrun(client, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    run_to_end(client, JobSpec(workers=2), ENV_DUMP, {"out": str(tmp_path)})
    expected = str(max(1, (os.cpu_count() or 1) // 2))
    assert [env["OMP_NUM_THREADS"] for env in read_envs(tmp_path, 2)] == [expected, expected]
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the user's own setting wins
    run_to_end(client, JobSpec(workers=2), ENV_DUMP, {"out": str(tmp_path)})
    assert read_envs(tmp_path, 2)[0]["OMP_NUM_THREADS"] == "7"


def test_every_line_arrives_even_when_the_reader_falls_behind(client):
    cell = (
        "import sys\n"
        "for i in range(150_000):\n"
        "    sys.stdout.write(f'line {i:06d} padding padding padding\\n')\n"
        "sys.stdout.write('unterminated last line')\n"
    )  # about 6.5 MB: more than one read of the log
    record = client.submit(JobSpec(workers=1), cell, {})
    while client.get(record.id).phase not in (SUCCEEDED, FAILED):
        time.sleep(0.1)  # nobody reads while the job runs: the reader starts far behind
    for follow in (True, False):
        lines = [e.data["line"] for e in client.events(record.id, follow=follow) if e.kind == "log"]
        assert len(lines) == 150_001
        assert lines[-2] == "line 149999 padding padding padding"
        assert lines[-1] == "unterminated last line"
