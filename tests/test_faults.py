"""Faults and load on the local backend: nothing leaks, nothing is lost."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_training.client import TrainingClient
from jupyter_training.events import CANCELLED, FAILED, RUNNING, SUCCEEDED
from jupyter_training.settings import load_settings
from jupyter_training.spec import JobSpec
from jupyter_training.store import pending_record

from conftest import processes_of, wait_until

#: Every fault runs with warm workers (the default) and again with cold ones.
pytestmark = pytest.mark.usefixtures("worker_start")


def _listening_sockets() -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            count += sum(1 for row in list(rows)[1:] if row.split()[3] == "0A")
    return count


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_two_hundred_jobs_leak_nothing(settings, tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # every supervisor and worker's temp dir
    client = TrainingClient(settings)
    before = (_open_fds(), _listening_sockets())
    phases = []
    for i in range(200):
        if i % 10 == 9:  # a cancel
            record = client.submit(JobSpec(workers=2), "import time\ntime.sleep(600)", {})
            wait_until(lambda r=record: client.get(r.id).phase == RUNNING, timeout=30)
            phases.append(client.cancel(record.id).phase)
        else:
            cell = "raise ValueError('x')" if i % 10 == 4 else "pass"
            record = client.submit(JobSpec(workers=2), cell, {})
            for _ in client.events(record.id):
                pass
            phases.append(client.get(record.id).phase)
    assert phases.count(SUCCEEDED) == 160
    assert phases.count(FAILED) == 20
    assert phases.count(CANCELLED) == 20
    ids = [r.id for r in client.list(limit=300)]
    assert len(ids) == len(set(ids)) == 200
    assert not any(processes_of(job_id) for job_id in ids[:20])
    after = (_open_fds(), _listening_sockets())
    assert after[0] <= before[0] + 2, "file descriptors leaked"
    assert after[1] <= before[1], "listening sockets leaked"
    assert list(scratch.iterdir()) == [], "temp files leaked"
    expected = {"payload.bin", "events.jsonl", "supervisor.log", "rank-0.log", "rank-1.log"}
    expected.add("stop.json")  # how a cancel asked the job to end
    for job_dir in Path(settings.store_dir, "jobs").iterdir():
        assert {p.name for p in job_dir.iterdir()} <= expected, job_dir


def _submit_five(store_dir: str, results) -> None:
    settings = load_settings()
    settings.store_dir = store_dir
    client = TrainingClient(settings)
    for _ in range(5):
        results.put(client.submit(JobSpec(workers=1), "pass", {}).id)


def test_concurrent_submissions_from_four_processes(settings):
    results = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=_submit_five, args=(settings.store_dir, results))
        for _ in range(4)
    ]
    for process in workers:
        process.start()
    submitted = [results.get(timeout=120) for _ in range(20)]
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    client = TrainingClient(settings)
    records = client.list(limit=100)
    assert sorted(r.id for r in records) == sorted(submitted)  # each exactly once
    for job_id in submitted:
        for _ in client.events(job_id):
            pass
    assert {client.get(job_id).phase for job_id in submitted} == {SUCCEEDED}
    assert Path(settings.store_dir, "jobs.db").exists()


def test_store_survives_a_sigkill_during_writes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from jupyter_training.store import JobStore

    path = tmp_path / "jobs.db"
    JobStore(path)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
from jupyter_training.spec import JobSpec
from jupyter_training.store import JobStore, new_job_id, pending_record
store = JobStore({str(path)!r})
while True:
    record = store.add(pending_record(new_job_id(), JobSpec(), "x" * 10000))
    store.set_phase(record.id, "Running", message="m" * 1000)
""",
        ]
    )
    time.sleep(2.0)
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    store = JobStore(path)
    import sqlite3

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    records = store.list(limit=100_000)
    assert records, "the writer recorded nothing before it was killed"
    assert {r.phase for r in records} <= {"Pending", "Running"}
    store.add(pending_record("feedbeef0001", JobSpec(), "after"))
    assert store.get("feedbeef0001").cell == "after"


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int) -> Iterator[Path]:
    """A fresh memory cgroup (v2 or v1) with a hard limit; yields its ``cgroup.procs``."""
    candidates = [
        (Path("/sys/fs/cgroup"), "memory.max"),  # cgroup v2 at the usual place
        (Path("/sys/fs/cgroup/unified"), "memory.max"),  # hybrid: v2 beside v1
        (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),  # cgroup v1
    ]
    for root, limit_file in candidates:
        controllers = root / "cgroup.controllers"
        if limit_file == "memory.max" and (
            not controllers.exists() or "memory" not in controllers.read_text().split()
        ):
            continue
        group = root / f"jupyter-training-test-{uuid.uuid4().hex[:8]}"
        try:
            group.mkdir()
            (group / limit_file).write_text(str(limit_bytes))
            # no swapping out of the limit: the allocation must meet the OOM killer
            for swap_file, value in (("memory.swap.max", "0"), ("memory.memsw.limit_in_bytes", "")):
                if (group / swap_file).exists():
                    (group / swap_file).write_text(value or str(limit_bytes))
        except OSError:
            with contextlib.suppress(OSError):
                group.rmdir()
            continue
        try:
            yield group / "cgroup.procs"
        finally:
            wait_until(lambda g=group: not (g / "cgroup.procs").read_text().strip(), timeout=10)
            group.rmdir()
        return
    pytest.skip("this machine lets no test create a memory cgroup to stage an OOM kill in")


def test_oom_killed_worker_is_named_and_the_others_stopped(settings):
    """A real OOM kill: rank 1 joins a 256 MiB memory cgroup, then allocates 2 GiB."""
    cell = """
    import os, time, jupyter_training as jt
    if jt.rank() == 1:
        with open(os.environ["TEST_CGROUP_PROCS"], "w") as procs:
            procs.write(str(os.getpid()))
        hog = bytearray(2 * 1024**3)
    time.sleep(600)
    """
    client = TrainingClient(settings)
    with memory_cgroup(256 * 1024**2) as procs:
        spec = JobSpec(workers=2, env={"TEST_CGROUP_PROCS": str(procs)})
        record = client.submit(spec, textwrap.dedent(cell), {})
        for _ in client.events(record.id):
            pass
        record = client.get(record.id)
    assert record.phase == FAILED
    failure = record.failure
    assert (failure["rank"], failure["signal"], failure["oom_killed"]) == (1, "SIGKILL", True)
    assert record.message == (
        "rank 1 was killed by SIGKILL: out of memory (the kernel's OOM killer ran as it died)"
    )
    assert processes_of(record.id) == []  # rank 0 was stopped
