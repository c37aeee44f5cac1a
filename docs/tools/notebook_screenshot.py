"""Screenshot a cell of a notebook run in a real JupyterLab page (shared by the docs tools).

:func:`screenshot_notebook` writes the given cells to a notebook, starts JupyterLab on it
with isolated config, data and runtime dirs (so the job store and settings are throwaway),
opens it in Debian's chromium through Playwright, runs all cells, waits until the cell to
capture shows what it is told to wait for, and screenshots that cell (or a part of it).
Needs the ``docs`` extra and ``apt-get install chromium``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import nbformat
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "screenshot"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_notebook(path: Path, cells: Sequence[str]) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)


def isolated_env(base: Path) -> dict[str, str]:
    """The environment with every Jupyter/IPython/XDG dir under ``base`` (news fetching off)."""
    env = dict(os.environ)
    for name in (
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_RUNTIME_DIR",
        "IPYTHONDIR",
        "JUPYTERLAB_SETTINGS_DIR",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
    ):
        path = base / name.lower()
        path.mkdir()
        env[name] = str(path)
    news = base / "jupyterlab_settings_dir" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env["JUPYTERLAB_SETTINGS_DIR"] = str(base / "jupyterlab_settings_dir")
    return env


def wait_for_server(server: subprocess.Popen, port: int, timeout_s: float = 120) -> None:
    """Poll the server's REST API until it answers (a loaded machine can take a while)."""
    url = f"http://127.0.0.1:{port}/api/status?token={TOKEN}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"jupyterlab exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"jupyterlab did not answer on port {port} within {timeout_s:.0f}s")


def screenshot_notebook(
    cells: Sequence[str],
    output: Path,
    wait_for: str,
    *,
    cell: int = -1,
    part: str | None = None,
    timeout_s: float = 60,
    settle_s: float = 1.5,
    viewport: tuple[int, int] = (1280, 1500),
) -> Path:
    """Run ``cells`` in JupyterLab and screenshot one cell once it shows ``wait_for``.

    ``wait_for`` is a Playwright selector looked up inside the captured cell (for instance
    ``".jp-OutputArea-output >> text=Succeeded"``); it is waited on for ``timeout_s``
    seconds after "Run All", then ``settle_s`` more for the final redraw. ``cell`` is the
    index of the cell to capture (negative counts from the end) and ``part`` an optional
    selector inside it to crop to (say ``".jp-Cell-outputWrapper"``); by default the whole
    cell, input and output, is captured. On a timeout the whole page is saved as
    ``<tmp>/<output stem>-timeout.png`` for a look.
    """
    output = Path(output)
    index = cell if cell >= 0 else len(cells) + cell
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "work").mkdir()
        write_notebook(base / "work" / "demo.ipynb", cells)
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                f"--port={port}",
                f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={base / 'work'}",
            ],
            env=isolated_env(base),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_server(server, port)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                width, height = viewport
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"http://127.0.0.1:{port}/lab/tree/demo.ipynb?token={TOKEN}")
                page.wait_for_selector(".jp-Notebook", timeout=60_000)
                page.wait_for_selector("text=Python 3 (ipykernel) | Idle", timeout=60_000)
                time.sleep(1)
                page.get_by_role("menuitem", name="Run").click()
                page.locator("li[data-command='runmenu:run-all']").click()
                target = page.locator(".jp-Notebook .jp-Cell").nth(index)
                try:
                    target.locator(wait_for).first.wait_for(timeout=timeout_s * 1000)
                except Exception:
                    debug = Path(tempfile.gettempdir()) / f"{output.stem}-timeout.png"
                    page.screenshot(path=str(debug))
                    print(f"timed out waiting for {wait_for!r}; the page: {debug}")
                    raise
                time.sleep(settle_s)  # the final redraw
                shot = target.locator(part).first if part else target
                output.parent.mkdir(parents=True, exist_ok=True)
                shot.screenshot(path=str(output))
                browser.close()
        finally:
            server.terminate()
            server.wait(30)
    return output
