"""Runs you can compare: params, full metric history, artifacts, context, runs(), compare.

Real local jobs (worker processes reporting through their output), a real
SQLite store, and the kernel-side follower that records them.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from jupyter_training import tracking
from jupyter_training.backends.local.files import JobFiles
from jupyter_training.client import TrainingClient
from jupyter_training.events import Event, output_events
from jupyter_training.runtime import records, reporting
from jupyter_training.spec import JobSpec
from jupyter_training.store import JobStore, pending_record
from jupyter_training.tracking.compare import Objective, compare
from jupyter_training.tracking.envelope import Envelope, thin
from jupyter_training.tracking.recorder import RunRecorder
from jupyter_training.tracking.where import WhereError, parse_sort, parse_where
from jupyter_training.views.compare import compare_html, compare_text
from jupyter_training.views.follow import Follower
from jupyter_training.views.text import TextJobView

STEPS = 400
LR_CELL = f"""
import jupyter_training as jt
jt.log_params(batch=32)
for i in range({STEPS}):
    jt.report(step=i, total={STEPS}, loss=(1 - lr) ** i + jt.rank(), acc=i / {STEPS})
(jt.artifacts_dir() / f"weights-{{jt.rank()}}.txt").write_text(str(lr))
"""


def run_job(client, spec, cell, namespace=None, follow=True):
    record = client.submit(spec, cell, namespace or {})
    if follow:
        Follower(client, record.id, TextJobView(record)).run()
    return record


@pytest.fixture
def client(settings):
    return TrainingClient(settings)


@pytest.fixture
def three_lr_runs(client):
    """Three two-rank jobs that differ only in the notebook value ``lr``."""
    ids = {}
    for lr in (0.001, 0.01, 0.1):
        spec = JobSpec(workers=2, name=f"lr-{str(lr).replace('.', '-')}", tags={"team": "vision"})
        record = run_job(
            client, spec, LR_CELL, {"lr": lr, "model": object(), "big": list(range(99))}
        )
        ids[lr] = record.id
    return ids


def test_three_runs_differing_in_lr_are_told_apart_and_ranked(client, three_lr_runs):
    frame = tracking.runs(store=client.store)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns[:9]) == [
        "id",
        "name",
        "phase",
        "framework",
        "backend",
        "workers",
        "created",
        "duration",
        "sweep",
    ]
    assert sorted(frame["params.lr"]) == [0.001, 0.01, 0.1]
    assert set(frame["params.batch"]) == {32}  # log_params() from the cell
    assert "params.model" not in frame.columns and "params.big" not in frame.columns  # not plain
    assert set(frame["params.workers"]) == {2} and set(frame["tags.team"]) == {"vision"}
    final = dict(zip(frame["params.lr"], frame["metrics.loss"], strict=True))
    for lr, loss in final.items():
        assert loss == pytest.approx((1 - lr) ** (STEPS - 1))  # rank 0's last value
    ranked = tracking.runs(sort="metrics.loss", store=client.store)
    assert list(ranked["params.lr"]) == [0.1, 0.01, 0.001]
    picked = tracking.runs(where="params.lr>0.005 and metrics.acc>=0.99", store=client.store)
    assert sorted(picked["params.lr"]) == [0.01, 0.1]

    comparison = compare(client.store, [three_lr_runs[0.001], "lr-0-01", three_lr_runs[0.1][:8]])
    assert comparison.differing == ["lr"]
    assert comparison.objective == Objective("loss", "min")  # the first reported metric
    assert comparison.best == three_lr_runs[0.1]
    assert [len(c.y) for c in comparison.curves["loss"]] == [STEPS] * 3  # full curves (< max)
    assert comparison.curves["loss"][2].y[-1] == pytest.approx(0.9 ** (STEPS - 1))
    by_acc = compare(client.store, list(three_lr_runs.values()), objective="acc:max")
    assert by_acc.best in three_lr_runs.values()


def test_full_history_per_rank_is_kept(client, three_lr_runs):
    run = tracking.run(three_lr_runs[0.1], store=client.store)
    history = run.history("loss")
    assert len(history) == 2 * STEPS
    assert sorted(set(history["rank"])) == [0, 1]
    rank1 = run.history("loss", rank=1)
    assert list(rank1["step"]) == list(range(STEPS))
    assert list(rank1["value"]) == pytest.approx([0.9**i + 1 for i in range(STEPS)])
    assert rank1["time"].is_monotonic_increasing
    assert run.metric_names == ["loss", "acc"]
    with pytest.raises(KeyError, match=r"'lossy' was never reported.*it reported: loss, acc"):
        run.history("lossy")
    with pytest.raises(KeyError, match="rank 5 never reported 'loss'"):
        run.history("loss", rank=5)


def test_context_and_artifacts_are_kept_with_the_run(client, three_lr_runs):
    run = tracking.run("lr-0-1", store=client.store)  # a name: its newest job
    assert run.id == three_lr_runs[0.1]
    context = run.context
    assert len(context["cell_sha256"]) == 64
    assert context["versions"]["python"].count(".") == 2
    assert context["host"] and context["worker_host"]
    assert [p.name for p in run.artifacts] == ["weights-0.txt", "weights-1.txt"]
    assert run.artifacts[0].read_text() == "0.1"
    assert str(run.artifacts[0]).startswith(str(client.store.path.parent))  # in the store dir


def test_framework_versions_are_recorded_when_imported(client):
    record = run_job(
        client, JobSpec(workers=1), "import json, sys\nimport torch\nprint(torch.ones(1))"
    )
    versions = client.store.get(record.id).context["versions"]
    import torch

    assert versions["torch"] == torch.__version__


def test_secrets_never_reach_params_tags_or_context(client, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "s3cr3t-value-123")
    spec = JobSpec(workers=1, secret_env={"API_TOKEN": ""}, env={"SEED": "1"})
    cell = (
        "import os\nimport jupyter_training as jt\nx = os.environ['API_TOKEN']\n"
        "jt.log_params(oops=x, nested=[x, 1])\nprint(len(x), copy, hf_token, user)"
    )
    namespace = {"copy": "s3cr3t-value-123", "hf_token": "hf_abc", "user": "ann"}
    record = run_job(client, spec, cell, namespace)
    stored = client.store.get(record.id)
    blob = json.dumps([stored.params, stored.tags, stored.context, stored.metrics])
    assert "s3cr3t" not in blob and "SEED" not in blob and "hf_abc" not in blob
    assert stored.params["user"] == "ann"  # a plain value that is no secret stays
    assert stored.params["oops"] == "***" and stored.params["nested"] == ["***", 1]
    assert b"s3cr3t" not in client.store.path.read_bytes()


def test_a_detached_job_nobody_followed_is_read_back_from_its_files(client):
    record = run_job(client, JobSpec(workers=2), LR_CELL, {"lr": 0.5}, follow=False)
    deadline = time.time() + 60
    while not client.store.get(record.id).is_terminal and time.time() < deadline:
        time.sleep(0.1)
    assert client.store.metric_names(record.id) == {}
    frame = tracking.runs(store=client.store)
    assert frame.loc[0, "metrics.loss"] == pytest.approx(0.5 ** (STEPS - 1))
    assert len(tracking.run(record.id, store=client.store).history("acc")) == 2 * STEPS


def test_runs_filters(client, three_lr_runs):
    other = run_job(client, JobSpec(workers=1, name="other", tags={"team": "nlp"}), "x = 1")
    rows = lambda **kw: sorted(tracking.runs(store=client.store, **kw)["name"])  # noqa: E731
    assert rows(name="lr-*") == ["lr-0-001", "lr-0-01", "lr-0-1"]
    assert rows(tag="team=nlp") == ["other"]
    assert rows(tag={"team": "vision"}) == ["lr-0-001", "lr-0-01", "lr-0-1"]
    assert rows(phase="Succeeded") == ["lr-0-001", "lr-0-01", "lr-0-1", "other"]
    created = client.store.get(other.id).created
    assert rows(since=created) == ["other"]
    assert rows(until=created) == ["lr-0-001", "lr-0-01", "lr-0-1"]
    assert len(tracking.runs(limit=2, store=client.store)) == 2
    with pytest.raises(ValueError, match="since: 'yesterday' is not a time"):
        tracking.runs(since="yesterday", store=client.store)
    with pytest.raises(WhereError, match="--where: cannot read 'lr >'"):
        tracking.runs(where="lr >", store=client.store)
    with pytest.raises(KeyError, match="neither a job id nor a job name"):
        tracking.run("no-such-run", store=client.store)


def test_runs_without_pandas_is_a_list_of_records(client, three_lr_runs, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("no pandas here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    rows = tracking.runs(store=client.store)
    assert isinstance(rows, list) and {r["params.lr"] for r in rows} == {0.001, 0.01, 0.1}
    history = tracking.run(three_lr_runs[0.01], store=client.store).history("loss", rank=0)
    assert history[0] == {"rank": 0, "step": 0, "value": 1.0, "time": history[0]["time"]}


def test_compare_views(client, three_lr_runs):
    comparison = compare(client.store, [], last=3)
    text = compare_text(comparison)
    assert "* lr" in text and "*best*" in text
    assert "best by loss:min: lr-0-1" in text
    page = compare_html(comparison)
    assert page.count("<polyline") == 2 * 3  # loss and acc, one line per run
    assert "jt-differs" in page and "&#9733; best" in page
    assert page.count("class='jt-param jt-differs'") == 1


def test_compare_widget_picks_the_objective_and_hides_equal_params(client, three_lr_runs):
    from jupyter_training.views.compare import CompareWidget

    view = CompareWidget(compare(client.store, list(three_lr_runs.values())))
    assert "&#9733; best" in view.page.value and view.comparison.best == three_lr_runs[0.1]
    view.mode.value = "max"
    assert view.comparison.best == three_lr_runs[0.001]
    view.metric.value, view.mode.value = "acc", "max"
    assert view.comparison.objective == Objective("acc", "max")
    assert view.page.value.count("class='jt-param") == 7  # lr, batch and the five flags
    view.only_differing.value = True
    assert view.page.value.count("class='jt-param") == 1
    assert "best by acc:max" in view._repr_mimebundle_()["text/plain"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"refs": ["nope"]}, "neither a job id nor a job name"),
        ({"refs": [], "last": 0}, "--last: 0 is not a number of runs"),
        ({"refs": []}, "name the runs to compare"),
        ({"refs": ["lr-0-1"], "objective": "loss:best"}, "--objective: 'loss:best' is not"),
        ({"refs": ["lr-0-1"], "objective": "f1"}, "no run here reported 'f1'"),
    ],
)
def test_compare_bad_input_is_one_clear_error(client, three_lr_runs, kwargs, message):
    with pytest.raises((KeyError, ValueError), match=message):
        compare(client.store, kwargs.pop("refs"), **kwargs)


# -- the pieces, on their own ---------------------------------------------------------------


def test_reports_are_packed_and_unpacked_exactly():
    points = [
        (time.time() + i / 7, i, None if i % 3 == 0 else i, None if i % 2 else 100, {"loss": i / 3})
        for i in range(50)
    ]
    points[7][4]["loss"] = math.inf
    packed = json.loads(json.dumps(reporting.pack_points(points)))
    assert "n" in packed and reporting.unpack_points(packed) == points
    mixed = [*points[:2], (time.time(), 99, 1, None, {"acc": 0.5})]
    assert "points" in reporting.pack_points(mixed)
    assert reporting.unpack_points(json.loads(json.dumps(reporting.pack_points(mixed)))) == [
        tuple(p) for p in mixed
    ]


def test_a_reports_record_becomes_one_report_event_per_point():
    points = [(1000.0 + i, i, i, 3, {"loss": 1.0 / (i + 1)}) for i in range(3)]
    line = records.PREFIX + json.dumps(
        {"type": "reports", "rank": 1, **reporting.pack_points(points)}
    )
    events = list(output_events("job", 1, line))
    assert [e.kind for e in events] == ["report"] * 3
    assert [(e.time, e.data["seq"], e.data["step"], e.data["metrics"]) for e in events] == [
        (1000.0 + i, i, i, {"loss": 1.0 / (i + 1)}) for i in range(3)
    ]
    assert all(e.rank == 1 for e in events)
    broken = list(output_events("job", 0, records.PREFIX + '{"type": "reports", "n": 2}'))
    assert [e.kind for e in broken] == ["log"] and "unreadable reports" in broken[0].data["line"]


def test_two_followers_store_each_point_once(settings):
    store = JobStore(settings.store_path)
    store.add(pending_record("abc", JobSpec(workers=1), "x"))
    events = [
        Event("report", "abc", {"step": i, "metrics": {"loss": float(i)}, "seq": i}, 0, 50.0 + i)
        for i in range(1000)
    ]
    for _ in range(2):  # the kernel and the server both follow the job
        recorder = RunRecorder(store, "abc")
        for event in events:
            recorder.feed(event)
        recorder.close(complete=True)
    assert store.metric_names("abc") == {"loss": {0: 1000}}
    assert store.get("abc").metrics == {"loss": 999.0}
    assert store.get("abc").history_done == 1


def test_nan_points_are_kept_as_missing_values(settings):
    store = JobStore(settings.store_path)
    store.add(pending_record("nan", JobSpec(workers=1), "x"))
    recorder = RunRecorder(store, "nan")
    for i, value in enumerate([1.0, math.nan, 0.5]):
        recorder.feed(Event("report", "nan", {"step": i, "metrics": {"loss": value}, "seq": i}, 0))
    recorder.close(complete=True)
    assert [row[2] for row in store.history("nan", "loss")] == [1.0, None, 0.5]
    assert store.series("nan", "loss", 0)[:2] == ([0.0, 2.0], [1.0, 0.5])


def test_envelope_keeps_spikes_and_the_last_point_in_bounded_memory():
    envelope = Envelope(buckets=100)
    for i in range(100_000):
        envelope.add(i, 5000.0 if i == 54_321 else math.sin(i / 1000))
    points = envelope.points()
    assert len(points) <= 2 * 100 + 1
    assert (54_321, 5000.0) in points
    assert points[-1] == (99_999, math.sin(99.999))
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    assert len(thin(points, 50)) <= 51 and (54_321, 5000.0) in thin(points, 50)


def test_chart_series_reads_the_preview_or_thins_the_history(settings):
    store = JobStore(settings.store_path)
    store.add(pending_record("long", JobSpec(workers=1), "x"))
    recorder = RunRecorder(store, "long")
    for i in range(30_000):
        value = 100.0 if i == 12_345 else 1.0 / (i + 1)
        recorder.feed(
            Event("report", "long", {"step": i, "metrics": {"loss": value}, "seq": i}, 0, i)
        )
    recorder.close(complete=True)
    xs, ys, count = store.series("long", "loss", 0, 500)
    assert count == 30_000 and len(xs) <= 501 and 100.0 in ys and xs[-1] == 29_999
    fine_x, fine_y, _ = store.series("long", "loss", 0, 10_000)  # finer than the preview: SQL
    assert 2_000 < len(fine_x) <= 10_002 and 100.0 in fine_y
    assert len(store.history("long", "loss")) == 30_000


@pytest.mark.parametrize(
    ("text", "row", "expected"),
    [
        ("params.lr>0.01", {"params.lr": 0.1}, True),
        ("params.lr>0.01", {"params.lr": 0.001}, False),
        ("params.lr>0.01", {}, False),
        ("params.opt = adam", {"params.opt": "adam"}, True),
        ("params.opt != 'adam'", {"params.opt": "sgd"}, True),
        (
            "tags.team=vision and metrics.loss<=0.5",
            {"tags.team": "vision", "metrics.loss": 0.5},
            True,
        ),
        ("phase == Failed", {"phase": "Succeeded"}, False),
        ("params.flag = true", {"params.flag": True}, True),
    ],
)
def test_where_conditions(text, row, expected):
    assert parse_where(text)(row) is expected


@pytest.mark.parametrize("text", ["lr", "params.lr >> 1", "and", "params.lr > 1 or x < 2", ""])
def test_where_that_does_not_parse_names_the_flag(text):
    with pytest.raises(WhereError, match=r"^--where: cannot read"):
        parse_where(text)


def test_sort_parses_direction_and_refuses_junk():
    assert parse_sort("-metrics.loss") == ("metrics.loss", True)
    assert parse_sort("created") == ("created", False)
    with pytest.raises(WhereError, match="--sort: 'metrics loss' is not a column"):
        parse_sort("metrics loss")


def test_log_params_refuses_values_that_are_not_plain_data(monkeypatch):
    monkeypatch.setattr(reporting, "_IN_JOB", [True])
    with pytest.raises(TypeError, match="log_params\\(\\): 'model' is a object, not plain data"):
        reporting.log_params(model=object())


# -- what the review found ----------------------------------------------------------------


class FlakyStore(JobStore):
    """A store whose first ``fails`` point writes fail, as a database locked too long."""

    fails = 1

    def add_points(self, job_id, points):
        if self.fails:
            self.fails -= 1
            raise sqlite3.OperationalError("database is locked")
        super().add_points(job_id, points)


def report_events(job_id, count, start=0, rank=0, value=lambda i: 1.0 / (i + 1)):
    return [
        Event("report", job_id, {"step": i, "metrics": {"loss": value(i)}, "seq": i}, rank, 9 + i)
        for i in range(start, start + count)
    ]


def test_a_failed_write_keeps_its_points_and_the_history_stays_incomplete(settings, caplog):
    store = FlakyStore(settings.store_path)
    store.add(pending_record("lock", JobSpec(workers=1), "x"))
    recorder = RunRecorder(store, "lock")
    for event in report_events("lock", 10):
        recorder.feed(event)
    assert recorder.flush() is False  # refused: kept, one warning
    assert "database is locked" in caplog.text
    recorder.close(complete=True)
    assert len(store.history("lock", "loss")) == 10
    assert store.get("lock").history_done == 0  # a write failed on the way: not marked whole


def test_a_follower_that_saw_less_never_overwrites_one_that_saw_more(settings):
    store = JobStore(settings.store_path)
    store.add(pending_record("two", JobSpec(workers=1), "x"))
    full = RunRecorder(store, "two")
    for event in report_events("two", 500):
        full.feed(event)
    full.close(complete=True)
    partial = RunRecorder(store, "two")  # e.g. %train_attach interrupted halfway
    for event in report_events("two", 30):
        partial.feed(event)
    partial.close(complete=False)
    assert store.metric_names("two") == {"loss": {0: 500}}
    assert store.get("two").metrics == {"loss": 1.0 / 500}
    assert len(store.series("two", "loss", 0)[0]) == 500


def test_inf_and_nan_never_reach_json(settings):
    store = JobStore(settings.store_path)
    store.add(pending_record("inf", JobSpec(workers=1), "x"))
    recorder = RunRecorder(store, "inf")
    values = [1.0, math.inf, 0.5, -math.inf, math.nan]
    for event in report_events("inf", 5, value=lambda i: values[i]):
        recorder.feed(event)
    recorder.close(complete=True)
    assert store.get("inf").metrics == {"loss": None}  # it ended on nan: no value
    xs, ys, count = store.series("inf", "loss", 0)
    assert (xs, ys, count) == ([0.0, 2.0], [1.0, 0.5], 5)
    json.dumps(store.series("inf", "loss", 0, 2), allow_nan=False)
    assert compare(store, ["inf"]).best is None


def test_report_refuses_steps_no_column_holds_and_keeps_odd_values(monkeypatch):
    with pytest.raises(ValueError, match="report\\(\\): step 9223372036854775808 is out of range"):
        reporting.report(step=2**63, loss=1.0)
    huge = [(1.0, 0, 1, None, {"loss": 10**400})]
    with pytest.raises(OverflowError):
        reporting.pack_points(huge)
    sent = []
    monkeypatch.setattr(reporting, "_IN_JOB", [True])
    monkeypatch.setattr(reporting.records, "emit", lambda kind, **data: sent.append(data))
    reporting.report(step=1, loss=10**400)
    reporting.flush_reports()
    assert sent[-1]["points"][0][4] == {"loss": 10**400}  # the plain list: nothing lost


def test_a_forked_child_starts_with_its_own_empty_queue():
    code = (
        "import os\n"
        "from jupyter_training.runtime import reporting\n"
        "reporting._IN_JOB[0] = True\n"
        "reporting.flushed_by_thread()\n"
        "reporting._pending.append((1.0, 0, 0, None, {'loss': 1.0}))\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = not reporting._pending and not reporting._FLUSHER[0]\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "raise SystemExit(os.waitstatus_to_exitcode(status))\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_a_failure_tail_does_not_start_with_half_a_reports_record(tmp_path):
    files = JobFiles(tmp_path / "job")
    files.create()
    files.rank_log(0).write_text("x" * 100_000 + "\nTraceback:\nValueError: bad\n")
    tail, _ = files.rank_log_tail(0)
    assert tail == ["Traceback:", "ValueError: bad"]


@pytest.mark.parametrize("secret", ["pa\\ss-word-1", "pässwörd-12", '"quoted"secret'])
def test_secrets_with_special_characters_stay_out_of_params(secret):
    from jupyter_training.tracking.params import notebook_params

    namespace = {"a": secret, "b": [1, {"k": f"x{secret}y"}], "c": "fine"}
    assert notebook_params(namespace, ["a", "b", "c"], [secret]) == {"c": "fine"}


@pytest.mark.parametrize(
    ("text", "row", "expected"),
    [
        ("tags.on=true", {"tags.on": "true"}, True),
        ("params.opt>true", {"params.opt": [1, 2]}, False),
        ("created>2026-01-01", {"created": 1_800_000_000.0}, True),
        ("created<2026-01-01", {"created": 1_800_000_000.0}, False),
    ],
)
def test_where_compares_tags_bools_and_dates(text, row, expected):
    assert parse_where(text)(row) is expected


def test_where_refuses_a_created_that_is_no_date():
    with pytest.raises(WhereError, match="created compares with a date"):
        parse_where("created>yesterday")
