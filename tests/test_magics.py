"""The magics as a user meets them in IPython: flags, errors, output, detach, history."""

import re

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from jupyter_training.errors import JobFailedError
from jupyter_training.events import CANCELLED, FAILED, RUNNING, SUCCEEDED
from jupyter_training.magics import TrainingMagics

from conftest import processes_of, wait_until


def magics(ip) -> TrainingMagics:
    return ip.magics_manager.registry["TrainingMagics"]


def cell_magic(ip, line, cell):
    return ip.run_cell_magic("train_distributed", line, cell)


def test_notebook_names_travel_and_output_is_prefixed_by_rank(ip):
    ip.run_cell(
        "import math as m\n"
        "offset = 10\n"
        "def f(x):\n"
        "    return x + offset\n"
        "class Counter:\n"
        "    def __init__(self):\n"
        "        self.n = 1\n",
        store_history=True,
    )
    with capture_output() as captured:
        cell_magic(
            ip,
            "--workers 2 --name names-test",
            "import jupyter_training as jt\n"
            "print('value', f(jt.rank()), Counter().n, m.floor(2.5))\n",
        )
    out = captured.stdout
    assert "[rank 0] value 10 1 2" in out
    assert "[rank 1] value 11 1 2" in out
    assert "[names-test] Running" in out
    assert "[names-test] Succeeded in" in out
    (record,) = magics(ip).client.list()
    assert (record.name, record.phase, record.workers) == ("names-test", SUCCEEDED, 2)
    assert "print('value'" in record.cell


def test_failure_raises_with_rank_exit_code_and_traceback(ip):
    with capture_output(), pytest.raises(JobFailedError) as caught:
        cell_magic(
            ip,
            "-w 2",
            "import jupyter_training as jt\n"
            "def load():\n"
            "    raise FileNotFoundError('data.csv')\n"
            "if jt.rank() == 1:\n"
            "    load()\n",
        )
    err = caught.value
    assert (err.rank, err.exit_code, err.remote_type) == (1, 1, "FileNotFoundError")
    message = str(err)
    assert "rank 1 exited with code 1: FileNotFoundError: data.csv" in message
    assert "line 3, in load" in message
    assert f"%train_logs {err.record.id} --rank 1" in message
    assert err._render_traceback_()[0].endswith(message)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--workers 0", "--workers: must be >= 1"),
        ("--workers many", "--workers: must be a whole number, got .many."),
        ("--gpus -1", "--gpus: must be >= 0"),
        ("--framework mxnet", "--framework: 'mxnet' is not a framework .* use one of jax, pytorch"),
        ("--nproc-per-worker 0", "--nproc-per-worker: must be a whole number >= 1 or 'auto'"),
        ("--name Bad_Name", "--name: 'Bad_Name' is not a DNS-1123 label"),
        ("--env NOPE", "--env: 'NOPE' is not KEY=VALUE"),
        ("--env RANK=1", "--env: RANK is set by the training runtime"),
        ("--backend slurm", "--backend: 'slurm' is not one of local, kubernetes"),
        ("--timeout -5", "--timeout: must be a positive number"),
    ],
)
def test_bad_flags_are_one_clear_usage_error(ip, line, expected):
    with pytest.raises(UsageError, match=expected):
        cell_magic(ip, line, "print(1)")
    assert magics(ip).client.list() == []  # nothing launched


def test_capture_error_is_refused_but_kept_in_history(ip):
    ip.run_cell("import threading\nlock = threading.Lock()", store_history=True)
    with pytest.raises(UsageError, match="notebook variable 'lock'"):
        cell_magic(ip, "-w 2 --name keep-me", "print(lock)")
    (record,) = magics(ip).client.list()
    assert (record.phase, record.name, record.cell) == (FAILED, "keep-me", "print(lock)")
    assert "not submitted" in record.message


def test_detach_then_logs_and_jobs(ip):
    with capture_output() as captured:
        cell_magic(
            ip, "-w 2 --detach", "import jupyter_training as jt\nprint('hello from', jt.rank())"
        )
    (record,) = magics(ip).client.list()
    assert f"%train_logs {record.id} --follow" in captured.stdout
    with capture_output() as logs:
        ip.run_line_magic("train_logs", f"{record.id} --follow")
    assert "[rank 0] hello from 0" in logs.stdout
    assert "[rank 1] hello from 1" in logs.stdout
    with capture_output() as one_rank:
        ip.run_line_magic("train_logs", f"{record.id[:5]} --rank 1")
    assert one_rank.stdout.strip() == "[rank 1] hello from 1"
    with capture_output() as table:
        ip.run_line_magic("train_jobs", "")
    assert record.id in table.stdout and SUCCEEDED in table.stdout


def test_train_cancel_stops_a_detached_job(ip):
    with capture_output():
        cell_magic(ip, "-w 2 --detach", "import time\ntime.sleep(600)")
    (record,) = magics(ip).client.list()
    client = magics(ip).client
    wait_until(lambda: client.get(record.id).phase == RUNNING)
    with capture_output() as captured:
        ip.run_line_magic("train_cancel", record.id)
    assert CANCELLED in captured.stdout
    wait_until(lambda: processes_of(record.id) == [], timeout=10)


def test_unknown_job_id_is_a_usage_error(ip):
    with pytest.raises(UsageError, match="matches no job"):
        ip.run_line_magic("train_logs", "abcdef")


def test_defaults_come_from_config(ip, jupyter_dirs, monkeypatch):
    (jupyter_dirs / "config" / "jupyter_server_config.json").write_text(
        '{"TrainingApp": {"backend": "kubernetes"}}'
    )
    monkeypatch.setenv("KUBECONFIG", str(jupyter_dirs / "no-such-kubeconfig"))
    ip.register_magics(TrainingMagics)
    with pytest.raises(UsageError, match="no usable Kubernetes configuration"):
        cell_magic(ip, "-w 1", "print(1)")
    (record,) = magics(ip).client.list()
    assert (record.backend, record.phase) == ("kubernetes", FAILED)


def test_files_ship_to_local_workers(ip, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "shipped_mod.py").write_text("VALUE = 'shipped'\n")
    with capture_output() as captured:
        cell_magic(
            ip,
            f"-w 2 --files {elsewhere / 'shipped_mod.py'}",
            "import shipped_mod\nprint(shipped_mod.VALUE)",
        )
    assert "[rank 0] shipped" in captured.stdout
    assert "[rank 1] shipped" in captured.stdout


def test_installation_limits_apply_to_every_submission(ip, jupyter_dirs):
    (jupyter_dirs / "config" / "jupyter_server_config.json").write_text(
        '{"TrainingApp": {"max_workers": 4, "max_gpus_per_worker": 1}}'
    )
    ip.register_magics(TrainingMagics)
    with pytest.raises(UsageError, match=r"--workers: 8 is over this installation's limit of 4"):
        cell_magic(ip, "-w 8", "pass")
    with pytest.raises(
        UsageError, match=r"--gpus: 2 is over .* \(c.TrainingApp.max_gpus_per_worker\)"
    ):
        cell_magic(ip, "-w 1 -g 2 --dry-run", "pass")


LR_CELL = (
    "import jupyter_training as jt\n"
    "for i in range(100):\n"
    "    jt.report(step=i, loss=(1 - lr) ** i)\n"
)


def lr_jobs(ip, rates=(0.01, 0.2)):
    for lr in rates:
        ip.user_ns["lr"] = lr
        name = f"lr-{str(lr).replace('.', '-')}"
        with capture_output():
            cell_magic(ip, f"-w 2 --name {name} --tag team=vision --experiment lr-search", LR_CELL)
    return {r.params["lr"]: r for r in magics(ip).client.list()}


def test_jobs_are_runs_to_sort_filter_and_compare(ip):
    runs = lr_jobs(ip)
    assert runs[0.2].tags == {"team": "vision"}
    assert runs[0.2].spec.experiment == "lr-search"
    assert runs[0.2].metrics == {"loss": pytest.approx(0.8**99)}
    with capture_output() as table:
        ip.run_line_magic("train_jobs", "--sort metrics.loss")
    lines = table.stdout.splitlines()
    assert lines[1].startswith(runs[0.2].id) and lines[2].startswith(runs[0.01].id)
    with capture_output() as picked:
        ip.run_line_magic("train_jobs", "--where 'params.lr>0.05'")
    assert runs[0.2].id in picked.stdout and runs[0.01].id not in picked.stdout
    with capture_output() as named:
        ip.run_line_magic("train_jobs", "--name 'lr-0-0*'")
    assert runs[0.01].id in named.stdout and runs[0.2].id not in named.stdout

    with capture_output() as shown:
        ip.run_line_magic("train_compare", "lr-0-01 lr-0-2 --objective loss:min")
    text = shown.outputs[0].data["text/plain"]
    assert "* lr" in text and "best by loss:min: lr-0-2" in text
    with capture_output() as last:
        ip.run_line_magic("train_compare", "--last 2 --objective loss:max")
    assert "best by loss:max: lr-0-01" in last.outputs[0].data["text/plain"]


@pytest.mark.parametrize(
    ("magic", "line", "expected"),
    [
        ("train_compare", "no-such-run", "neither a job id nor a job name"),
        ("train_compare", "", "name the runs to compare"),
        ("train_compare", "--last 1 --objective loss:most", "--objective: 'loss:most'"),
        ("train_jobs", "--where 'params.lr >'", "--where: cannot read"),
        ("train_jobs", "--sort 'a b'", "--sort: 'a b' is not a column"),
        ("train_jobs", "--phase Done", "--phase: 'Done' is not a phase"),
    ],
)
def test_bad_run_queries_are_one_clear_usage_error(ip, magic, line, expected):
    with capture_output():
        cell_magic(ip, "-w 1", "x = 1")
    with pytest.raises(UsageError, match=re.escape(expected)):
        ip.run_line_magic(magic, line)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--tag team", "--tag: 'team' is not KEY=VALUE"),
        ("--tag '=x'", "--tag: '=x' is not KEY=VALUE"),
        ("--experiment ''", "--experiment: '' is not an experiment name"),
    ],
)
def test_bad_tags_and_experiments_are_refused(ip, line, expected):
    with pytest.raises(UsageError, match=re.escape(expected)):
        cell_magic(ip, line, "x = 1")
