"""Take docs/images/job-view.png: the live job view in a real JupyterLab page.

Runs a small DDP notebook in JupyterLab (isolated config, data and runtime
dirs), drives it with Debian's chromium through Playwright, and captures the
notebook once the job has succeeded. Needs the ``docs`` extra and
``apt-get install chromium``::

    python docs/tools/screenshot_job_view.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "docs" / "images" / "job-view.png"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
TRAINING_CELL = '''%%train_distributed --framework pytorch --workers 2 --name ddp-demo --out model
import time
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
import jupyter_training as jt

dist.init_process_group("gloo")
model = DDP(make_model())
x, y = make_data(jt.rank())
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
for step in range(1, 41):
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    jt.report(step=step, total=40, loss=loss.item())
    if step % 10 == 0:
        print(f"step {step} loss {loss.item():.4f}")
    time.sleep(0.1)
model = model.module
'''
SETUP_CELL = '''import torch

def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

def make_data(rank, n=256):
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(n, 3, generator=g)
    return x, (x @ torch.tensor([2.0, -3.0, 0.5])).unsqueeze(1)
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_training\n" + SETUP_CELL),
        nbformat.v4.new_code_cell(TRAINING_CELL),
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, path)


def isolated_env(base: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR",
                 "JUPYTERLAB_SETTINGS_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        path = base / name.lower()
        path.mkdir()
        env[name] = str(path)
    news = base / "jupyterlab_settings_dir" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env["JUPYTERLAB_SETTINGS_DIR"] = str(base / "jupyterlab_settings_dir")
    return env


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "work").mkdir()
        write_notebook(base / "work" / "demo.ipynb")
        port, token = free_port(), "screenshot"
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
             f"--port={port}", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={base / 'work'}"],
            env=isolated_env(base), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(3)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                     args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 1500})
                page.goto(f"http://127.0.0.1:{port}/lab/tree/demo.ipynb?token={token}")
                page.wait_for_selector(".jp-Notebook", timeout=60_000)
                page.wait_for_selector("text=Python 3 (ipykernel) | Idle", timeout=60_000)
                time.sleep(1)
                page.get_by_role("menuitem", name="Run").click()
                page.locator("li[data-command='runmenu:run-all']").click()
                try:
                    page.wait_for_selector(".jp-OutputArea-output >> text=Succeeded",
                                           timeout=60_000)
                except Exception:
                    page.screenshot(path=str(base.parent / "job-view-timeout.png"))
                    raise
                time.sleep(1.5)  # the final redraw
                cell = page.locator(".jp-Cell").nth(1)
                cell.screenshot(path=str(OUTPUT))
                browser.close()
        finally:
            server.terminate()
            server.wait(30)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
