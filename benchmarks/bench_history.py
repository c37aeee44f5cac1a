"""history: a job store with 100,000 finished jobs.

The store is created by ``JobStore`` (its own schema) and filled in one transaction through
sqlite directly, with rows shaped by the store's own ``_to_row``. Then, interleaved:

* ``history.list``: ``TrainingClient.list(limit=50)`` (what ``%train_jobs`` and ``jupyter
  training list`` call) vs the bare SQL query ``SELECT * ... ORDER BY created DESC LIMIT 50``
  on the same file;
* ``history.rest``: ``GET /jupyter-training/api/jobs`` against a real jupyter_server with the
  extension on this store (token auth, kept-alive connection) vs ``GET /api/status`` of the
  same server.
"""

from __future__ import annotations

import json
import sqlite3
import time

from common import (
    JupyterServer,
    interleave,
    median,
    paired_ratio,
    percentile,
    result,
    scratch,
    training_client,
)

JOBS = 100_000
CELL = """\
import torch.distributed as dist
dist.init_process_group("gloo")
model = make_model()
for epoch in range(10):
    train_one_epoch(model, loader, epoch)
"""


def fill(store_path, jobs: int) -> None:
    """Insert ``jobs`` finished jobs (a tenth of them failed) in one transaction."""
    from jupyter_training.spec import JobSpec
    from jupyter_training.store import JobStore, _to_row, pending_record

    JobStore(store_path)  # creates the schema
    spec = JobSpec(workers=4)
    template = _to_row(pending_record("0" * 12, spec, CELL, notebook="train.ipynb", workdir="/"))
    columns = list(template)
    failure = json.dumps(
        {
            "reason": "rank 1 exited with code 1: ValueError: bad shard",
            "rank": 1,
            "exit_code": 1,
            "log_tail": ["Traceback (most recent call last):", "ValueError: bad shard"],
        }
    )
    start = time.time() - jobs * 60

    varying = ["id", "name", "phase", "message", "failure", "created", "started", "finished"]
    fixed = [column for column in columns if column not in varying]
    columns = varying + fixed
    template["metrics"] = json.dumps({"loss": 0.1, "accuracy": 0.9})
    constant = tuple(template[column] for column in fixed)

    def rows():
        for n in range(jobs):
            job_id, failed, created = f"{n:012x}", n % 10 == 0, start + n * 60
            yield (
                job_id,
                f"job-{job_id}",
                "Failed" if failed else "Succeeded",
                "rank 1 exited with code 1" if failed else "all workers exited",
                failure if failed else "null",
                created,
                created + 1,
                created + 30,
                *constant,
            )

    db = sqlite3.connect(store_path, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.executemany(
            f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            rows(),
        )
        db.execute("COMMIT")
    finally:
        db.close()


def run(quick: bool) -> list[dict]:
    work = scratch("history")
    store_dir = work / "store"
    store_dir.mkdir()
    started = time.perf_counter()
    fill(store_dir / "jobs.db", JOBS)
    fill_seconds = time.perf_counter() - started
    client = training_client(store_dir)
    reps = 100 if quick else 500

    raw = sqlite3.connect(store_dir / "jobs.db")

    def listing() -> float:
        started = time.perf_counter()
        records = client.list(limit=50)
        elapsed = time.perf_counter() - started
        assert len(records) == 50 and records[0].id == f"{JOBS - 1:012x}"
        return elapsed

    def bare_query() -> float:
        started = time.perf_counter()
        raw.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT 50").fetchall()
        return time.perf_counter() - started

    listing()
    lists = interleave(reps, {"ours": listing, "sql": bare_query})
    raw.close()
    ours_ms = [x * 1000 for x in lists["ours"]]
    sql_ms = [x * 1000 for x in lists["sql"]]
    results = [
        result(
            "history.list",
            median(ours_ms),
            "ms",
            median(sql_ms),
            paired_ratio(ours_ms, sql_ms),
            "<= 20 ms",
            median(ours_ms) <= 20,
            {
                "vs": "bare SQL query",
                "jobs": JOBS,
                "p95_ms": percentile(ours_ms, 95),
                "reps": reps,
                "fill_seconds": fill_seconds,
            },
        )
    ]

    with JupyterServer(work / "server", store_dir=store_dir, others=False) as server:

        def rest() -> float:
            status, body, elapsed = server.get("/jupyter-training/api/jobs")
            assert status == 200 and len(json.loads(body)["jobs"]) == 50, status
            return elapsed

        def server_status() -> float:
            status, _, elapsed = server.get("/api/status")
            assert status == 200, status
            return elapsed

        for _ in range(10):
            rest(), server_status()
        calls = interleave(reps, {"ours": rest, "status": server_status})
    rest_ms = [x * 1000 for x in calls["ours"]]
    status_ms = [x * 1000 for x in calls["status"]]
    p95 = percentile(rest_ms, 95)
    results.append(
        result(
            "history.rest.p95",
            p95,
            "ms",
            percentile(status_ms, 95),
            p95 / percentile(status_ms, 95),
            "p95 <= 50 ms",
            p95 <= 50,
            {
                "vs": "GET /api/status",
                "jobs": JOBS,
                "p50_ms": median(rest_ms),
                "status_p50_ms": median(status_ms),
                "requests": reps,
            },
        )
    )
    return results
