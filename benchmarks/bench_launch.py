"""launch: a cell that imports torch, joins a gloo group and leaves, start to finish.

Ours: ``TrainingClient.submit`` plus consuming ``client.events`` until the terminal phase,
exactly as ``%%train_distributed`` does, starting cold (``warm_workers = False``: every
worker a new interpreter; bench_warm measures warm workers against these same
baselines). Baselines, interleaved with ours: ``torchrun --nproc-per-node N cell.py``
of the same code as a script (what a user would run by hand),
and the floor, N bare ``Popen`` workers with our workers' environment, the exit our
runtime performs, and no supervision at all. A full run also times torchrun with that same
exit (``detail.ratio_vs_torchrun_same_exit``), which tells the launcher's share of the
difference from the teardown's.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from common import (
    BIN,
    PYTHON,
    free_port,
    interleave,
    median,
    paired_ratio,
    result,
    run_job,
    scratch,
    training_client,
)

CELL = """\
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
dist.destroy_process_group()
"""
REPS, QUICK_REPS = 9, 1
#: The floor's script: the cell, then the exit our runtime performs after a cell that
#: imported torch (flush, os._exit), skipping torch's slow and abort-prone teardown.
SCRIPT = CELL + "import os, sys\nsys.stdout.flush()\nsys.stderr.flush()\nos._exit(0)\n"
#: How torch's teardown abort shows in torchrun's log (an intermittent crash at exit).
TEARDOWN_ABORT = ("terminate called without an active exception", "SIGABRT")


def run(
    quick: bool,
    *,
    ours: Callable[[], float] | None = None,
    workers: tuple[int, ...] = (2, 4),
    reps: int | None = None,
) -> list[dict]:
    """The figures for each worker count; ``ours`` replaces our cold start (bench_warm)."""
    from jupyter_training.backends.local.supervisor import worker_env
    from jupyter_training.spec import JobSpec

    work = scratch("launch")
    script = work / "script.py"
    script.write_text(SCRIPT)
    cell_script = work / "cell.py"
    cell_script.write_text(CELL)
    counts = workers
    aborts = dict.fromkeys(counts, 0)
    client = training_client()
    client.settings.warm_workers = False
    if reps is None:
        reps = QUICK_REPS if quick else REPS
    results = []
    if not quick:
        run_job(client, CELL, workers=2)  # warm the page cache and torch's first import
    given = ours
    for workers in counts:

        def cold(workers: int = workers) -> float:
            started = time.perf_counter()
            run_job(client, CELL, workers=workers)
            return time.perf_counter() - started

        ours = given or cold

        def torchrun(workers: int = workers, path: Path = cell_script) -> float:
            command = [
                str(BIN / "torchrun"),
                f"--nproc-per-node={workers}",
                f"--master-port={free_port()}",
                str(path),
            ]
            log_path = work / f"torchrun-{path.stem}-{workers}.log"
            started = time.perf_counter()
            out = subprocess.run(command, capture_output=True, text=True, cwd=work)
            elapsed = time.perf_counter() - started
            with open(log_path, "a") as log:
                log.write(out.stdout + out.stderr)
            if out.returncode:
                # torch's teardown abort after a finished cell is torchrun's own cost: count it
                if not any(sign in out.stdout + out.stderr for sign in TEARDOWN_ABORT):
                    raise RuntimeError(f"torchrun failed ({out.returncode}); see {log_path}")
                aborts[workers] += 1
            return elapsed

        def torchrun_same_exit(workers: int = workers) -> float:
            return torchrun(workers, script)

        def floor(workers: int = workers) -> float:
            spec = JobSpec(workers=workers)
            port = free_port()
            envs = [
                worker_env("floor", spec, rank, (port,), [], dict(os.environ))
                for rank in range(workers)
            ]
            started = time.perf_counter()
            processes = []
            for rank, env in enumerate(envs):
                with open(work / f"floor-{rank}.log", "ab") as log:
                    processes.append(
                        subprocess.Popen(
                            [PYTHON, str(script)],
                            env=env,
                            cwd=work,
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
            codes = [process.wait() for process in processes]
            elapsed = time.perf_counter() - started
            if any(codes):
                raise RuntimeError(f"bare workers failed {codes}; see {work}/floor-*.log")
            return elapsed

        variants = {"ours": ours, "torchrun": torchrun, "floor": floor}
        if not quick:
            variants["torchrun_same_exit"] = torchrun_same_exit
        samples = interleave(reps, variants)
        mine = median(samples["ours"])
        vs_torchrun = paired_ratio(samples["ours"], samples["torchrun"])
        vs_floor = paired_ratio(samples["ours"], samples["floor"])
        runs = {f"{k}_s": v for k, v in samples.items()}
        same_exit = {}
        if "torchrun_same_exit" in samples:
            same_exit["ratio_vs_torchrun_same_exit"] = paired_ratio(
                samples["ours"], samples["torchrun_same_exit"]
            )
        results.append(
            result(
                f"launch.n{workers}.vs_torchrun",
                mine,
                "s",
                median(samples["torchrun"]),
                vs_torchrun,
                "ratio <= 0.60",
                vs_torchrun <= 0.60,
                {
                    "vs": "torchrun",
                    "workers": workers,
                    "reps": reps,
                    # the best any launcher could do here: bare workers vs torchrun
                    "floor_vs_torchrun": paired_ratio(samples["floor"], samples["torchrun"]),
                    "torchrun_teardown_aborts": aborts[workers],
                    **same_exit,
                    **runs,
                },
            )
        )
        results.append(
            result(
                f"launch.n{workers}.vs_floor",
                mine,
                "s",
                median(samples["floor"]),
                vs_floor,
                "ratio <= 1.15",
                vs_floor <= 1.15,
                {"vs": "bare Popen workers", "workers": workers, "reps": reps},
            )
        )
    return results
