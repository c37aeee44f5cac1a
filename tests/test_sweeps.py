"""Sweeps from a cell: %%train_sweep over real Optuna, every trial a real 2-worker job."""

from __future__ import annotations

import math

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from jupyter_training.errors import SweepFailedError
from jupyter_training.events import CANCELLED, FAILED, PRUNED, SUCCEEDED
from jupyter_training.magics import TrainingMagics
from jupyter_training.spec import JobSpec, SpecError
from jupyter_training.sweeps import SweepSpec, parse_objective, parse_params
from jupyter_training.sweeps.objective import reported_metrics
from jupyter_training.sweeps.state import state_from_store
from jupyter_training.tracking.query import run_rows, runs
from jupyter_training.views.sweep import (
    format_sweep_list,
    format_sweep_table,
    objective_chart,
    sweep_table_html,
)

from conftest import processes_of, wait_until

#: A 2-worker PyTorch cell: the loss is all-reduced over a real gloo group, and its
#: minimum is at lr = 0.01 and batch = 64.
TORCH_CELL = """
import math
import torch
import torch.distributed as dist
import jupyter_training as jt

dist.init_process_group("gloo")
for step in range(3):
    share = torch.tensor([(math.log10(lr) + 2) ** 2 + abs(batch - 64) / 10 + 0.1 / (step + 1)])
    dist.all_reduce(share)
    jt.report(step=step, total=3, loss=float(share) / dist.get_world_size())
best_lr = lr
dist.destroy_process_group()
"""

FAILING_CELL = (
    "import jupyter_training as jt\nif x == 2:\n    raise ValueError('bad x')\njt.report(loss=x)\n"
)


def magics(ip) -> TrainingMagics:
    return ip.magics_manager.registry["TrainingMagics"]


def sweep(ip, line: str, cell: str):
    return ip.run_cell_magic("train_sweep", f"--progress text {line}", cell)


def most_at_once(records) -> int:
    """The most trial jobs that existed unfinished at the same moment."""
    moments = sorted(
        [(r.created, 1) for r in records] + [(r.finished, -1) for r in records],
        key=lambda m: (m[0], m[1]),
    )
    running = peak = 0
    for _, change in moments:
        running += change
        peak = max(peak, running)
    return peak


# -- the search space and options --------------------------------------------------------------


def test_distributions_parse():
    lr, batch, layers, act = parse_params(
        [
            "lr=loguniform(1e-4, 1e-1)",
            "batch=choice(32,64)",
            "layers=int(1,8,2)",
            "act=choice('relu','tanh')",
        ]
    )
    assert (lr.kind, lr.args) == ("loguniform", (1e-4, 1e-1))
    assert batch.grid() == [32, 64]
    assert layers.grid() == [1, 3, 5, 7]
    assert act.args == ("relu", "tanh")
    assert parse_objective("acc:max") == ("acc", "maximize")
    assert parse_objective("loss") == ("loss", "minimize")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr=lognormal(0,1)", "unknown distribution 'lognormal'"),
        ("lr=uniform(3,1)", "LOW must be < HIGH"),
        ("lr=loguniform(0,1)", "LOW > 0"),
        ("n=int(1.5,3)", "whole numbers"),
        ("act=choice()", "at least one value"),
        ("act=choice(1,1)", "given twice"),
        ("lr=0.1", "not a distribution"),
        ("lr", "not NAME=DISTRIBUTION"),
        ("lr=uniform(a,1)", "literal values"),
    ],
)
def test_a_bad_param_names_the_flag(text, expected):
    with pytest.raises(SpecError) as caught:
        parse_params([text])
    assert caught.value.field == "--param"
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        ({"parallel": 0}, "--parallel"),
        ({"trials": 0}, "--trials"),
        ({"sampler": "cmaes"}, "--sampler"),
        ({"prune": "hyperband"}, "--prune"),
        ({"max_failures": 0}, "--max-failures"),
    ],
)
def test_bad_sweep_options_name_the_flag(options, flag):
    with pytest.raises(SpecError) as caught:
        SweepSpec(params=tuple(parse_params(["lr=uniform(0,1)"])), job=JobSpec(), **options)
    assert caught.value.field == flag


def test_a_grid_search_refuses_ranges():
    with pytest.raises(SpecError, match="grid searches listed values only"):
        SweepSpec(params=tuple(parse_params(["lr=uniform(0,1)"])), job=JobSpec(), sampler="grid")
    spec = SweepSpec(
        params=tuple(parse_params(["a=choice(1,2,3)", "b=int(1,2)"])), job=JobSpec(), sampler="grid"
    )
    assert spec.grid_size == 6


def test_reported_metrics_are_read_from_the_cell():
    assert reported_metrics(["report(step=1, loss=2)\njt.report(acc=1)"]) == {"loss", "acc"}
    assert reported_metrics(["report(**metrics)"]) is None  # unknowable: never refused
    assert reported_metrics(["callback = report"]) is None
    assert reported_metrics(["print(1)"]) is None  # maybe from --files code


# -- bad input through the magic ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "flag"),
    [
        ("--param lr=gauss(1,2)", "--param"),
        ("--param lr=uniform(3,1)", "--param"),
        ("--param lr=uniform(0,1) --parallel 0", "--parallel"),
        ("--param lr=uniform(0,1) --objective loss:maybe", "--objective"),
        ("--param lr=uniform(0,1) --objective acc:max", "--objective"),  # the cell reports loss
        ("--param lr=uniform(0,1) --workers 0", "--workers"),
    ],
)
def test_bad_input_is_one_error_before_any_trial_and_stays_in_history(ip, line, flag):
    cell = "import jupyter_training as jt\njt.report(step=0, loss=lr)\n"
    with pytest.raises(UsageError) as caught:
        sweep(ip, line, cell)
    assert str(caught.value).startswith(flag), caught.value
    client = magics(ip).client
    assert client.list() == []  # no trial started
    (kept,) = client.store.list_sweeps()
    assert (kept.phase, kept.cell) == (FAILED, cell)
    assert flag in kept.message


def test_resume_of_an_unknown_or_finished_sweep_is_refused(ip):
    with pytest.raises(UsageError, match="matches no sweep"):
        ip.run_line_magic("train_sweep", "--resume nosuchsweep")
    with capture_output():
        sweep(
            ip,
            "--param x=choice(1,2) --sampler grid --name done -w 1",
            "import jupyter_training as jt\njt.report(loss=x)\n",
        )
    with pytest.raises(UsageError, match="has run all its trials"):
        ip.run_line_magic("train_sweep", "--resume done")


# -- sweeps that run ------------------------------------------------------------------------------


def test_a_sweep_of_two_worker_pytorch_trials_finds_the_optimum(ip):
    with capture_output() as captured:
        best = sweep(
            ip,
            "--param lr=loguniform(1e-4,1) --param batch=choice(32,64,128) --trials 12 "
            "--parallel 2 --objective loss:min --seed 3 -w 2 --name lrsearch -o best_lr",
            TORCH_CELL,
        )
    client = magics(ip).client
    (kept,) = client.store.list_sweeps()
    trials = client.store.sweep_jobs(kept.id)
    assert kept.phase == SUCCEEDED
    assert len(trials) == 12 and {t.phase for t in trials} == {SUCCEEDED}
    assert all(t.workers == 2 and t.sweep == kept.id for t in trials)
    assert sorted(t.name for t in trials) == sorted(f"lrsearch-t{n}" for n in range(12))
    # The known optimum: lr = 0.01, batch = 64. Trials finish in an order the machine's load
    # decides and TPE's later asks follow it, so the best lr is asserted to within 0.75 of a
    # decade of 1e-2 (the search spans four); 500 simulated finishing orders all landed there.
    assert best["batch"] == 64
    assert abs(math.log10(best["lr"]) + 2) < 0.75, best
    assert ip.user_ns["best_lr"] == best["lr"]  # -o: the best trial's value came home
    assert f"best: trial {kept.best['trial']}" in captured.stdout
    # At most --parallel at once, and really that many while trials remained.
    assert most_at_once(trials) == 2
    # Every trial is a run with its params, history and sweep id.
    rows = {row["id"]: row for row in run_rows(client.store, sweep=kept.id)}
    assert len(rows) == 12
    best_row = rows[kept.best["job"]]
    assert best_row["params.lr"] == best["lr"] and best_row["params.batch"] == 64
    assert best_row["sweep"] == kept.id
    table = runs(sweep="lrsearch", store=client.store, sort="metrics.loss")
    assert next(iter(table["id"])) == kept.best["job"] and set(table["sweep"]) == {kept.id}
    history = client.store.history(kept.best["job"], "loss", rank=0)
    assert [step for _, step, _, _ in history] == [0, 1, 2]
    assert math.isclose(history[-1][2], kept.best["value"])
    # The views and the listings agree on the best.
    state = state_from_store(client.store, client.store.get_sweep(kept.id))
    assert state.best.number == kept.best["trial"]
    table = format_sweep_table(state)
    assert table.splitlines()[2].startswith(f"*t{kept.best['trial']}")
    assert "★" in sweep_table_html(state) and "<svg" in objective_chart(state)
    assert "lrsearch" in format_sweep_list(client.store.list_sweeps())
    with capture_output() as compared:
        ip.run_line_magic("train_compare", "lrsearch")
    text = compared.outputs[0].data["text/plain"]
    assert f"best by loss:min: lrsearch-t{kept.best['trial']}" in text


def test_median_pruning_stops_hopeless_trials_as_pruned(ip):
    cell = (
        "import time\nimport jupyter_training as jt\n"
        "for step in range(8):\n"
        "    jt.report(step=step, loss=lr + 1 / (step + 1))\n"
        "    time.sleep(0.15)\n"
    )
    with capture_output():
        best = sweep(
            ip,
            "--param lr=choice(1,2,3,4,5,6,7,8) --sampler grid --seed 7 --trials 8 --parallel 2 "
            "--prune median -w 2 --name prune",
            cell,
        )
    client = magics(ip).client
    (kept,) = client.store.list_sweeps()
    trials = client.store.sweep_jobs(kept.id)
    phases = [t.phase for t in trials]
    assert kept.phase == SUCCEEDED  # pruned trials are not failures
    assert PRUNED in phases and FAILED not in phases, phases
    pruned = [t for t in trials if t.phase == PRUNED]
    for record in pruned:
        assert record.message.startswith("pruned at step")
        assert processes_of(record.id) == []
        assert kept.trials[record.tags["trial"]]["phase"] == PRUNED
    # Stopped early: fewer points than a full trial (one pruned at its last step, on a
    # busy machine, may have reported them all).
    points = [len(client.store.history(r.id, "loss", rank=0)) for r in pruned]
    assert min(points) < 8, points
    assert best["lr"] == min(t.params["lr"] for t in trials if t.phase == SUCCEEDED)
    assert {row["phase"] for row in run_rows(client.store, sweep=kept.id)} >= {PRUNED, SUCCEEDED}


def test_failed_trials_are_recorded_and_stop_the_sweep_at_max_failures(ip):
    cell = FAILING_CELL.replace("x == 2", "x > 1")
    with capture_output(), pytest.raises(SweepFailedError, match="--max-failures 2"):
        sweep(
            ip,
            "--param x=choice(1,2,3,4,5,6) --sampler grid --seed 1 --trials 6 "
            "--max-failures 2 -w 1",
            cell,
        )
    client = magics(ip).client
    (kept,) = client.store.list_sweeps()
    trials = client.store.sweep_jobs(kept.id)
    assert kept.phase == FAILED and "stopped after 2 failed trials" in kept.message
    assert sum(t.phase == FAILED for t in trials) == 2
    assert len(trials) < 6  # it stopped early
    assert all(processes_of(t.id) == [] for t in trials)


def test_a_failed_trial_does_not_stop_the_sweep(ip):
    cell = FAILING_CELL
    with capture_output():
        best = sweep(ip, "--param x=choice(1,2,3) --sampler grid --trials 3 -w 1", cell)
    client = magics(ip).client
    (kept,) = client.store.list_sweeps()
    assert kept.phase == SUCCEEDED and best == {"x": 1}
    phases = sorted(t.phase for t in client.store.sweep_jobs(kept.id))
    assert phases == [FAILED, SUCCEEDED, SUCCEEDED]


def test_an_objective_no_trial_reports_fails_the_sweep_after_the_first_trial(ip):
    cell = "import jupyter_training as jt\nmetrics = {'acc': x}\njt.report(**metrics)\n"
    with capture_output(), pytest.raises(SweepFailedError, match="--objective"):
        sweep(ip, "--param x=choice(1,2,3,4) --sampler grid --trials 4 -w 1", cell)
    client = magics(ip).client
    (kept,) = client.store.list_sweeps()
    assert kept.phase == FAILED and "without reporting 'loss'" in kept.message
    assert len(client.store.sweep_jobs(kept.id)) == 1


def test_cancelling_a_sweep_from_elsewhere_stops_every_trial(ip):
    import threading

    cell = (
        "import time\nimport jupyter_training as jt\njt.report(step=0, loss=x)\ntime.sleep(600)\n"
    )
    client = magics(ip).client
    errors = []

    def cancel_when_running():
        try:
            wait_until(lambda: sum(not r.is_terminal for r in client.list()) == 2, timeout=60)
            wait_until(lambda: all(len(processes_of(r.id)) >= 2 for r in client.list()), 60)
            ip.run_line_magic("train_cancel", "sleepers")
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    with capture_output(), pytest.raises(SweepFailedError, match="Cancelled"):
        sweep(
            ip,
            "--param x=choice(1,2,3,4) --sampler grid --trials 4 --parallel 2 -w 1 --name sleepers",
            cell,
        )
    canceller.join(60)
    assert errors == []
    (kept,) = client.store.list_sweeps()
    trials = client.store.sweep_jobs(kept.id)
    assert kept.phase == CANCELLED and len(trials) == 2
    assert {t.phase for t in trials} == {CANCELLED}
    assert all(processes_of(t.id) == [] for t in trials)
