"""The benchmark suite runs: ``benchmarks/run.py --quick`` produces every figure, no errors.

Only that it runs: single quick repetitions on a shared machine say nothing about the
targets, so ``ok`` is not asserted here (the recorded figures come from full runs).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = (
    "launch",
    "warm",
    "zero_copy",
    "latency",
    "throughput",
    "capture",
    "history",
    "tracking",
    "kubernetes",
    "footprint",
    "sweeps",
)


def test_quick_benchmarks_produce_every_figure(tmp_path):
    output = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode in (0, 1), run.stderr[-3000:]  # 1: a quick figure missed its target
    printed = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    recorded = json.loads(output.read_text())
    assert [r["name"] for r in recorded["results"]] == [r["name"] for r in printed]
    for figure in printed:
        assert "error" not in figure.get("detail", {}), figure
        assert set(figure) >= {"name", "value", "unit", "baseline", "ratio", "target", "ok"}
    names = {figure["name"].split(".")[0] for figure in printed}
    assert names == set(BENCHMARKS)
    assert len(printed) == 28
    assert set(recorded["machine"]["runs"]) == set(BENCHMARKS)
