"""Warm workers: forked from a warm process, yet every job's processes are new and its own."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from jupyter_training.backends.local import warm as warm_module
from jupyter_training.backends.local.host import process_start_time
from jupyter_training.backends.local.warm import WARM, WarmProcesses, import_env
from jupyter_training.client import TrainingClient
from jupyter_training.events import SUCCEEDED
from jupyter_training.spec import JobSpec

from conftest import wait_until


@pytest.fixture
def client(settings):
    client = TrainingClient(settings)
    client.backend("local").warm_up("pytorch")
    return client


def run(client, cell, *, workers=1, env=None, namespace=None):
    spec = JobSpec(workers=workers, env=env or {})
    record = client.submit(spec, textwrap.dedent(cell), namespace or {})
    for _ in client.events(record.id):
        pass
    record = client.get(record.id)
    assert record.phase == SUCCEEDED, record.failure
    lines = [e.data["line"] for e in client.logs(record.id) if e.kind == "log"]
    return record, lines


def warm_pid() -> int:
    return WARM.status()["pytorch"]["pid"]


def test_jobs_fork_from_the_warm_process_yet_share_nothing(client, tmp_path, monkeypatch):
    (tmp_path / "mymodel.py").write_text("VERSION = 1\n")
    cell = """
    import os, sys, json, torch, mymodel
    print(json.dumps({"pid": os.getpid(), "ppid_is_warm": os.getppid() == WARM_PID,
                      "torch_loaded_before": TORCH_LOADED, "marker": hasattr(json, "_jt_marker"),
                      "version": mymodel.VERSION, "path0": sys.path[0], "cwd": os.getcwd()}))
    json._jt_marker = True
    """
    cell = "import sys\nTORCH_LOADED = 'torch' in sys.modules\n" + textwrap.dedent(cell)
    monkeypatch.chdir(tmp_path)
    first, (line,) = run(client, cell, namespace={"WARM_PID": warm_pid()})
    seen = json.loads(line)
    assert first.context["warm"] is True
    assert seen["torch_loaded_before"]  # the framework was imported before the cell ran
    assert not seen["ppid_is_warm"]  # a fork of the job's supervisor, not of the warm process
    assert (seen["cwd"], seen["path0"]) == (str(tmp_path), str(tmp_path))
    (tmp_path / "mymodel.py").write_text("VERSION = 2\n")  # the notebook's own code, edited
    _, (line,) = run(client, cell, namespace={"WARM_PID": warm_pid()})
    again = json.loads(line)
    assert again["pid"] != seen["pid"]
    assert again["marker"] is False  # what a job did to a module is gone in the next
    assert again["version"] == 2  # the notebook's modules are never kept warm


def test_each_rank_gets_its_own_env_seeds_and_thread_pools(client):
    cell = """
    import os, numpy, torch
    from threadpoolctl import threadpool_info
    blas = {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}
    print(os.environ["RANK"], os.environ["MY_SETTING"], torch.get_num_threads(),
          sorted(blas), numpy.random.randint(1 << 30))
    """
    record, lines = run(client, cell, workers=2, env={"MY_SETTING": "x", "OMP_NUM_THREADS": "2"})
    assert record.context["warm"] is True
    rows = sorted(line.split(maxsplit=4) for line in lines)
    assert [r[:3] for r in rows] == [["0", "x", "2"], ["1", "x", "2"]]
    assert rows[0][3] == rows[1][3] == "[2]"  # BLAS sized as OMP_NUM_THREADS asks
    assert rows[0][4] != rows[1][4]  # numpy's global seed is not the warm process's


def test_what_imports_read_changing_starts_cold_then_warm_again(client, monkeypatch):
    record, _ = run(client, "print(1)", env={"TORCH_SHOW_CPP_STACKTRACES": "1"})
    assert record.context["warm"] is False  # the job's --env changes what torch read
    record, _ = run(client, "print(1)")
    assert record.context["warm"] is True
    before = warm_pid()
    monkeypatch.setenv("PYTHONHASHSEED", "7")  # the kernel's own environment changed
    record, _ = run(client, "print(1)")
    assert record.context["warm"] is False
    client.backend("local").warm_up("pytorch")
    assert warm_pid() != before
    record, (line,) = run(client, "import os\nprint(os.environ['PYTHONHASHSEED'])")
    assert (record.context["warm"], line) == (True, "7")


def test_a_package_installed_meanwhile_starts_cold(client):
    purelib = Path(sysconfig.get_paths()["purelib"])
    os.utime(purelib)  # what pip install does to site-packages
    record, _ = run(client, "print(1)")
    assert record.context["warm"] is False
    client.backend("local").warm_up("pytorch")
    assert run(client, "print(1)")[0].context["warm"] is True


def test_a_dead_warm_process_is_replaced_without_the_job_noticing(client):
    os.kill(warm_pid(), signal.SIGKILL)
    record, lines = run(client, "print('still runs')", workers=2)
    assert (record.context["warm"], lines) == (False, ["still runs", "still runs"])
    client.backend("local").warm_up("pytorch")
    assert run(client, "print(1)")[0].context["warm"] is True


def test_a_hung_warm_process_is_replaced_without_the_job_noticing(client, monkeypatch):
    monkeypatch.setattr(warm_module, "REPLY_SECONDS", 0.5)
    hung = warm_pid()
    os.kill(hung, signal.SIGSTOP)
    try:
        record, lines = run(client, "print('still runs')")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)
    assert (record.context["warm"], lines) == (False, ["still runs"])
    wait_until(lambda: process_start_time(hung) is None, timeout=10)
    client.backend("local").warm_up("pytorch")
    assert run(client, "print(1)")[0].context["warm"] is True


def test_cells_imports_are_kept_warm_for_the_next_job(client):
    run(client, "import numpy.linalg\nprint(1)")
    status = client.backend("local").warm_up("pytorch")
    assert "numpy.linalg" in status["imported"]
    assert "numpy.linalg" in WARM.status()["pytorch"]["imported"]


def test_turned_off_every_job_starts_cold(settings):
    settings.warm_workers = False
    client = TrainingClient(settings)
    record, _ = run(client, "print(1)")
    assert record.context["warm"] is False
    with pytest.raises(Exception, match="warm_workers = False"):
        client.backend("local").warm_up("pytorch")


def test_idle_and_orphaned_warm_processes_exit(tmp_path):
    pool = WarmProcesses()
    ready = pool.warm_up("xgboost", idle=1.0, log=tmp_path / "warm.log")
    wait_until(lambda: process_start_time(ready["pid"]) is None, timeout=15)
    launcher = textwrap.dedent(
        f"""
        from pathlib import Path
        from jupyter_training.backends.local.warm import WARM
        print(WARM.warm_up("xgboost", idle=600, log=Path({str(tmp_path / "w.log")!r}))["pid"])
        """
    )
    out = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True)
    orphan = int(out.stdout.split()[-1])  # its kernel has exited: its stdin closed
    wait_until(lambda: process_start_time(orphan) is None, timeout=15)


def test_modules_that_are_not_fork_safe_are_named(tmp_path):
    probe = textwrap.dedent(
        """
        import threading, time
        from jupyter_training.backends.local.warm_process import fork_hazard, not_warmable
        print(fork_hazard())
        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
        print(fork_hazard())
        print(not_warmable("mylocal"))
        print(not_warmable("numpy"))
        """
    )
    (tmp_path / "mylocal.py").write_text("")
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert out.stdout.splitlines() == [
        "None",
        "it started 1 thread(s)",
        "not an installed package (the notebook's own code is never kept warm)",
        "None",
    ]


def test_only_import_time_variables_make_a_warm_process_stale():
    env = {
        "PYTHONPATH": "/x",
        "TORCH_HOME": "/t",
        "CUDA_VISIBLE_DEVICES": "0",
        "OMP_NUM_THREADS": "4",
        "JUPYTER_DATA_DIR": "/d",
        "MY_SETTING": "1",
    }
    assert import_env(env) == {"PYTHONPATH": "/x", "TORCH_HOME": "/t"}


def test_warmup_magic_says_what_is_warm(ip, capsys):
    from IPython.core.error import UsageError

    ip.run_line_magic("train_warmup", "--framework xgboost numpy")
    out = capsys.readouterr().out
    assert out.startswith("XGBoost workers start warm: xgboost, numpy imported in ")
    assert "exits after 600 s without a job" in out
    with pytest.raises(UsageError, match="--framework: "):
        ip.run_line_magic("train_warmup", "--framework caffe")


def test_reports_and_results_arrive_from_warm_workers(client):
    cell = "import jupyter_training as jt\njt.report(step=1, loss=0.5)\nanswer = 42\n"
    record = client.submit(JobSpec(workers=1, out=["answer"]), cell, {})
    events = list(client.events(record.id))
    assert client.get(record.id).context["warm"] is True
    reports = [e.data for e in events if e.kind == "report"]
    assert [(r["step"], r["metrics"]) for r in reports] == [(1, {"loss": 0.5})]
    assert any(e.kind == "result" for e in events)


def test_a_module_that_reads_the_rank_when_imported_is_not_kept_warm(client):
    # Lightning sets rank_zero_only.rank from RANK/LOCAL_RANK at import: forked from a
    # warm process every rank would think it is rank 0.
    ready = client.backend("local").warm_up("pytorch", ["lightning"])
    assert "lightning" not in ready["imported"]
    assert "RANK" in WARM.unsafe["lightning"]
    cell = (
        "import os\nimport lightning.fabric.utilities.rank_zero as rz\n"
        "print(os.environ['RANK'], rz.rank_zero_only.rank)"
    )
    record, lines = run(client, cell, workers=2)
    assert record.context["warm"] is True
    assert sorted(lines) == ["0 0", "1 1"]
