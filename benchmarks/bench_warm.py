"""warm: re-running a cell whose workers fork from a warm process, against cold starts.

Ours: ``TrainingClient.submit`` plus its events to the end, as ``%%train_distributed``
does, with the pytorch warm process ready (``%train_warmup``; any re-run finds it so).
Baselines, interleaved with ours: ``torchrun --nproc-per-node 2`` of the same cell as a
script, the bare-Popen floor of cold starts (the workers alone, no supervision; see
bench_launch), and our own cold start (``c.TrainingApp.warm_workers = False``) at 2, 4,
8 and 16 workers, which records how launch cost grows with workers either way.
"""

from __future__ import annotations

import time

from bench_launch import CELL
from bench_launch import run as launch_variants
from common import interleave, median, paired_ratio, result, run_job, training_client

REPS, QUICK_REPS = 7, 1
CURVE = (2, 4, 8, 16)
QUICK_CURVE = (2, 16)


def run(quick: bool) -> list[dict]:
    warm = training_client()
    cold = training_client()
    cold.settings.warm_workers = False
    warm.backend("local").warm_up("pytorch")
    run_job(warm, CELL, workers=2)  # the page cache, the first fork's page faults
    reps = QUICK_REPS if quick else REPS

    def timed(client, workers: int) -> float:
        started = time.perf_counter()
        run_job(client, CELL, workers=workers)
        return time.perf_counter() - started

    results = launch_variants(quick, ours=lambda: timed(warm, 2), workers=(2,), reps=reps)
    for figure in results:
        figure["name"] = figure["name"].replace("launch.", "warm.", 1)
        target = 0.15 if figure["name"].endswith("vs_torchrun") else 0.5
        figure["target"] = f"ratio <= {target}"
        figure["ok"] = figure["ratio"] <= target
        figure["detail"]["ours"] = "warm workers (forked from the warm process)"
    curve = {}
    for workers in QUICK_CURVE if quick else CURVE:
        samples = interleave(
            max(1, reps // 2),
            {"cold": lambda n=workers: timed(cold, n), "warm": lambda n=workers: timed(warm, n)},
        )
        curve[workers] = {
            "cold_s": median(samples["cold"]),
            "warm_s": median(samples["warm"]),
            "ratio": paired_ratio(samples["warm"], samples["cold"]),
        }
    biggest = curve[max(curve)]
    results.append(
        result(
            "warm.n16.vs_cold",
            biggest["warm_s"],
            "s",
            biggest["cold_s"],
            biggest["ratio"],
            "ratio <= 0.5",
            biggest["ratio"] <= 0.5,
            {
                "vs": "our cold start (warm_workers = False)",
                "workers": max(curve),
                "reps": max(1, reps // 2),
                "curve": {str(n): point for n, point in curve.items()},
            },
        )
    )
    return results
