"""Checkpoints and resume on the local backend: restarts that continue, %train_resume, elastic."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from jupyter_training import cli
from jupyter_training.client import TrainingClient
from jupyter_training.errors import JobFailedError
from jupyter_training.events import FAILED, SUCCEEDED
from jupyter_training.magics import TrainingMagics
from jupyter_training.runtime import checkpoints
from jupyter_training.tracking.query import runs

from conftest import wait_until

#: Ten steps of a 2-rank gloo job; w counts the steps really taken, so a resumed job that
#: redid or skipped a step ends with w != 10. It dies at step 4 unless MARK exists: rank 1
#: is SIGKILLed on the first attempt (KILL), or rank 0 raises (a failure to resume).
CELL = """
import os, signal, time
import torch
import torch.distributed as dist
import jupyter_training as jt

dist.init_process_group("gloo")
ckpt = jt.latest_checkpoint()
state = ckpt.load() if ckpt else {"w": torch.zeros(1), "steps": []}
start = ckpt.step + 1 if ckpt else 0
dist.barrier()
print("attempt", jt.restart_count(), "world", dist.get_world_size(), "start", start, flush=True)
for step in range(start, 10):
    state["w"] += 1
    state["steps"].append(step)
    jt.save_checkpoint(state, step, keep=3)
    jt.report(step=step, total=10, w=float(state["w"]))
    if step == 4 and not os.path.exists(MARK):
        if KILL and jt.rank() == 1 and jt.restart_count() == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        if not KILL and jt.rank() == 0:
            raise RuntimeError("preempted at step 4")
    dist.barrier()
final_w, steps = float(state["w"]), state["steps"]
dist.destroy_process_group()
"""


def magics(ip) -> TrainingMagics:
    return ip.magics_manager.registry["TrainingMagics"]


def lineage_dir(settings, record) -> Path:
    return Path(settings.store_dir) / "checkpoints" / (record.lineage or record.id)


# -- the runtime helpers --------------------------------------------------------------------------


@pytest.fixture
def ckpt_dir(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "ckpt"
    monkeypatch.setenv(checkpoints.CHECKPOINT_ENV, str(directory))
    return directory


def test_save_and_latest_keep_the_newest_complete_ones(ckpt_dir):
    assert checkpoints.latest_checkpoint() is None
    for step in (1, 2, 3, 4):
        path = checkpoints.save_checkpoint({"step": step}, step, keep=2)
        assert path == ckpt_dir / f"step-{step:012d}.pkl"
    latest = checkpoints.latest_checkpoint()
    assert (latest.step, latest.format, latest.load()) == (4, "pkl", {"step": 4})
    assert sorted(p.name for p in ckpt_dir.iterdir()) == [
        "step-000000000003.pkl",
        "step-000000000004.pkl",
    ]
    with pytest.raises(TypeError, match="step must be a whole number"):
        checkpoints.save_checkpoint({}, -1)
    with pytest.raises(ValueError, match="keep must be 1 or more"):
        checkpoints.save_checkpoint({}, 5, keep=0)


def test_torch_state_dicts_and_xgboost_boosters_have_their_own_formats(ckpt_dir):
    torch = pytest.importorskip("torch")
    xgb = pytest.importorskip("xgboost")
    model = torch.nn.Linear(2, 1)
    checkpoints.save_checkpoint({"model": model.state_dict(), "epoch": 3}, 1)
    loaded = checkpoints.latest_checkpoint()
    assert loaded.format == "pt"
    again = torch.nn.Linear(2, 1)
    again.load_state_dict(loaded.load()["model"])
    assert torch.equal(again.weight, model.weight)
    data = xgb.DMatrix([[0.0], [1.0], [2.0], [3.0]], label=[0, 0, 1, 1])
    booster = xgb.train({"objective": "binary:logistic"}, data, num_boost_round=3)
    checkpoints.save_checkpoint(booster, 3)
    latest = checkpoints.latest_checkpoint()
    assert latest.format == "ubj" and latest.path.suffix == ".ubj"
    more = xgb.train({"objective": "binary:logistic"}, data, 2, xgb_model=str(latest.path))
    assert more.num_boosted_rounds() == 5  # resumed from the checkpoint's 3 rounds
    assert latest.load().num_boosted_rounds() == 3


def test_a_kill_during_save_leaves_the_previous_checkpoint_the_latest(ckpt_dir):
    script = textwrap.dedent(
        """
        import sys, time
        from jupyter_training.runtime import checkpoints

        class Slow:
            def __reduce__(self):
                print("writing", flush=True)
                time.sleep(60)
                return (int, ())

        checkpoints.save_checkpoint({"good": True}, 1)
        checkpoints.save_checkpoint([b"x" * 1_000_000, Slow()], 2)
        """
    )
    env = {**os.environ, checkpoints.CHECKPOINT_ENV: str(ckpt_dir)}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)
    assert child.stdout.readline() == b"writing\n"
    staged = wait_until(lambda: list(ckpt_dir.glob(".step-000000000002.*")), timeout=10)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert staged[0].exists()  # the torn write is there, under its temporary name
    latest = checkpoints.latest_checkpoint()
    assert (latest.step, latest.load()) == (1, {"good": True})


def test_outside_a_job_checkpoints_go_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(checkpoints.CHECKPOINT_ENV, raising=False)
    assert checkpoints.checkpoint_dir() == Path("checkpoints")
    assert checkpoints.restart_count() == 0
    monkeypatch.setenv(checkpoints.CHECKPOINT_REFUSAL_ENV, "add --volume")
    with pytest.raises(RuntimeError, match="add --volume"):
        checkpoints.checkpoint_dir()


# -- restarts and %train_resume -------------------------------------------------------------------


def test_a_rank_killed_mid_training_restarts_from_the_last_checkpoint(ip, settings, tmp_path):
    pytest.importorskip("torch")
    ip.user_ns.update(MARK=str(tmp_path / "absent"), KILL=True)
    with capture_output() as shown:
        ip.run_cell_magic(
            "train_distributed", "-w 2 --max-restarts 1 --name killed -o final_w,steps", CELL
        )
    (record,) = magics(ip).client.list()
    assert record.phase == SUCCEEDED and record.attempt == 1
    assert "attempt 1 world 2 start" in shown.stdout
    restart_at = int(shown.stdout.split("attempt 1 world 2 start ")[1].split()[0])
    assert 1 <= restart_at <= 5  # from the last checkpoint, not from 0
    # The total steps are the asked number, not more: each step taken once.
    assert ip.user_ns["final_w"] == 10.0 and ip.user_ns["steps"] == list(range(10))
    assert [m["step"] for m in record.checkpoints][-1] == 9
    assert sorted(p.name for p in lineage_dir(settings, record).iterdir())[-1].startswith(
        "step-000000000009"
    )


def test_train_resume_continues_a_failed_job_from_its_checkpoint(ip, settings, tmp_path):
    pytest.importorskip("torch")
    mark = tmp_path / "mark"
    ip.user_ns.update(MARK=str(mark), KILL=False)
    with capture_output(), pytest.raises(JobFailedError, match="preempted at step 4"):
        ip.run_cell_magic("train_distributed", "-w 2 --name fit -o final_w,steps", CELL)
    client = magics(ip).client
    (failed,) = client.list()
    assert failed.phase == FAILED and [m["step"] for m in failed.checkpoints][-1] == 4
    mark.touch()
    with capture_output() as shown:
        ip.run_line_magic("train_resume", "fit")
    assert f"resuming job {failed.id} as" in shown.stdout
    assert "attempt 0 world 2 start 5" in shown.stdout
    resumed = client.store.newest_named("fit")
    assert resumed.id != failed.id and resumed.phase == SUCCEEDED
    assert (resumed.parent_id, resumed.lineage) == (failed.id, failed.id)
    assert ip.user_ns["final_w"] == 10.0 and ip.user_ns["steps"] == list(range(10))
    # The lineage everywhere: runs(), list --json, the store.
    table = runs(store=client.store, sort="created")
    assert [None if p != p else p for p in table["parent_id"]] == [None, failed.id]  # nan
    with capture_output() as listed:
        assert cli.main(["list", "--json"]) == 0
    parents = {job["id"]: job["parent_id"] for job in json.loads(listed.stdout)}
    assert parents == {failed.id: None, resumed.id: failed.id}
    assert [r.id for r in client.store.lineage_jobs(failed.id)] == [failed.id, resumed.id]


def test_resume_takes_new_flags_and_an_edited_cell(ip, tmp_path):
    failing = (
        "import jupyter_training as jt\njt.save_checkpoint({'n': 1}, 1)\nraise ValueError('x')"
    )
    with capture_output(), pytest.raises(JobFailedError):
        ip.run_cell_magic("train_distributed", "-w 1 --name edit", failing)
    with capture_output() as shown:
        ip.run_cell_magic(
            "train_resume",
            "edit -w 2 --tag fixed=yes",
            "import jupyter_training as jt\nprint('from step', jt.latest_checkpoint().step)",
        )
    resumed = magics(ip).client.store.newest_named("edit")
    assert resumed.phase == SUCCEEDED and resumed.workers == 2
    assert resumed.tags == {"fixed": "yes"} and "print('from step'" in resumed.cell
    assert "[rank 0] from step 1" in shown.stdout and "[rank 1] from step 1" in shown.stdout


def test_resuming_a_succeeded_or_running_job_is_refused(ip):
    with capture_output():
        ip.run_cell_magic("train_distributed", "-w 1 --name done", "pass")
    with pytest.raises(UsageError, match="succeeded: there is nothing to resume"):
        ip.run_line_magic("train_resume", "done")
    with capture_output():
        ip.run_cell_magic(
            "train_distributed", "-w 1 --name busy --detach", "import time\ntime.sleep(60)"
        )
    with pytest.raises(UsageError, match=r"is (Pending|Running): wait for it"):
        ip.run_line_magic("train_resume", "busy")
    with pytest.raises(UsageError, match="neither a job id nor a job name"):
        ip.run_line_magic("train_resume", "nosuchjob")
    with capture_output():
        ip.run_line_magic("train_cancel", magics(ip).client.store.newest_named("busy").id)


def test_resume_after_the_checkpoints_were_deleted_starts_over_with_a_warning(ip, settings):
    failing = (
        "import jupyter_training as jt\nckpt = jt.latest_checkpoint()\n"
        "print('start', ckpt.step + 1 if ckpt else 0)\njt.save_checkpoint({}, 3)\n"
        "if FAIL:\n    raise ValueError('x')\n"
    )
    ip.user_ns["FAIL"] = True
    with capture_output(), pytest.raises(JobFailedError):
        ip.run_cell_magic("train_distributed", "-w 1 --name gone", failing)
    failed = magics(ip).client.list()[0]
    shutil.rmtree(lineage_dir(settings, failed))
    ip.user_ns["FAIL"] = False
    with capture_output() as shown:
        ip.run_cell_magic("train_resume", "gone", failing)
    assert "warning: job" in shown.stdout and "starts from scratch" in shown.stdout
    assert "[rank 0] start 0" in shown.stdout


# -- elastic --------------------------------------------------------------------------------------


def test_an_elastic_job_goes_on_with_the_survivors(ip, tmp_path):
    pytest.importorskip("torch")
    ip.user_ns.update(MARK=str(tmp_path / "absent"), KILL=True)
    with capture_output() as shown:
        ip.run_cell_magic("train_distributed", "--workers 1:2 --name elastic -o final_w", CELL)
    (record,) = magics(ip).client.list()
    assert record.phase == SUCCEEDED
    assert record.spec.min_workers == 1 and record.spec.max_restarts == 1  # MAX-MIN
    assert record.context["attempts"] == [
        {"attempt": 0, "workers": 2},
        {"attempt": 1, "workers": 1},
    ]
    assert "with 1 of 2 workers" in shown.stdout
    assert "attempt 1 world 1 start" in shown.stdout
    assert ip.user_ns["final_w"] == 10.0


def test_an_elastic_job_fails_when_fewer_than_min_remain(ip, tmp_path):
    cell = (
        "import os, signal, time, jupyter_training as jt\n"
        "if jt.rank() == 1:\n    os.kill(os.getpid(), signal.SIGKILL)\ntime.sleep(5)\n"
    )
    with capture_output(), pytest.raises(JobFailedError, match="fewer than the 2"):
        ip.run_cell_magic("train_distributed", "--workers 2:2 --max-restarts 3", cell)


def test_elastic_is_refused_for_frameworks_without_it(ip):
    with pytest.raises(UsageError, match=r"--workers: MIN:MAX \(elastic\) is not supported"):
        ip.run_cell_magic("train_distributed", "--framework xgboost --workers 1:2", "pass")


def test_checkpoint_steps_show_in_the_text_view(ip):
    cell = (
        "import jupyter_training as jt\n"
        "for step in range(3):\n    jt.save_checkpoint({}, step)\n"
        "    jt.report(step=step, total=3, loss=1.0)\n"
    )
    with capture_output() as shown:
        ip.run_cell_magic("train_distributed", "-w 1 --name marks", cell)
    record = magics(ip).client.list()[0]
    assert [m["step"] for m in record.checkpoints] == [0, 1, 2]
    assert "(checkpoint: step" in shown.stdout
    assert time.time() >= record.checkpoints[-1]["time"]


def test_train_resume_after_a_kernel_restart_needs_no_notebook_state(jupyter_dirs, tmp_path):
    from jupyter_client.manager import start_new_kernel
    from test_kernel import execute

    mark = tmp_path / "mark"
    setup = (
        "%load_ext jupyter_training\n"
        f"MARK = {str(mark)!r}\n"
        "def train(start):\n"
        "    import os, jupyter_training as jt\n"
        "    for step in range(start, 6):\n"
        "        jt.save_checkpoint({'step': step}, step)\n"
        "        if step == 2 and not os.path.exists(MARK):\n"
        "            raise RuntimeError('preempted')\n"
        "    print('done from', start)\n"
    )
    cell = (
        "%%train_distributed -w 1 --name restartable\n"
        "import jupyter_training as jt\n"
        "ckpt = jt.latest_checkpoint()\n"
        "train(ckpt.step + 1 if ckpt else 0)\n"
    )
    kernels = []
    try:
        for _ in range(2):
            kernels.append(start_new_kernel(kernel_name="python3"))
        first, second = (client for _, client in kernels)
        assert execute(first, setup)["content"]["status"] == "ok"
        assert execute(first, cell)["content"]["status"] == "error"  # preempted at step 2
        kernels[0][0].shutdown_kernel(now=True)
        mark.touch()
        # A fresh kernel: neither train() nor MARK is defined here.
        assert execute(second, "%load_ext jupyter_training")["content"]["status"] == "ok"
        reply = execute(second, "%train_resume restartable --progress text", timeout=120)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        for manager, client in kernels:
            client.stop_channels()
            if manager.is_alive():
                manager.shutdown_kernel(now=True)
    records = TrainingClient().list()
    resumed, failed = records  # newest first
    assert (failed.phase, resumed.phase) == (FAILED, SUCCEEDED)
    assert resumed.parent_id == failed.id
    logs = "".join(e.data.get("line", "") for e in TrainingClient().logs(resumed.id))
    assert "done from 3" in logs


#: The user guide's XGBoost example: a checkpoint every 2 rounds, resumed with xgb_model=.
XGBOOST_CELL = """
import numpy as np
import xgboost as xgb
import jupyter_training as jt


class Checkpoint(xgb.callback.TrainingCallback):
    def after_iteration(self, model, epoch, evals_log):
        done = start + epoch + 1  # rounds in the model so far
        if done % 2 == 0:
            jt.save_checkpoint(model, done)
        if done == 5 and jt.restart_count() == 0 and jt.rank() == 1:
            raise RuntimeError("preempted after 5 rounds")
        return False


rng = np.random.default_rng(jt.rank())
X = rng.normal(size=(500, 4))
dtrain = xgb.DMatrix(X, X[:, 0] > 0)
# Read before training: rank 0 cannot finish a round (and save) before every rank joins it.
ckpt = jt.latest_checkpoint()
start = ckpt.step if ckpt else 0
booster = xgb.train(
    {"objective": "binary:logistic", "tree_method": "hist"},
    dtrain,
    num_boost_round=10 - start,
    xgb_model=str(ckpt.path) if ckpt else None,
    callbacks=[Checkpoint()],
)
rounds, started_at = booster.num_boosted_rounds(), start
"""


def test_an_xgboost_job_restarts_from_its_last_booster_checkpoint(ip):
    pytest.importorskip("xgboost")
    with capture_output():
        ip.run_cell_magic(
            "train_distributed",
            "--framework xgboost -w 2 --max-restarts 1 -o rounds,started_at",
            XGBOOST_CELL,
        )
    (record,) = magics(ip).client.list()
    assert record.phase == SUCCEEDED and record.attempt == 1
    assert ip.user_ns["started_at"] == 4 and ip.user_ns["rounds"] == 10
    assert [m["step"] for m in record.checkpoints] == [2, 4, 6, 8, 10]
