"""tracking: what recording every run costs, and how fast runs are listed and compared.

* ``tracking.report_overhead``: inside a real local job (its output read and recorded by a
  follower, as in the notebook), a loop of ~100 us iterations, in interleaved blocks with and
  without ``report(step=i, loss=...)`` on every iteration: 10,000 reports a second. The
  ratio is the paired median of with / without; the target is <= 1.03.
* ``tracking.runs``: ``tracking.runs()`` (a pandas DataFrame) over a store of 10,000 finished
  jobs with params and final metrics, vs the bare SQL query fetching the same columns. The
  figure is the median of repeated calls (a notebook lists again and again; decoded params
  are remembered); the first call, which decodes every row, is in ``first_call_ms``.
* ``tracking.compare``: ``compare()`` + ``compare_html()`` (what ``%train_compare`` shows) of
  10 runs with 100,000 points each, recorded through ``RunRecorder``, vs reading those runs'
  full histories (what charting from the raw points would have to do).
"""

from __future__ import annotations

import json
import sqlite3
import time

from common import interleave, median, paired_ratio, result, run_job, scratch, training_client

OVERHEAD_CELL = """
import time, json
import jupyter_training as jt

def work(n):
    total = 0
    for k in range(n):
        total += k * k
    return total

def block(n, report):
    started = time.perf_counter()
    for i in range(ITERATIONS):
        work(n)
        if report:
            jt.report(step=i, loss=1.0 / (i + 1))
    return time.perf_counter() - started

n = 10
while True:  # calibrate: one iteration of work takes about 100 us (10,000 reports a second)
    took = block(n, False) / ITERATIONS
    if took >= 100e-6:
        break
    n = int(n * 100e-6 / max(took, 1e-7)) + 1
ratios, plain, reporting = [], [], []
for _ in range(BLOCKS):
    a = block(n, False)
    b = block(n, True)
    plain.append(a)
    reporting.append(b)
    ratios.append(b / a)
print("RESULT " + json.dumps({"ratios": ratios, "plain": plain, "reporting": reporting, "n": n}))
"""


def report_overhead(quick: bool) -> dict:
    client = training_client(scratch("tracking-overhead") / "store")
    blocks, iterations = (6, 2000) if quick else (30, 5000)
    cell = OVERHEAD_CELL.replace("ITERATIONS", str(iterations)).replace("BLOCKS", str(blocks))
    lines = []

    from jupyter_training.tracking.recorder import RunRecorder

    holder = {}

    def on_event(event):
        if "recorder" not in holder:
            holder["recorder"] = RunRecorder(client.store, event.job_id)
        holder["recorder"].feed(event)
        if event.kind == "log" and event.data.get("line", "").startswith("RESULT "):
            lines.append(event.data["line"][7:])

    record = run_job(client, cell, workers=1, on_event=on_event)
    holder["recorder"].close(complete=True)
    data = json.loads(lines[-1])
    stored = client.store.metric_names(record.id)["loss"][0]
    ratio = median(data["ratios"])
    per_iteration_us = median(data["plain"]) / iterations * 1e6
    return result(
        "tracking.report_overhead",
        ratio,
        "x",
        1.0,
        ratio,
        "<= 1.03 (10,000 reports/s)",
        ratio <= 1.03,
        {
            "vs": "the same loop without report()",
            "iteration_us": per_iteration_us,
            "reports_per_second": 1e6 / per_iteration_us,
            "report_cost_us": (median(data["reporting"]) - median(data["plain"]))
            / iterations
            * 1e6,
            "blocks": blocks,
            "iterations_per_block": iterations,
            "points_stored": stored,
        },
    )


def fill_runs(store_path, jobs: int) -> None:
    """``jobs`` finished jobs, each with 6 params and 3 final metrics, in one transaction."""
    from jupyter_training.spec import JobSpec
    from jupyter_training.store import JobStore, _to_row, pending_record

    JobStore(store_path)
    template = _to_row(pending_record("0" * 12, JobSpec(workers=4), "train()", notebook="t.ipynb"))
    columns = list(template)
    varying = ["id", "name", "phase", "created", "started", "finished", "params", "metrics"]
    fixed = [c for c in columns if c not in varying]
    constant = tuple(template[c] for c in fixed)
    start = time.time() - jobs * 60

    def rows():
        for n in range(jobs):
            params = {
                "lr": 10 ** -(1 + n % 4),
                "batch": 32 * (1 + n % 3),
                "layers": [64, 64],
                "framework": "pytorch",
                "workers": 4,
                "opt": "adam" if n % 2 else "sgd",
            }
            metrics = {"loss": 1 / (n + 1), "accuracy": n / jobs, "val_loss": 2 / (n + 1)}
            created = start + n * 60
            yield (
                f"{n:012x}",
                f"run-{n}",
                "Succeeded",
                created,
                created + 1,
                created + 30,
                json.dumps(params),
                json.dumps(metrics),
                *constant,
            )

    db = sqlite3.connect(store_path, isolation_level=None)
    try:
        db.execute("BEGIN")
        names = varying + fixed
        db.executemany(
            f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", rows()
        )
        db.execute("UPDATE jobs SET history_done = 1")
        db.execute("COMMIT")
    finally:
        db.close()


def runs_table(quick: bool) -> dict:
    from jupyter_training import tracking
    from jupyter_training.store import RUN_COLUMNS, JobStore

    jobs = 10_000
    store_dir = scratch("tracking-runs") / "store"
    store_dir.mkdir()
    fill_runs(store_dir / "jobs.db", jobs)
    store = JobStore(store_dir / "jobs.db")
    raw = sqlite3.connect(store.path)
    query = f"SELECT {', '.join(RUN_COLUMNS)} FROM jobs ORDER BY created DESC"

    def ours() -> float:
        started = time.perf_counter()
        frame = tracking.runs(store=store)
        elapsed = time.perf_counter() - started
        assert len(frame) == jobs and "params.lr" in frame.columns
        return elapsed

    def bare() -> float:
        started = time.perf_counter()
        raw.execute(query).fetchall()
        return time.perf_counter() - started

    import pandas  # noqa: F401 - imported once per kernel; not what is measured

    first_ms = ours() * 1000  # decodes every row's params, metrics and tags
    times = interleave(5 if quick else 30, {"ours": ours, "sql": bare})
    raw.close()
    ms, sql_ms = [t * 1000 for t in times["ours"]], [t * 1000 for t in times["sql"]]
    return result(
        "tracking.runs",
        median(ms),
        "ms",
        median(sql_ms),
        paired_ratio(ms, sql_ms),
        "<= 100 ms",
        median(ms) <= 100,
        {
            "vs": "bare SQL query of the same columns",
            "jobs": jobs,
            "params": 6,
            "metrics": 3,
            "first_call_ms": first_ms,
        },
    )


def compare_runs(quick: bool) -> dict:
    from jupyter_training.events import Event
    from jupyter_training.spec import JobSpec
    from jupyter_training.store import JobStore, pending_record
    from jupyter_training.tracking.compare import compare
    from jupyter_training.tracking.recorder import RunRecorder
    from jupyter_training.views.compare import compare_html

    runs, points = (10, 10_000) if quick else (10, 100_000)
    store_dir = scratch("tracking-compare") / "store"
    store = JobStore(store_dir / "jobs.db")
    ids = []
    started = time.perf_counter()
    for n in range(runs):
        job_id = f"{n:012x}"
        record = pending_record(job_id, JobSpec(workers=1), "train()")
        record.params = {"lr": 0.001 * (n + 1), "batch": 64}
        store.add(record)
        recorder = RunRecorder(store, job_id)
        lr = 0.001 * (n + 1)
        for i in range(points):
            data = {"step": i, "metrics": {"loss": 1 / (1 + lr * i)}, "seq": i}
            recorder.feed(Event("report", job_id, data, 0, 1e9 + i))
        recorder.close(complete=True)
        store.update(job_id, phase="Succeeded")
        ids.append(job_id)
    fill_seconds = time.perf_counter() - started

    def ours() -> float:
        started = time.perf_counter()
        comparison = compare(store, ids)
        page = compare_html(comparison)
        elapsed = time.perf_counter() - started
        assert comparison.best == ids[-1] and page.count("<polyline") == runs
        return elapsed

    def raw_history() -> float:
        started = time.perf_counter()
        for job_id in ids:
            assert len(store.history(job_id, "loss")) == points
        return time.perf_counter() - started

    ours()
    times = interleave(3 if quick else 10, {"ours": ours, "raw": raw_history})
    ms, raw_ms = [t * 1000 for t in times["ours"]], [t * 1000 for t in times["raw"]]
    return result(
        "tracking.compare",
        median(ms),
        "ms",
        median(raw_ms),
        paired_ratio(ms, raw_ms),
        "<= 500 ms (10 runs x 100,000 points)",
        median(ms) <= 500,
        {
            "vs": "reading the runs' full histories",
            "runs": runs,
            "points_per_run": points,
            "record_points_per_second": runs * points / fill_seconds,
        },
    )


def run(quick: bool) -> list[dict]:
    return [report_overhead(quick), runs_table(quick), compare_runs(quick)]
