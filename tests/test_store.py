import multiprocessing
import stat
import time

import pytest

from jupyter_training.events import CANCELLED, FAILED, RUNNING, SUCCEEDED
from jupyter_training.spec import JobSpec
from jupyter_training.store import JobNotFound, JobStore, new_job_id, pending_record


def make(store, **spec):
    record = pending_record(new_job_id(), JobSpec(**spec), "print(1)")
    return store.add(record)


def test_records_survive_a_new_store_object(tmp_path):
    first = JobStore(tmp_path / "jobs.db")
    record = make(first, workers=3, name="keep-me")
    again = JobStore(tmp_path / "jobs.db").get(record.id)
    assert (again.name, again.workers, again.cell, again.spec.workers) == (
        "keep-me",
        3,
        "print(1)",
        3,
    )


def test_store_file_is_private(tmp_path):
    store = JobStore(tmp_path / "deep" / "jobs.db")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


def test_list_is_newest_first_and_filters(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    ids = []
    for _ in range(5):
        ids.append(make(store).id)
        time.sleep(0.002)
    store.set_phase(ids[1], FAILED)
    assert [r.id for r in store.list()] == ids[::-1]
    assert [r.id for r in store.list(limit=2, offset=1)] == ids[::-1][1:3]
    assert [r.id for r in store.list(phase=FAILED)] == [ids[1]]


def test_prefix_lookup_and_clear_errors(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    record = make(store)
    assert store.get(record.id[:6]).id == record.id
    with pytest.raises(JobNotFound, match="matches no job"):
        store.get("ffffffffffff0")
    with pytest.raises(JobNotFound, match="matches no job"):
        store.get("../../etc/passwd")


def test_finished_jobs_keep_their_phase(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    record = make(store)
    assert store.set_phase(record.id, RUNNING)
    assert store.set_phase(record.id, SUCCEEDED, finished=time.time())
    assert not store.set_phase(record.id, CANCELLED)
    assert store.get(record.id).phase == SUCCEEDED


def _add_many(path, count):
    store = JobStore(path)
    for _ in range(count):
        make(store)


def test_concurrent_writers_record_every_job(tmp_path):
    path = tmp_path / "jobs.db"
    JobStore(path)
    workers = [multiprocessing.Process(target=_add_many, args=(path, 25)) for _ in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    assert len(JobStore(path).list(limit=1000)) == 100


def _open_when_released(path, gate):
    gate.wait(30)
    JobStore(path)


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    # Two kernels (or a kernel and the server) creating the same new store used to race on
    # the schema migration and one failed with "duplicate column name".
    for attempt in range(6):
        path = tmp_path / f"jobs{attempt}.db"
        gate = multiprocessing.Event()
        openers = [
            multiprocessing.Process(target=_open_when_released, args=(path, gate)) for _ in range(4)
        ]
        for process in openers:
            process.start()
        gate.set()
        for process in openers:
            process.join(60)
        assert [process.exitcode for process in openers] == [0, 0, 0, 0]
    assert JobStore(path).list() == []
