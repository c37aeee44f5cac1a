"""The REST API fuzzed from its OpenAPI document (schemathesis): no 5xx, ever."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
OPENAPI = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"


@pytest.fixture
def server(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        (tmp_path / name).mkdir()
        env[name] = str(tmp_path / name)
    (tmp_path / "root").mkdir()
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--IdentityProvider.token=fuzz",
            f"--ServerApp.root_dir={tmp_path}/root",
            f"--TrainingApp.store_dir={tmp_path}/store",
            f"--TrainingApp.kubeconfig={tmp_path}/none",
            "--TrainingApp.max_workers=2",
            "--TrainingApp.max_gpus_per_worker=0",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    time.sleep(1)
    try:
        yield f"http://127.0.0.1:{port}", tmp_path / "server.log"
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def test_no_server_errors_from_fuzzed_requests(server):
    if SCHEMATHESIS is None:
        pytest.fail("schemathesis is missing: it is part of the [test] extra")
    url, log = server
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            str(OPENAPI),
            "--url",
            f"{url}/jupyter-training/api",
            "-H",
            "Authorization: token fuzz",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--exclude-path",
            "/events",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=log.parent,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Uncaught exception" not in log.read_text()
