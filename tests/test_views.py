"""report(), the job views, results coming home, remote exceptions and output floods."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest
from IPython.utils.capture import capture_output

from jupyter_training.client import TrainingClient
from jupyter_training.errors import JobFailedError, JobResultError
from jupyter_training.events import CANCELLED, RUNNING, SUCCEEDED, Event, output_events
from jupyter_training.magics import TrainingMagics
from jupyter_training.runtime import records
from jupyter_training.spec import JobSpec
from jupyter_training.store import new_job_id, pending_record
from jupyter_training.views import (
    Follower,
    JobProgress,
    TextJobView,
    WidgetJobView,
    html_job_table,
    render_charts,
)

from conftest import processes_of, wait_until


def record_for(workers=2, **spec):
    return pending_record(new_job_id(), JobSpec(workers=workers, **spec), "pass")


def report_line(rank, step, total, **metrics):
    body = {"type": "report", "step": step, "total": total, "metrics": metrics, "rank": rank}
    return records.PREFIX + json.dumps(body)


# -- report records ---------------------------------------------------------------------------


def test_report_records_are_found_in_interleaved_output():
    stream = [
        (0, "epoch 0 starting"),
        (1, "partial print without newline" + report_line(1, 1, 10, loss=0.9)),
        (0, report_line(0, 1, 10, loss=1.5, acc=0.2)),
        (1, "plain line with \x1e inside but no record"),
        (0, records.PREFIX + "{not json"),
    ]
    events = [e for rank, line in stream for e in output_events("job", rank, line)]
    kinds = [(e.kind, e.rank) for e in events]
    assert kinds == [("log", 0), ("log", 1), ("report", 1), ("report", 0), ("log", 1), ("log", 0)]
    assert events[1].data["line"] == "partial print without newline"
    assert events[3].data["metrics"] == {"loss": 1.5, "acc": 0.2}
    assert events[5].data["line"].startswith(records.PREFIX)  # malformed: shown, not lost


def test_report_from_real_workers_reaches_the_stream(settings):
    client = TrainingClient(settings)
    cell = (
        "import jupyter_training as jt\n"
        "for step in range(1, 4):\n"
        "    print('step', step)\n"
        "    jt.report(step=step, total=3, loss=1.0 / step, rank_value=jt.rank())\n"
    )
    record = client.submit(JobSpec(workers=3), cell, {})
    events = list(client.events(record.id))
    reports = [e for e in events if e.kind == "report"]
    assert sorted((e.rank, e.data["step"]) for e in reports) == [
        (r, s) for r in range(3) for s in (1, 2, 3)
    ]
    assert all(e.data["metrics"]["rank_value"] == e.rank for e in reports)
    logs = [e.data["line"] for e in events if e.kind == "log"]
    assert logs.count("step 2") == 3 and not any(records.PREFIX in line for line in logs)


def test_report_rejects_non_numbers():
    from jupyter_training import report

    with pytest.raises(TypeError, match="metric 'name' must be a number"):
        report(step=1, name="resnet")
    with pytest.raises(TypeError, match="step must be a whole number"):
        report(step=1.5)


# -- the view state ----------------------------------------------------------------------------


def scripted_events(job_id, lines=0):
    yield Event("phase", job_id, {"phase": RUNNING, "message": "2 worker(s) started"}, time=100.0)
    yield Event("worker", job_id, {"state": "started"}, rank=0)
    yield Event("worker", job_id, {"state": "started"}, rank=1)
    for step in range(1, 6):
        for rank in (0, 1):
            yield Event(
                "report",
                job_id,
                {"step": step, "total": 5, "metrics": {"loss": 1.0 / step + rank}},
                rank=rank,
            )
    for i in range(lines):
        yield Event("log", job_id, {"line": f"line {i}"}, rank=i % 2)
    yield Event("worker", job_id, {"state": "exited", "exit_code": 0}, rank=0)
    yield Event("worker", job_id, {"state": "exited", "exit_code": 1}, rank=1)
    yield Event("phase", job_id, {"phase": "Failed", "message": "rank 1 exited"}, time=130.0)


def test_progress_state_after_a_scripted_stream():
    record = record_for()
    progress = JobProgress(record, max_lines=100)
    for event in scripted_events(record.id, lines=250):
        progress.apply(event)
    assert progress.phase == "Failed" and progress.elapsed() == 30.0
    assert (progress.ranks[0].phase, progress.ranks[1].phase) == ("Exited", "Failed")
    assert progress.ranks[0].fraction == 1.0 and progress.ranks[1].step == 5
    assert progress.series["loss"][0] == [(float(s), 1.0 / s) for s in range(1, 6)]
    assert progress.series["loss"][1][-1] == (5.0, 1.2)
    assert (progress.total_lines, progress.dropped_lines, len(progress.lines)) == (250, 150, 100)
    assert progress.log_lines(rank=1)[-1] == "[rank 1] line 249"
    assert progress.last_metrics() == {"loss": 0.2}


def test_series_stay_bounded_and_keep_their_shape():
    record = record_for(workers=1)
    progress = JobProgress(record, max_points=100)
    for step in range(10_000):
        progress.apply(Event("report", record.id, {"step": step, "metrics": {"x": step}}, rank=0))
    points = progress.series["x"][0]
    assert len(points) <= 100
    assert points[0] == (0.0, 0.0) and points[-1][0] > 9_000
    assert all(a[0] < b[0] for a, b in itertools.pairwise(points))


def test_widget_view_renders_state_and_throttles_redraws():
    record = record_for()
    view = WidgetJobView(record, fps=10)
    draws = 0
    original = view.draw

    def counting_draw(force=False):
        nonlocal draws
        before = view._drawn_at
        original(force)
        draws += view._drawn_at != before

    view.draw = counting_draw
    start = time.monotonic()
    for event in scripted_events(record.id, lines=20_000):
        view.handle(event)
    elapsed = time.monotonic() - start
    view.draw(force=True)
    assert draws <= elapsed * 10 + 3
    assert "Failed" in view.header.value and record.id in view.header.value
    bars = [bar for _, bar, _ in view.rows.values()]
    assert [b.value for b in bars] == [1.0, 1.0] and bars[0].description == "5/5"
    assert "loss=0.2" in view.rows[0][2].value
    assert "line 19999" in view.log.value and "line 0\n" not in view.log.value
    assert "earlier lines dropped" in view.dropped.value
    view.log_rank.value = 1
    assert "[rank 0]" not in view.log.value
    view.chart_rank.value = 1
    assert "loss (last 1.2)" in view.chart.value
    assert "<polyline" in render_charts(view.progress, 0)


def test_buttons_cancel_and_detach(settings):
    client = TrainingClient(settings)
    record = client.submit(JobSpec(workers=2), "import time\ntime.sleep(600)", {})
    view = WidgetJobView(client.get(record.id))
    follower = Follower(client, record.id, view)
    wait_until(lambda: client.get(record.id).phase == RUNNING)
    threading.Timer(0.3, view.detach_button.click).start()
    follower.run()
    assert follower.detached and client.get(record.id).phase == RUNNING  # still running
    view = WidgetJobView(client.get(record.id))
    follower = Follower(client, record.id, view)
    threading.Timer(0.3, view.cancel_button.click).start()
    follower.run()  # returns once the cancelled job's terminal event arrives
    assert not follower.detached and client.get(record.id).phase == CANCELLED
    wait_until(lambda: processes_of(record.id) == [], timeout=10)


def test_html_job_table_escapes_and_badges(settings):
    record = record_for(name="a-job")
    record.metrics = {"loss": 0.25}
    record.name = "<script>"
    table = html_job_table([record])
    assert "&lt;script&gt;" in table and "<script>" not in table
    assert "loss=0.25" in table and "Pending" in table


# -- results and remote exceptions --------------------------------------------------------------


def test_out_brings_rank_zero_values_home(ip):
    ip.run_cell(
        "import collections\n"
        "class Summary:\n"
        "    def __init__(self, total):\n"
        "        self.total = total\n",
        store_history=True,
    )
    with capture_output() as captured:
        ip.run_cell_magic(
            "train_distributed",
            "-w 2 -o summary,counts --out rank_seen",
            "import jupyter_training as jt\n"
            "summary = Summary(total=jt.world_size() * 10)\n"
            "counts = collections.Counter('abca')\n"
            "rank_seen = jt.rank()\n",
        )
    ns = ip.user_ns
    assert type(ns["summary"]).__name__ == "Summary" and ns["summary"].total == 20
    assert isinstance(ns["summary"], ns["Summary"])
    assert ns["counts"] == {"a": 2, "b": 1, "c": 1}
    assert ns["rank_seen"] == 0
    assert "returned counts, rank_seen, summary from rank 0" in captured.stdout


def test_big_or_missing_results_say_why(ip, jupyter_dirs):
    (jupyter_dirs / "config" / "jupyter_server_config.json").write_text(
        '{"TrainingApp": {"max_result_bytes": 1000}}'
    )
    ip.register_magics(TrainingMagics)
    with capture_output(), pytest.raises(JobResultError) as caught:
        ip.run_cell_magic(
            "train_distributed", "-w 1 -o big,absent,small", "big = b'x' * 5000\nsmall = 1\n"
        )
    message = str(caught.value)
    assert "'big' is 0.0 MB, over the 0.0 MB" in message or "'big' is" in message
    assert "--volume" in message
    assert "the cell did not define 'absent'" in message
    assert ip.user_ns["small"] == 1


def test_remote_exception_type_and_message_are_reraised(ip):
    ip.run_cell("class DataError(Exception):\n    pass\n", store_history=True)
    with capture_output(), pytest.raises(ValueError) as caught:
        ip.run_cell_magic(
            "train_distributed",
            "-w 2",
            "import jupyter_training as jt\n"
            "if jt.rank() == 1:\n"
            "    raise ValueError('bad learning rate 10.0')\n",
        )
    err = caught.value
    assert isinstance(err, JobFailedError) and err.rank == 1
    assert "ValueError: bad learning rate 10.0" in str(err)
    assert "--- remote traceback (rank 1) ---" in str(err)
    with capture_output(), pytest.raises(ip.user_ns["DataError"]):
        ip.run_cell_magic("train_distributed", "-w 1", "raise DataError('corrupt shard 3')")


# -- output floods --------------------------------------------------------------------------------


def _rss_kb(field="VmRSS"):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def test_a_million_lines_stay_bounded(ip):
    cell = (
        "import sys\nout = sys.stdout\nfor i in range(1_000_000):\n    out.write(f'line {i}\\n')\n"
    )
    before = _rss_kb()
    started = time.monotonic()
    with capture_output() as captured:
        ip.run_cell_magic("train_distributed", "-w 1 --progress text", cell)
    took = time.monotonic() - started
    grown_mb = (_rss_kb() - before) / 1024
    printed = captured.stdout.count("\n")
    assert printed < 200 * (took + 2) + 50  # rate-limited, not a million lines
    assert "output lines not shown" in captured.stdout
    assert grown_mb < 150, f"kernel memory grew by {grown_mb:.0f} MB"
    (record,) = ip.magics_manager.registry["TrainingMagics"].client.list()
    assert record.phase == SUCCEEDED


def test_attach_reopens_a_job_after_a_kernel_restart(ip):
    with capture_output():
        ip.run_cell_magic(
            "train_distributed",
            "-w 2 --detach -o answer",
            "import time, jupyter_training as jt\n"
            "time.sleep(1)\n"
            "jt.report(step=1, total=1, score=0.5)\n"
            "answer = 42\n",
        )
    (record,) = ip.magics_manager.registry["TrainingMagics"].client.list()
    ip.reset(new_session=False)  # a restarted kernel: nothing of the job in the namespace
    ip.register_magics(TrainingMagics)
    with capture_output() as captured:
        ip.run_line_magic("train_attach", f"{record.id[:6]} --progress text")
    assert ip.user_ns["answer"] == 42
    assert "Succeeded" in captured.stdout and "score=0.5" in captured.stdout
    with capture_output() as table:
        ip.run_line_magic("train_jobs", "")
    assert "score=0.5" in table.stdout  # last metrics kept in the history


def test_the_readable_record_names_the_failure_and_keeps_only_the_last_lines():
    import dataclasses

    from jupyter_training.views.progress import JobProgress
    from jupyter_training.views.record import summary_html, summary_text

    record = pending_record(new_job_id(), JobSpec(workers=2, name="fit"), "pass")
    progress = JobProgress(record)
    progress.apply(Event("phase", record.id, {"phase": RUNNING}))
    progress.apply(Event("worker", record.id, {"state": "started", "pid": 1}, 0))
    for i in range(50):
        progress.apply(Event("log", record.id, {"line": f"line {i}"}, i % 2))
    progress.apply(
        Event("report", record.id, {"step": 3, "total": 10, "metrics": {"loss": 0.5}}, 0)
    )
    progress.apply(Event("worker", record.id, {"state": "exited", "exit_code": 3}, 1))
    failure = {
        "reason": "rank 1 exited with code 3: ValueError: bad",
        "traceback": "Trace\nValueError: bad",
    }
    final = dataclasses.replace(record, phase="Failed", failure=failure)
    text = summary_text(progress, final)
    lines = text.splitlines()
    assert lines[0].startswith(f"fit ({record.id}): Running · pytorch · 2 workers · local")
    assert "  rank 0: Running · step 3/10 · loss=0.5" in lines
    assert "  rank 1: Failed (exit code 3)" in lines
    assert "failure: rank 1 exited with code 3: ValueError: bad" in lines
    assert "last 20 of 50 output lines:" in lines and lines[-1] == "  [rank 1] line 49"
    assert "line 29" not in text and "[rank 0] line 30" in text
    assert summary_html(progress, final).startswith("<pre") and "&lt;" not in summary_text(
        progress, final
    )


def test_a_widget_view_with_no_page_also_prints_the_text_views_lines():
    """Headless (nobody answered the probe): the same lines the text view prints, from the
    one shared state (each event folded once), the final line included."""
    import dataclasses

    record = record_for()
    plain, echoing = TextJobView(record), WidgetJobView(record, echo=True)
    assert WidgetJobView(record).echo is None
    with capture_output() as expected:
        for event in scripted_events(record.id, lines=30):
            plain.handle(event)
        plain.show_finished(dataclasses.replace(record, phase="Failed"))
    with capture_output() as printed:
        for event in scripted_events(record.id, lines=30):
            echoing.handle(event)
        echoing.show_finished(dataclasses.replace(record, phase="Failed"))
    assert printed.stdout == expected.stdout and "[rank 1] line 29" in printed.stdout
    assert echoing.echo.progress is echoing.progress
    assert echoing.progress.total_lines == 30 and echoing.progress.ranks[0].step == 5
