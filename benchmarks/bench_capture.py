"""capture: packing a cell that uses a 100 MB array and 50 notebook functions.

Ours: ``capture_cell`` plus ``Payload.write`` to a file. Baseline: ``pickle.dumps`` of the
same objects (the array and the functions). Both run interleaved in a fresh child process
whose ``__main__`` is the notebook namespace, as in a kernel; the functions are defined with
``exec`` and registered in ``linecache`` the way IPython registers cells, so their source is
findable. Peak memory is the child's RSS high-water mark (reset through
``/proc/self/clear_refs`` before each operation) above its RSS before the array existed, in
multiples of the array's size: 1.0 means the data itself and nothing more.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from common import PYTHON, median, paired_ratio, result, scratch

FUNCTIONS = 50
CELL_FUNCTIONS = 5  # functions per "notebook cell"


def _define_functions(namespace: dict) -> None:
    import linecache

    for cell in range(FUNCTIONS // CELL_FUNCTIONS):
        source = ""
        for i in range(cell * CELL_FUNCTIONS, (cell + 1) * CELL_FUNCTIONS):
            following = f"f_{i + 1}(y)" if i + 1 < FUNCTIONS else "y"
            source += (
                f"def f_{i}(x):\n"
                f'    """Notebook helper {i}."""\n'
                f"    y = np.asarray(x) * {i} + 1\n"
                f"    return {following}\n\n"
            )
        filename = f"<ipython-input-{cell}-bench>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), namespace)


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def child(megabytes: int, reps: int, directory: str) -> None:
    """Runs in a fresh interpreter; prints one JSON object."""
    import gc
    import pickle
    import time

    import numpy as np

    from jupyter_training.capture import capture_cell

    namespace = vars(sys.modules["__main__"])
    namespace["np"] = np
    _define_functions(namespace)
    gc.collect()
    before = _status("VmRSS")
    data = np.random.default_rng(0).random(megabytes * 1_000_000 // 8)
    namespace["data"] = data
    names = ", ".join(f"f_{i}" for i in range(FUNCTIONS))
    cell = f"result = sum(float(f(data[:10]).sum()) for f in ({names}))\n"
    objects = [data] + [namespace[f"f_{i}"] for i in range(FUNCTIONS)]
    path = Path(directory) / "payload.bin"

    def ours() -> None:
        payload = capture_cell(cell, namespace)
        payload.write(path)
        if len(payload.definitions) != FUNCTIONS or len(payload.values) != 1:
            raise RuntimeError(f"unexpected capture: {payload.names()}")

    def baseline() -> None:
        pickle.dumps(objects)

    def peak(operation) -> float:
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        operation()
        return (_status("VmHWM") - before) / data.nbytes

    times: dict[str, list[float]] = {"ours": [], "pickle": []}
    operations = {"ours": ours, "pickle": baseline}
    ours()  # warm-up: imports, linecache, first file creation
    for rep in range(reps):
        order = ["ours", "pickle"] if rep % 2 == 0 else ["pickle", "ours"]
        for name in order:
            gc.collect()
            path.unlink(missing_ok=True)
            started = time.perf_counter()
            operations[name]()
            times[name].append(time.perf_counter() - started)
    memory = {name: peak(operations[name]) for name in ("ours", "pickle")}
    payload_bytes = path.stat().st_size
    print(json.dumps({"times": times, "memory": memory, "payload_bytes": payload_bytes}))


def run(quick: bool) -> list[dict]:
    megabytes = 100
    reps = 5 if quick else 15
    work = scratch("capture")
    here = Path(__file__).resolve().parent
    code = (
        f"import sys; sys.path.insert(0, {str(here)!r}); import bench_capture; "
        f"bench_capture.child({megabytes}, {reps}, {str(work)!r})"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"capture child failed:\n{out.stderr[-3000:]}")
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    times, memory = measured["times"], measured["memory"]
    ratio = paired_ratio(times["ours"], times["pickle"])
    return [
        result(
            "capture.time",
            median(times["ours"]),
            "s",
            median(times["pickle"]),
            ratio,
            "ratio <= 1.5",
            ratio <= 1.5,
            {
                "vs": "pickle.dumps",
                "megabytes": megabytes,
                "functions": FUNCTIONS,
                "reps": reps,
                "payload_bytes": measured["payload_bytes"],
            },
        ),
        result(
            "capture.peak_memory",
            memory["ours"],
            "x data",
            memory["pickle"],
            memory["ours"] / memory["pickle"],
            "<= 2.0 x data",
            memory["ours"] <= 2.0,
            {"vs": "pickle.dumps", "megabytes": megabytes},
        ),
    ]
