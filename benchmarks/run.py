"""Run the benchmark suite: ``python benchmarks/run.py [NAME ...] [--quick] [--table]``.

Prints one JSON object per figure, one per line, and writes them with a record of the
machine to ``benchmarks/results.json`` (a run of some benchmarks replaces only theirs).
``--table`` prints the markdown table of ``results.json`` instead of running anything.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
#: name -> module, in the order they run.
BENCHMARKS = {
    "launch": "bench_launch",
    "warm": "bench_warm",
    "zero_copy": "bench_zero_copy",
    "latency": "bench_latency",
    "throughput": "bench_throughput",
    "capture": "bench_capture",
    "history": "bench_history",
    "tracking": "bench_tracking",
    "kubernetes": "bench_kubernetes",
    "footprint": "bench_footprint",
    "sweeps": "bench_sweeps",
}


def _use_project_venv() -> None:
    """Re-run under the project's .venv when this interpreter lacks the project or torch."""
    venv_python = HERE.parent / ".venv" / "bin" / "python"
    missing = any(importlib.util.find_spec(m) is None for m in ("jupyter_training", "torch"))
    if missing and venv_python.exists() and Path(sys.prefix) != venv_python.parent.parent:
        os.execv(str(venv_python), [str(venv_python), *sys.argv])


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=HERE, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout.rstrip()


def machine(quick: bool) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": importlib.metadata.version("torch"),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        # the code measured: its commit, and files changed since (outside benchmarks/)
        "commit": _git("rev-parse", "--short", "HEAD"),
        "changed": [
            line[3:]
            for line in _git("status", "--porcelain", "--untracked-files=no").splitlines()
            if not line[3:].startswith("benchmarks/")
        ],
    }


def run_one(name: str, quick: bool) -> list[dict[str, Any]]:
    """One benchmark's figures; a benchmark that breaks yields one failed figure saying why."""
    module = importlib.import_module(BENCHMARKS[name])
    started = time.monotonic()
    try:
        figures = module.run(quick)
    except Exception as err:
        traceback.print_exc()
        figures = [
            {
                "name": name,
                "value": None,
                "unit": "",
                "baseline": None,
                "ratio": None,
                "target": "runs",
                "ok": False,
                "detail": {"error": f"{type(err).__name__}: {err}"},
            }
        ]
    seconds = round(time.monotonic() - started, 1)
    for figure in figures:
        figure.setdefault("detail", {})["benchmark_seconds"] = seconds
    return figures


def save(
    figures: list[dict[str, Any]], names: list[str], record: dict[str, Any], path: Path
) -> None:
    """Write ``figures`` and the ``machine`` record into ``path``, keeping other benchmarks'."""
    kept: list[dict[str, Any]] = []
    runs: dict[str, Any] = {}
    if path.exists() and set(names) != set(BENCHMARKS):
        previous = json.loads(path.read_text())
        runs = previous.get("machine", {}).get("runs", {})
        kept = [f for f in previous.get("results", []) if f["name"].split(".")[0] not in names]
    runs.update({name: {"date": record["date"], "quick": record["quick"]} for name in names})
    record["runs"] = runs
    order = {name: index for index, name in enumerate(BENCHMARKS)}
    merged = sorted(kept + figures, key=lambda f: order.get(f["name"].split(".")[0], 99))
    path.write_text(json.dumps({"machine": record, "results": merged}, indent=2) + "\n")


def _cell(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{value} {unit}".strip()


def table(path: Path = RESULTS) -> str:
    """The markdown table of a results file."""
    data = json.loads(path.read_text())
    info = data["machine"]
    lines = [
        f"Measured {info['date']} on {info['cpu']} ({info['cores']} cores), Python "
        f"{info['python']}, torch {info['torch']}{' (--quick)' if info.get('quick') else ''}, "
        f"commit {info.get('commit') or '?'}"
        + (f" plus changes to {', '.join(info['changed'])}" if info.get("changed") else "")
        + ".",
        *_runs_line(info.get("runs") or {}),
        "",
        "| benchmark | ours | baseline | ratio | target | ok |",
        "|---|---:|---:|---:|---|:-:|",
    ]
    for figure in data["results"]:
        unit = figure["unit"]
        vs = (figure.get("detail") or {}).get("vs")
        baseline = _cell(figure["baseline"], unit) + (f" ({vs})" if vs else "")
        lines.append(
            f"| {figure['name']} | {_cell(figure['value'], unit)} | {baseline} | "
            f"{_cell(figure['ratio'])} | {figure['target']} | "
            f"{'yes' if figure['ok'] else '**no**'} |"
        )
    return "\n".join(lines)


def _runs_line(runs: dict[str, dict]) -> list[str]:
    """When the figures come from several runs, which benchmarks ran when."""
    by_date: dict[str, list[str]] = {}
    for name, run in runs.items():
        when = run["date"] + (" (--quick)" if run.get("quick") else "")
        by_date.setdefault(when, []).append(name)
    if len(by_date) < 2:
        return []
    parts = [f"{', '.join(names)} at {date}" for date, names in sorted(by_date.items())]
    return ["", "Figures from separate runs: " + "; ".join(parts) + "."]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (~1.5 min)")
    parser.add_argument("--table", action="store_true", help="print results.json as markdown")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    args = parser.parse_args(argv)
    if args.table:
        print(table(args.output))
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)

    sys.path.insert(0, str(HERE))
    import common

    root = Path(tempfile.mkdtemp(prefix="jt-bench-"))
    common.SCRATCH_ROOT = root
    common.isolate(root / "dirs")
    record = machine(args.quick)  # at the start: the code as it was when the run began
    figures: list[dict[str, Any]] = []
    try:
        for name in names:
            for figure in run_one(name, args.quick):
                print(json.dumps(figure), flush=True)
                figures.append(figure)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    save(figures, names, record, args.output)
    return 0 if all(f["ok"] for f in figures) else 1


if __name__ == "__main__":
    _use_project_venv()
    sys.exit(main())
