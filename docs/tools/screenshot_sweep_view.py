"""Take docs/images/sweep-view.png: the live sweep view in a real JupyterLab page.

Runs an 8-trial ``%%train_sweep`` (two-worker trials, two at a time, median pruning)
in JupyterLab (isolated config, data and runtime dirs), drives it with Debian's
chromium through Playwright, and captures the sweep widget (header, trials table with
the best row starred, "loss per trial" chart, Stop button) once the sweep has finished
(see notebook_screenshot.py). Needs the ``docs`` and ``sweeps`` extras and
``apt-get install chromium``::

    python docs/tools/screenshot_sweep_view.py
"""

from __future__ import annotations

from pathlib import Path

from notebook_screenshot import screenshot_notebook

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "docs" / "images" / "sweep-view.png"
# Each backslash-newline below joins two lines: the cell has a one-line magic and report.
SWEEP_CELL = """%%train_sweep --param lr=loguniform(1e-4,1) --param batch=choice(32,64,128) \
--trials 8 --parallel 2 --objective loss:min --prune median --seed 3 -w 2 --name lr-search
import math, time
import jupyter_training as jt
for step in range(6):
    jt.report(step=step, total=6, loss=(math.log10(lr) + 2) ** 2 + abs(batch - 64) / 100 \
+ 0.5 / (step + 1))
    time.sleep(0.2)
"""
# The sweep is over once its cell has an execution count (the load_ext cell is [1]).
FINISHED = ".jp-InputPrompt:text-is('[2]:')"


def main() -> None:
    screenshot_notebook(
        ["%load_ext jupyter_training", SWEEP_CELL],
        OUTPUT,
        FINISHED,
        cell=1,
        part=".jp-Cell-outputWrapper",
        timeout_s=300,
    )
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
