"""Shared fixtures: every test gets its own Jupyter dirs, store and job files."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_training.settings import load_settings


@pytest.fixture(autouse=True)
def jupyter_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolated Jupyter/IPython dirs; the job store lives in ``<tmp>/data/training``."""
    for name, sub in (
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        path = tmp_path / sub
        path.mkdir()
        monkeypatch.setenv(name, str(path))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    return tmp_path


@pytest.fixture
def settings(jupyter_dirs: Path):
    return load_settings()


@pytest.fixture
def ip(jupyter_dirs: Path) -> Iterator[object]:
    """An IPython shell with fresh training magics (bound to this test's store)."""
    from IPython.testing.globalipapp import get_ipython

    from jupyter_training.magics import TrainingMagics

    shell = get_ipython()
    shell.register_magics(TrainingMagics)
    shell.reset(new_session=False)
    yield shell
    shell.reset(new_session=False)


def processes_of(job_id: str) -> list[int]:
    """Live pids (zombies excluded) whose command line, environment or output names ``job_id``.

    A warm worker's command line and initial environment are its warm process's; its
    stdout (the job's rank log) names the job.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        with contextlib.suppress(OSError):
            blob += os.readlink(entry / "fd" / "1").encode()
        if state != "Z" and job_id.encode() in blob:
            found.append(int(entry.name))
    return found


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture(params=["warm", "cold"])
def worker_start(request: pytest.FixtureRequest, settings) -> str:
    """Run a test twice: workers forked from a ready warm process, then new interpreters."""
    settings.warm_workers = request.param == "warm"
    if settings.warm_workers:
        from jupyter_training.backends.local.warm import WARM

        log = Path(settings.store_dir) / "warm.log"
        for framework in ("pytorch", "xgboost"):
            WARM.warm_up(framework, idle=600, log=log)
    return request.param
