"""kubernetes: manifest rendering at scale, and API requests over a job's life.

* ``kubernetes.render.*``: ``manifests.render`` (payload ConfigMap + job) of a 1,000-worker
  PyTorchJob and TrainJob vs the same job with 2 workers, interleaved.
* ``kubernetes.requests``: every HTTP request our client makes to the API server over a
  job's whole life (submit, watches, log streams, reads), counted by the emulator from the
  test harness (``tests/k8s``: ``KubeEmulator`` + ``FakeOperator``), for a short job and a
  long one with many log lines, job status changes and Kubernetes events. Bounded means the
  two counts are equal: a constant plus one log stream per pod.
"""

from __future__ import annotations

import sys
import threading
import time

from common import ROOT, interleave, median, paired_ratio, result, scratch

WORKERS = 4
NS = "default"


def _objects(api: str, workers: int, payload: bytes):
    from jupyter_training.backends.kubernetes.manifests import JobObjects
    from jupyter_training.backends.kubernetes.targets import target_for
    from jupyter_training.spec import JobSpec

    spec = JobSpec(
        backend="kubernetes",
        api=api,
        workers=workers,
        image="docker.io/pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        namespace=NS,
        gpus=1,
        cpu="4",
        memory="16Gi",
        runtime="torch-distributed" if api == "v2" else None,
    )
    return JobObjects(
        job_id="0123456789ab",
        name="job-0123456789ab",
        namespace=NS,
        spec=spec,
        target=target_for("pytorch", api),
        image=spec.kubernetes.image or "",
        payload=payload,
        runtime=spec.kubernetes.runtime,
        notebook="train.ipynb",
    )


def render_results(quick: bool) -> list[dict]:
    from jupyter_training.backends.kubernetes.manifests import render
    from jupyter_training.capture import capture_cell

    payload = capture_cell("import torch\nprint(torch.__version__)\n", {}).to_bytes()
    reps = 30 if quick else 200
    results = []
    for api, kind in (("v1", "PyTorchJob"), ("v2", "TrainJob")):
        big, small = _objects(api, 1000, payload), _objects(api, 2, payload)

        def timed(job) -> float:
            started = time.perf_counter()
            render(job)
            return (time.perf_counter() - started) * 1000

        timed(big)
        samples = interleave(
            reps, {"big": lambda b=big: timed(b), "small": lambda s=small: timed(s)}
        )
        value = median(samples["big"])
        results.append(
            result(
                f"kubernetes.render.{kind}",
                value,
                "ms",
                median(samples["small"]),
                paired_ratio(samples["big"], samples["small"]),
                "<= 50 ms",
                value <= 50,
                {"vs": "2 workers", "workers": 1000, "baseline_workers": 2, "reps": reps},
            )
        )
    return results


def _job_life(kube, operator, work, steps: int) -> dict[str, int]:
    """Run one job of ``steps`` log/status rounds; count our requests to the API server."""
    from jupyter_training.client import TrainingClient
    from jupyter_training.settings import load_settings
    from jupyter_training.spec import JobSpec

    settings = load_settings()
    settings.kubeconfig = str(kube.write_kubeconfig(work / "kubeconfig"))
    settings.store_dir = str(work / "store")
    kube.clear_requests()
    client = TrainingClient(settings)  # a fresh client: its one-time setup counts every time
    started = time.monotonic()
    record = client.submit(JobSpec(backend="kubernetes", api="v1", workers=WORKERS), "pass", {})
    phases: list[str] = []

    def consume() -> None:
        for event in client.events(record.id):
            if event.kind == "phase":
                phases.append(event.data["phase"])

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    job = operator.wait_for_job("pytorchjobs", NS, record.name)
    job.create_pods()
    job.run_all()
    for step in range(steps):
        for rank in range(WORKERS):
            job.log(rank, [f"step {step} rank {rank} loss={1 / (step + 1):.4f}"])
        if step % 10 == 0:
            kube.patch(
                "pytorchjobs", NS, record.name, {"metadata": {"annotations": {"step": str(step)}}}
            )
            job.sync_status()
            operator.event(job.pod(step % WORKERS), "Pulled", f"step {step}: image present")
        time.sleep(0.005)
    for rank in range(WORKERS):
        job.exit(rank, 0)
    job.succeed()
    consumer.join(60)
    if consumer.is_alive() or not phases or phases[-1] != "Succeeded":
        raise RuntimeError(f"the kubernetes job did not end as Succeeded: {phases}")
    requests = kube.requests()
    logs = sum(1 for _, path in requests if "/log" in path)
    watches = sum(1 for _, path in requests if "watch=true" in path.lower())
    return {
        "seconds": round(time.monotonic() - started, 2),
        "total": len(requests),
        "log_streams": logs,
        "watches": watches,
        "other": len(requests) - logs - watches,
    }


def request_results(quick: bool) -> list[dict]:
    sys.path.insert(0, str(ROOT / "tests"))
    from k8s.emulator import KubeEmulator
    from k8s.operator import FakeOperator

    short_steps, long_steps = 5, (150 if quick else 600)
    reps = 1 if quick else 2
    work = scratch("kubernetes")
    kube = KubeEmulator(crds={"v1", "v2"}).start()
    operator = FakeOperator(kube)
    counts: dict[str, list[dict[str, int]]] = {"short": [], "long": []}
    try:

        def life(kind: str, steps: int) -> float:
            counts[kind].append(_job_life(kube, operator, work, steps))
            return float(counts[kind][-1]["total"])

        totals = interleave(
            reps,
            {"short": lambda: life("short", short_steps), "long": lambda: life("long", long_steps)},
        )
    finally:
        operator.close()
        kube.stop()
    short, long = max(totals["short"]), max(totals["long"])
    equal = len(set(totals["short"]) | set(totals["long"])) == 1
    return [
        result(
            "kubernetes.requests",
            long,
            "requests",
            short,
            long / short,
            "long job == short job",
            equal and all(c["log_streams"] == WORKERS for v in counts.values() for c in v),
            {
                "vs": "short job",
                "workers": WORKERS,
                "short_steps": short_steps,
                "long_steps": long_steps,
                "long_log_lines": long_steps * WORKERS,
                "short": counts["short"][-1],
                "long": counts["long"][-1],
                "reps": reps,
            },
        )
    ]


def run(quick: bool) -> list[dict]:
    return render_results(quick) + request_results(quick)
