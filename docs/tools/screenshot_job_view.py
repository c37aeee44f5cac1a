"""Take docs/images/job-view.png: the live job view in a real JupyterLab page.

Runs a small DDP notebook in JupyterLab (isolated config, data and runtime
dirs), drives it with Debian's chromium through Playwright, and captures the
training cell once the job has succeeded (see notebook_screenshot.py). Needs
the ``docs`` extra and ``apt-get install chromium``::

    python docs/tools/screenshot_job_view.py
"""

from __future__ import annotations

from pathlib import Path

from notebook_screenshot import screenshot_notebook

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "docs" / "images" / "job-view.png"
TRAINING_CELL = """%%train_distributed --framework pytorch --workers 2 --name ddp-demo --out model
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
"""
SETUP_CELL = """import torch

def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

def make_data(rank, n=256):
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(n, 3, generator=g)
    return x, (x @ torch.tensor([2.0, -3.0, 0.5])).unsqueeze(1)
"""


def main() -> None:
    screenshot_notebook(
        ["%load_ext jupyter_training\n" + SETUP_CELL, TRAINING_CELL],
        OUTPUT,
        ".jp-OutputArea-output >> text=Succeeded",
        cell=1,
        timeout_s=60,
    )
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
