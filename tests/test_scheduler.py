"""Notebooks run by jupyter-scheduler: its real server extension and default executor.

A job is created through the scheduler's REST API in a real jupyter_server that also
runs ours; the scheduler copies the notebook to its staging area, injects the
parameters and executes it in a spawned process with its own kernel. The training jobs
that kernel launches are in our history (and the list the sidebar reads) tagged with the
scheduler's job id, the output notebook holds their record and log, and a failing
training job fails the scheduled run.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import nbformat
import pytest

from jupyter_training.scheduled import SCHEDULER_TAG
from jupyter_training.settings import load_settings

pytest.importorskip("jupyter_scheduler")
pytest_plugins = ["pytest_jupyter.jupyter_server"]

TRAIN = (
    "%%train_distributed --workers 2 --name nightly\n"
    "import jupyter_training as jt\n"
    "for step in range(epochs):\n"
    "    jt.report(step=step + 1, total=epochs, loss=lr / (step + 1))\n"
    "print(f'lr {lr} on rank {jt.rank()}')\n"
    "if fail and jt.rank() == 1:\n"
    "    raise RuntimeError('scheduled failure on rank 1')\n"
)


@pytest.fixture
def jp_server_config(jp_environ, tmp_path):
    # The executor's kernel inherits this environment, so its store is load_settings()'s.
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_training": True, "jupyter_scheduler": True}},
        "TrainingApp": {
            "store_dir": load_settings().store_dir,
            "kubeconfig": str(tmp_path / "none"),
        },
    }


def write_notebook(path: Path) -> None:
    cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_training"),
        nbformat.v4.new_code_cell(
            "lr = 0.1\nepochs = 2\nfail = False", metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell(TRAIN),
        nbformat.v4.new_code_cell("print('after the training cell')"),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, path)


async def call(jp_fetch, method: str, *path: str, body: dict | None = None, **params):
    kwargs: dict = {"method": method}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    if params:
        kwargs["params"] = params
    response = await jp_fetch(*path, **kwargs)
    return json.loads(response.body) if response.body else None


async def run_scheduled(jp_fetch, name: str, parameters: dict[str, str]) -> dict:
    """Create a scheduler job for train.ipynb and wait until it has completed or failed (a
    new job reads STOPPED, the table's default, until its executor process starts)."""
    created = await call(
        jp_fetch,
        "POST",
        "scheduler",
        "jobs",
        body={
            "input_uri": "train.ipynb",
            "runtime_environment_name": "python3",
            "name": name,
            "output_formats": ["ipynb"],
            "parameters": parameters,
        },
    )
    job_id = created["job_id"]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = await call(jp_fetch, "GET", "scheduler", "jobs", job_id)
        if job["status"] in ("COMPLETED", "FAILED"):
            return job
        await asyncio.sleep(0.5)
    raise AssertionError(f"scheduled job {job_id} still {job['status']}")


async def training_jobs(jp_fetch, scheduler_job_id: str) -> list[dict]:
    listed = await call(jp_fetch, "GET", "jupyter-training", "api", "jobs", limit="100")
    return [j for j in listed["jobs"] if j["tags"].get(SCHEDULER_TAG) == scheduler_job_id]


async def test_a_scheduled_run_launches_tagged_jobs_and_fails_with_them(jp_fetch, jp_root_dir):
    write_notebook(jp_root_dir / "train.ipynb")

    ran = await run_scheduled(jp_fetch, "nightly-ok", {"lr": "0.01"})
    assert ran["status"] == "COMPLETED", ran.get("status_message")
    (job,) = await training_jobs(jp_fetch, ran["job_id"])
    assert job["name"] == "nightly" and job["phase"] == "Succeeded"
    assert job["params"]["lr"] == 0.01 and job["params"]["epochs"] == 2  # injected by it
    staging = Path(load_settings().store_dir).parent / "scheduler_staging_area"
    (output,) = [p for p in (staging / ran["job_id"]).glob("*.ipynb") if p.name != "train.ipynb"]
    executed = nbformat.read(output, as_version=4)
    training = next(c for c in executed.cells if c.source.startswith("%%train_distributed"))
    records = [o["data"]["text/plain"] for o in training.outputs if "data" in o]
    assert any(re.match(r"nightly \(\w{12}\): Succeeded · pytorch · 2 workers", r) for r in records)
    printed = "".join(o.get("text", "") for o in training.outputs)
    assert "[rank 1] lr 0.01 on rank 1" in printed  # headless: the log is in the output too

    failed = await run_scheduled(jp_fetch, "nightly-fails", {"fail": "True"})
    assert failed["status"] == "FAILED"
    assert "scheduled failure on rank 1" in failed["status_message"]
    (job,) = await training_jobs(jp_fetch, failed["job_id"])
    assert job["phase"] == "Failed" and job["failure"]["rank"] == 1
    assert failed["job_id"] != ran["job_id"]


def test_the_scheduler_job_id_comes_from_the_staging_layout_or_the_variable(tmp_path, monkeypatch):
    from jupyter_training.scheduled import SCHEDULER_ENV, scheduler_job_id, scheduler_tags

    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    job_id = "289dd86c-b6c5-4e43-b396-5132206d60ca"
    staged = tmp_path / "scheduler_staging_area" / job_id
    assert scheduler_job_id(staged) == job_id
    assert scheduler_tags(staged) == {SCHEDULER_TAG: job_id}
    assert scheduler_job_id(tmp_path / "elsewhere" / job_id) is None  # not a staging area
    assert scheduler_job_id(tmp_path / "scheduler_staging_area" / "notes") is None
    assert scheduler_tags(tmp_path) == {}
    monkeypatch.setenv(SCHEDULER_ENV, "run-42")  # a custom executor names its job
    assert scheduler_job_id(tmp_path) == "run-42"
