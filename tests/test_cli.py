"""`jupyter training` / `jupyter-training`: list, show, logs, cancel."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_training.backends.base import SubmitError
from jupyter_training.client import TrainingClient
from jupyter_training.events import CANCELLED, RUNNING, SUCCEEDED
from jupyter_training.spec import JobSpec

from conftest import processes_of, wait_until

BIN = Path(sys.executable).parent


def cli(*args, check=True):
    return subprocess.run(
        [str(BIN / "jupyter-training"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def finished_job(client, cell, **spec):
    record = client.submit(JobSpec(**spec), cell, {})
    list(client.events(record.id))
    return client.get(record.id)


def test_list_and_show_json(settings):
    client = TrainingClient(settings)
    first = finished_job(client, "print('a')", workers=1, name="first")
    second = finished_job(client, "raise SystemExit(2)", workers=2, name="second")
    listed = json.loads(cli("list", "--json").stdout)
    assert [job["id"] for job in listed] == [second.id, first.id]
    keys = {
        "id",
        "name",
        "phase",
        "framework",
        "backend",
        "workers",
        "gpus",
        "created",
        "started",
        "finished",
        "failure",
    }
    assert keys <= set(listed[0])
    assert listed[0]["phase"] == "Failed" and listed[0]["failure"]["exit_code"] == 2
    assert listed[1]["phase"] == SUCCEEDED and listed[1]["failure"] is None
    shown = json.loads(cli("show", first.id[:6], "--json").stdout)
    assert shown == listed[1]
    failed_only = json.loads(cli("list", "--json", "--phase", "Failed").stdout)
    assert [job["id"] for job in failed_only] == [second.id]
    table = cli("list").stdout
    assert table.splitlines()[0].split()[:3] == ["ID", "NAME", "PHASE"]


def test_jupyter_subcommand_and_logs(settings):
    client = TrainingClient(settings)
    record = finished_job(
        client, "import jupyter_training as jt\nprint('hi', jt.rank())", workers=2
    )
    out = subprocess.run(
        [str(BIN / "jupyter"), "training", "logs", record.id],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert sorted(out.splitlines()) == ["[rank 0] hi 0", "[rank 1] hi 1"]
    assert cli("logs", record.id, "--rank", "1").stdout.splitlines() == ["[rank 1] hi 1"]


def test_logs_follow_and_cancel(settings):
    client = TrainingClient(settings)
    record = client.submit(
        JobSpec(workers=2), "import time\nprint('up', flush=True)\ntime.sleep(600)", {}
    )
    wait_until(lambda: client.get(record.id).phase == RUNNING)
    follower = subprocess.Popen(
        [str(BIN / "jupyter-training"), "logs", record.id, "--follow"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert cli("cancel", record.id).stdout.split() == [record.id, CANCELLED]
    out, _ = follower.communicate(timeout=30)
    assert follower.returncode == 0  # --follow ends with the job
    assert "[rank 0] up" in out
    wait_until(lambda: processes_of(record.id) == [], timeout=10)


def test_unknown_id_is_a_clear_error():
    result = cli("show", "nope", check=False)
    assert result.returncode == 2
    assert "job id 'nope' matches no job" in result.stderr


def test_failed_submission_is_history_that_every_command_can_read(settings):
    client = TrainingClient(settings)
    with pytest.raises(SubmitError):
        client.submit(JobSpec(backend="kubernetes", name="never-ran"), "print('kept')", {})
    (record,) = client.list()
    shown = json.loads(cli("show", record.id, "--json").stdout)
    assert (shown["name"], shown["phase"]) == ("never-ran", "Failed")
    assert "not submitted" in shown["failure"]["reason"]
    assert cli("logs", record.id).stdout == ""
    assert cli("cancel", record.id).stdout.split() == [record.id, "Failed"]


def test_list_notices_a_lost_supervisor(settings):
    client = TrainingClient(settings)
    record = client.submit(JobSpec(workers=1), "import time\ntime.sleep(600)", {})
    wait_until(lambda: client.get(record.id).phase == RUNNING)
    os.kill(client.get(record.id).supervisor_pid, signal.SIGKILL)
    wait_until(lambda: processes_of(record.id) == [], timeout=10)
    listed = json.loads(cli("list", "--json").stdout)
    assert listed[0]["phase"] == "Failed"
    assert listed[0]["failure"]["reason"].startswith("supervisor lost")


def test_list_sorts_and_filters_by_metric_and_param_and_compare(settings):
    client = TrainingClient(settings)
    cell = "import jupyter_training as jt\njt.log_params(lr=LR)\njt.report(step=1, loss=1 - LR)"
    jobs = {
        lr: finished_job(client, cell.replace("LR", str(lr)), workers=1, name=f"r{i}")
        for i, lr in enumerate((0.1, 0.5, 0.3))
    }
    # Nobody followed these jobs live: the history is read back from their files.
    listed = json.loads(cli("list", "--json", "--sort=-metrics.loss").stdout)
    assert [j["params"]["lr"] for j in listed] == [0.1, 0.3, 0.5]
    table = cli("list", "--where", "params.lr>=0.3 and metrics.loss<0.6").stdout
    assert jobs[0.5].id in table and jobs[0.1].id not in table and jobs[0.3].id not in table
    assert cli("list", "--name", "r[12]", "--json").stdout.count('"id"') == 2
    shown = json.loads(cli("compare", "r0", "r1", "r2", "--json").stdout)
    assert shown["differing"] == ["lr"] and shown["best"] == jobs[0.5].id
    text = cli("compare", "--last", "3", "--objective", "loss:max").stdout
    assert "best by loss:max: r0" in text and "* lr" in text
    bad = cli("list", "--where", "lr >", check=False)
    assert bad.returncode == 2 and "--where: cannot read" in bad.stderr
    missing = cli("compare", "nothing-here", check=False)
    assert missing.returncode == 2 and "neither a job id nor a job name" in missing.stderr
