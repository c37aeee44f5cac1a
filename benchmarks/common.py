"""Helpers shared by the benchmarks: results, interleaving, statistics, processes, servers."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def result(
    name: str,
    value: float,
    unit: str,
    baseline: float | None,
    ratio: float | None,
    target: str,
    ok: bool,
    detail: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One benchmark figure, as run.py prints it and results.json stores it."""
    record: dict[str, Any] = {
        "name": name,
        "value": _round(value),
        "unit": unit,
        "baseline": _round(baseline),
        "ratio": _round(ratio),
        "target": target,
        "ok": bool(ok),
    }
    if detail:
        record["detail"] = {key: _round(item) for key, item in detail.items()}
    return record


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list):
        return [_round(item) for item in value]
    if isinstance(value, dict):
        return {key: _round(item) for key, item in value.items()}
    return value


# -- statistics -------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def interleave(reps: int, variants: Mapping[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run every variant ``reps`` times, alternating them (order rotated each repetition)."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(variants[name]())
    return samples


def paired_ratio(ours: list[float], baseline: list[float]) -> float:
    """Median of the per-repetition ratios ours/baseline (pairs measured side by side)."""
    return median([a / b for a, b in zip(ours, baseline, strict=True)])


# -- isolation and processes -------------------------------------------------------------------


def isolate(root: Path) -> None:
    """Point this process (and its children) at private Jupyter/IPython dirs under ``root``."""
    for name, sub in (
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        path = root / sub
        path.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(path)
    os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
    for name in ("CUDA_VISIBLE_DEVICES", "JPY_SESSION_NAME", "OMP_NUM_THREADS"):
        os.environ.pop(name, None)


#: Where scratch directories go (run.py points it at one directory it removes at the end).
SCRATCH_ROOT: Path | None = None


def scratch(prefix: str) -> Path:
    """A fresh private directory for one benchmark's files."""
    return Path(tempfile.mkdtemp(prefix=f"jt-bench-{prefix}-", dir=SCRATCH_ROOT))


def free_port() -> int:
    """A loopback TCP port that is free right now (a real port, never 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """``VmRSS`` (or ``VmHWM``) of ``pid`` from /proc, in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise KeyError(field)


def kill_group(process: subprocess.Popen[Any]) -> None:
    """Stop a process we started in its own session, and its children."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def training_client(store_dir: Path | None = None) -> Any:
    """A TrainingClient on this process' isolated settings (optionally another store)."""
    from jupyter_training.client import TrainingClient
    from jupyter_training.settings import load_settings

    settings = load_settings()
    if store_dir is not None:
        settings.store_dir = str(store_dir)
    return TrainingClient(settings)


def run_job(
    client: Any,
    cell: str,
    *,
    workers: int,
    on_event: Callable[[Any], None] | None = None,
) -> Any:
    """Submit ``cell`` as the magic does and consume its events until the terminal one."""
    from jupyter_training.spec import JobSpec

    record = client.submit(JobSpec(workers=workers), cell, {})
    last = None
    for event in client.events(record.id):
        if on_event is not None:
            on_event(event)
        last = event
    if last is None or last.data.get("phase") != "Succeeded":
        logs = "".join(
            f"[{e.rank}] {e.data.get('line')}\n" for e in client.logs(record.id) if e.data
        )
        raise RuntimeError(f"benchmark job {record.id} did not succeed: {last}\n{logs[-3000:]}")
    return record


# -- a real jupyter_server ---------------------------------------------------------------------


#: Server extensions installed beside ours in a JupyterLab environment.
OTHER_EXTENSIONS = (
    "jupyterlab",
    "jupyter_lsp",
    "jupyter_server_terminals",
    "notebook",
    "notebook_shim",
)


class JupyterServer:
    """``python -m jupyter_server`` in its own dirs, with token auth, on a free port."""

    def __init__(
        self,
        root: Path,
        *,
        training: bool = True,
        store_dir: Path | None = None,
        others: bool = True,
    ):
        self.root = root
        self.training = training
        self.others = others  # the other installed server extensions (JupyterLab, ...)
        self.store_dir = store_dir or root / "store"
        self.token = "bench-" + os.urandom(8).hex()
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._conn: http.client.HTTPConnection | None = None

    def start(self, timeout: float = 60.0) -> JupyterServer:
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> None:
        env = dict(os.environ)
        for name, sub in (
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("IPYTHONDIR", "ipython"),
        ):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            env[name] = str(self.root / sub)
        extensions = {"jupyter_training": self.training}
        if not self.others:
            extensions.update(dict.fromkeys(OTHER_EXTENSIONS, False))
        config = {
            "ServerApp": {"jpserver_extensions": extensions},
            "TrainingApp": {
                "store_dir": str(self.store_dir),
                "kubeconfig": str(self.root / "no-kubeconfig"),
            },
        }
        (self.root / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
        (self.root / "notebooks").mkdir(exist_ok=True)
        command = [
            PYTHON,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root / 'notebooks'}",
        ]
        log = open(self.root / "server.log", "wb")  # noqa: SIM115 - kept for the server's life
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def wait_ready(self, timeout: float = 60.0) -> JupyterServer:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter_server exited: see {self.root / 'server.log'}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.get("/api/status")[0] == 200:
                    return self
            self._conn = None
            time.sleep(0.1)
        raise RuntimeError(f"jupyter_server did not answer in {timeout} s")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/jupyter-training/api/events"

    def get(self, path: str) -> tuple[int, bytes, float]:
        """GET ``path`` on a kept-alive connection: (status, body, seconds)."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        started = time.perf_counter()
        self._conn.request("GET", path, headers={"Authorization": f"token {self.token}"})
        response = self._conn.getresponse()
        body = response.read()
        return response.status, body, time.perf_counter() - started

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self.process is not None:
            kill_group(self.process)

    def __enter__(self) -> JupyterServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
