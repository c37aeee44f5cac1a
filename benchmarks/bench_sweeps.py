"""sweeps: what a ``%%train_sweep`` costs per trial against a bare Optuna loop.

Ours: ``%%train_sweep --trials 16 --parallel 2 -w 2`` (random sampler, seed 0) through the
real magic in an IPython shell, a 2-worker PyTorch cell (gloo group, an ``all_reduce`` loop
of a few hundred ms, ``report(step=i, loss=...)`` every step; the loss depends on ``lr``).
Baseline: ``optuna.create_study(sampler=RandomSampler(seed=0))`` and ``study.optimize(...,
n_jobs=2)`` whose objective starts the same code as 2 bare ``Popen`` workers with exactly
our workers' environment (``worker_env``) and the exit our runtime performs, waits for
both and reads rank 0's final loss from its stdout. The two alternate (order rotated each
repetition) in one child process, so the IPython shell never touches the suite's process;
the ratio is the paired median of ours / bare wall time (target <= 1.10).

``detail`` splits our time with the store's stamps: the sweep's set-up (magic called to
first trial job created), the driver's gap (a trial's job finished to the next one
created in its slot), the launch (job created to workers started), the workers' run
(started to finished) and the tail (last job finished to the magic's return); the bare
loop's trials are timed from ``Popen`` to both exits.

The bare workers run in their own sessions, as our supervisor starts ours: with the
kernel's autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``) every session
is one scheduling group with its own share of the CPUs, and on a machine busy with other
sessions two workers sharing one session got a third less CPU than ours (bare loop 1.34x
slower), which measured the scheduler, not the launcher.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import PYTHON, median, paired_ratio, result, scratch

TRIALS, QUICK_TRIALS = 16, 4
REPS, QUICK_REPS = 5, 1
PARALLEL, WORKERS = 2, 2
STEPS, MATMULS = 100, 8  # ~0.3 s of matmuls and all_reduces per worker (1 thread each)
#: The work both variants run: a gloo group, an all_reduce loop, a loss that depends on lr.
WORK = """\
import math
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
torch.manual_seed(dist.get_rank())
a = torch.randn(256, 256) / 16
for i in range(STEPS):
    for _ in range(MATMULS):
        b = a @ a
    dist.all_reduce(b)
    loss = (math.log10(lr) + 2.0) ** 2 + 1.0 / (i + 1)
    REPORT
dist.destroy_process_group()
"""
#: Ours: the cell (``lr`` is the searched notebook name; our runtime exits after it).
CELL = "import jupyter_training\n" + WORK.replace(
    "REPORT", "jupyter_training.report(step=i, loss=loss)"
).replace("STEPS", str(STEPS)).replace("MATMULS", str(MATMULS))
#: The bare loop's worker: the same code as a script, lr from argv, rank 0 prints the loss,
#: then the exit our runtime performs after a cell that imported torch (as launch's floor).
SCRIPT = (
    "import sys\nlr = float(sys.argv[1])\n"
    + WORK.replace("REPORT", "pass").replace("STEPS", str(STEPS)).replace("MATMULS", str(MATMULS))
    + "import os\n"
    + "if os.environ['RANK'] == '0':\n    print('LOSS', repr(loss))\n"
    + "sys.stdout.flush()\nsys.stderr.flush()\nos._exit(0)\n"
)
LINE = (
    "--param lr=loguniform(1e-4,1) --trials {trials} --parallel {parallel} --objective loss:min "
    "--seed 0 --sampler random --progress text -w {workers} --name {name}"
)


def run(quick: bool) -> list[dict]:
    work = scratch("sweeps")
    config = {
        "work": str(work),
        "trials": QUICK_TRIALS if quick else TRIALS,
        "reps": QUICK_REPS if quick else REPS,
        "warm": not quick,
    }
    out = subprocess.run(
        [PYTHON, str(Path(__file__).resolve()), json.dumps(config)],
        capture_output=True,
        text=True,
        cwd=work,
        timeout=3000,
    )
    (work / "child.log").write_text(out.stdout + out.stderr)
    if out.returncode:
        raise RuntimeError(f"the sweep benchmark's child failed: {out.stderr[-2000:]}")
    data = json.loads((work / "samples.json").read_text())
    trials = config["trials"]
    ours, bare = data["ours"], data["bare"]
    ratio = paired_ratio(ours, bare)
    overhead = [(a - b) / trials for a, b in zip(ours, bare, strict=True)]
    timeline = data["timeline"]
    return [
        result(
            "sweeps.trial_overhead",
            median(ours),
            "s",
            median(bare),
            ratio,
            "ratio <= 1.10",
            ratio <= 1.10,
            {
                "vs": "bare Optuna loop, Popen workers",
                "trials": trials,
                "parallel": PARALLEL,
                "workers": WORKERS,
                "reps": config["reps"],
                # wall time each trial adds to the sweep (trials overlap: PARALLEL at once)
                "overhead_per_trial_s": median(overhead),
                "reports_per_trial": STEPS,
                "ratios": [a / b for a, b in zip(ours, bare, strict=True)],
                "ours_s": ours,
                "bare_s": bare,
                "import_s": data["import_s"],
                **{key: median(values) for key, values in timeline.items()},
            },
        )
    ]


# -- the child process: an IPython shell, the magic and the bare loop, alternating ----------


def _child(config: dict[str, Any]) -> None:
    import contextlib
    import io
    import os
    import socket

    work = Path(config["work"])
    os.environ["JUPYTER_DATA_DIR"] = str(work / "data")  # a private job store
    (work / "data").mkdir(exist_ok=True)
    started = time.perf_counter()
    import optuna
    from IPython.testing.globalipapp import get_ipython

    import jupyter_training.sweeps.driver  # what the magic imports on first use
    import jupyter_training.views.sweep  # noqa: F401
    from jupyter_training.backends.local.supervisor import worker_env
    from jupyter_training.magics import TrainingMagics
    from jupyter_training.spec import JobSpec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ip = get_ipython()
    magics = TrainingMagics(ip)
    ip.register_magics(magics)
    import_s = time.perf_counter() - started
    script = work / "bare_trial.py"
    script.write_text(SCRIPT)
    trials = config["trials"]
    timeline: dict[str, list[float]] = {}
    runs = {"ours": 0, "bare": 0}
    spent = _time_driver_calls()

    def note(key: str, values: list[float]) -> None:
        if values:
            timeline.setdefault(key, []).append(median(values))

    def ours() -> float:
        runs["ours"] += 1
        name = f"bench-{runs['ours']}"
        line = LINE.format(trials=trials, parallel=PARALLEL, workers=WORKERS, name=name)
        printed = io.StringIO()
        spent.clear()
        called = time.time()
        began = time.perf_counter()
        with contextlib.redirect_stdout(printed):
            best = ip.run_cell_magic("train_sweep", line, CELL)
        elapsed = time.perf_counter() - began
        returned = time.time()
        with open(work / "sweep-views.log", "a") as log:
            log.write(printed.getvalue())
        store = magics.client.store
        sweep = store.get_sweep(name)
        jobs = store.sweep_jobs(sweep.id)
        if sweep.phase != "Succeeded" or len(jobs) != trials or not best or "lr" not in best:
            raise RuntimeError(f"sweep {name} did not succeed: {sweep.phase} {sweep.message}")
        ends = sorted(j.finished for j in jobs if j.finished)
        gaps = []
        for job in jobs[PARALLEL:]:  # its slot was freed by the last job to end before it
            before = [end for end in ends if end <= job.created]
            if before:
                gaps.append(job.created - before[-1])
        timeline.setdefault("ours_setup_s", []).append(jobs[0].created - called)
        note("ours_driver_gap_s", gaps)
        note("ours_launch_s", [j.started - j.created for j in jobs if j.started])
        note("ours_trial_run_s", [j.finished - j.started for j in jobs if j.started and j.finished])
        note("ours_trial_job_s", [j.finished - j.created for j in jobs if j.finished])
        timeline.setdefault("ours_tail_s", []).append(returned - ends[-1])
        for call, seconds in spent.items():  # the driver thread's time in each call, per trial
            timeline.setdefault(f"ours_per_trial_in_{call}_s", []).append(seconds / trials)
        spent.clear()
        return elapsed

    def free_port() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def objective(trial: Any, spans: list[tuple[float, float]]) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        port = free_port()
        spec = JobSpec(workers=WORKERS)
        base = dict(os.environ)
        envs = [worker_env("bare", spec, r, (port,), [], base) for r in range(WORKERS)]
        began = time.time()
        processes = []
        with open(work / "bare-workers.log", "ab") as log:
            for rank, env in enumerate(envs):
                processes.append(
                    subprocess.Popen(
                        [PYTHON, str(script), repr(lr)],
                        env=env,
                        cwd=work,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE if rank == 0 else subprocess.DEVNULL,
                        stderr=log,
                        start_new_session=True,  # as ours: see the module's docstring
                    )
                )
            printed = processes[0].communicate()[0].decode()
            codes = [process.wait() for process in processes]
        spans.append((began, time.time()))
        if any(codes) or "LOSS" not in printed:
            raise RuntimeError(f"bare workers failed {codes}; see {work}/bare-workers.log")
        return float(printed.split("LOSS", 1)[1].split()[0])

    def bare() -> float:
        runs["bare"] += 1
        spans: list[tuple[float, float]] = []
        began = time.perf_counter()
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(lambda t: objective(t, spans), n_trials=trials, n_jobs=PARALLEL)
        elapsed = time.perf_counter() - began
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        if len(done) != trials:
            raise RuntimeError(f"bare loop: {len(done)} of {trials} trials completed")
        spans.sort()
        ends = sorted(end for _, end in spans)
        gaps = []
        for start, _ in spans[PARALLEL:]:
            before = [end for end in ends if end <= start]
            if before:
                gaps.append(start - before[-1])
        note("bare_gap_s", gaps)
        note("bare_trial_s", [end - start for start, end in spans])
        return elapsed

    from common import interleave

    if config["warm"]:  # the page cache and torch's first import, for both
        saved = trials
        trials = PARALLEL
        ours()
        bare()
        trials = saved
        timeline.clear()
    samples = interleave(config["reps"], {"ours": ours, "bare": bare})
    (work / "samples.json").write_text(
        json.dumps({**samples, "timeline": timeline, "import_s": import_s})
    )


def _time_driver_calls() -> dict[str, float]:
    """Seconds the sweep's driver spends in its costly calls (summed from here on, by name):
    the study's SQLite writes and reads, and the submission (which waits for the job's
    supervisor to detach). The bare loop makes none of these calls but ``ask`` and ``tell``
    (on its own study in memory): those are counted only on the thread of the magic."""
    import threading

    import optuna

    from jupyter_training.backends.local.backend import LocalBackend
    from jupyter_training.sweeps import study

    spent: dict[str, float] = {}
    main = threading.main_thread()

    def timed(owner: Any, attribute: str, name: str) -> None:
        call = getattr(owner, attribute)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not main:
                return call(*args, **kwargs)
            began = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - began

        setattr(owner, attribute, wrapper)

    timed(study, "open_study", "open_study")
    timed(optuna.study.Study, "ask", "study_ask")
    timed(optuna.study.Study, "tell", "study_tell")
    timed(optuna.trial.Trial, "report", "study_report")
    timed(LocalBackend, "submit", "submit")
    return spent


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    _child(json.loads(sys.argv[1]))
