"""footprint: memory our code adds where it stays resident.

* ``footprint.server``: RSS of an idle plain ``jupyter_server`` (no other server extension)
  with the ``jupyter_training`` extension minus the same server without it, both started side
  by side and measured from /proc/<pid>/status after the same requests (``/api/status`` and
  ``/jupyter-training/api/jobs``, a 404 on the baseline). The detail also has the RSS added
  once the sidebar's launch form has called ``/jupyter-training/api/cluster``, which loads
  the Kubernetes client.
* ``footprint.supervisor``: RSS of a running job's supervisor (its pid read from the job
  record while the job runs) vs an idle bare ``python -c`` process measured at the same time,
  for a cold start (``warm_workers = False``). A warm job's supervisor is a fork of the warm
  process and shares torch's pages with it, so its RSS says little; the detail records the
  memory it holds alone (``Private_*`` of ``/proc/<pid>/smaps_rollup``).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from common import (
    PYTHON,
    JupyterServer,
    median,
    paired_ratio,
    result,
    rss_mb,
    scratch,
    training_client,
)

SLEEPER = "import time\ntime.sleep({seconds})\n"


def private_mb(pid: int) -> float:
    """Memory only ``pid`` holds (private clean and dirty pages), in MB."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total * 1024 / 1e6


def warm_supervisor_private(client) -> float:
    """Private memory of a warm job's supervisor while the job runs."""
    from jupyter_training.spec import JobSpec

    client.backend("local").warm_up("pytorch")
    record = client.submit(JobSpec(workers=2), SLEEPER.format(seconds=2), {})
    while (current := client.get(record.id)).phase != "Running":
        time.sleep(0.05)
    time.sleep(0.5)
    measured = private_mb(current.supervisor_pid)
    for _ in client.events(record.id):
        pass
    return measured


def supervisor_rss(client) -> tuple[float, float]:
    """RSS of a running job's supervisor and of an idle bare python, at the same moment."""
    from jupyter_training.spec import JobSpec

    record = client.submit(JobSpec(workers=2), SLEEPER.format(seconds=2), {})
    sleeper = subprocess.Popen([PYTHON, "-c", SLEEPER.format(seconds=30)])
    try:
        while (current := client.get(record.id)).phase != "Running":
            time.sleep(0.05)
        time.sleep(0.5)
        measured = rss_mb(current.supervisor_pid), rss_mb(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    for _ in client.events(record.id):  # until the job has ended
        pass
    return measured


def measure(work, rep: int, client) -> dict[str, float]:
    """One side-by-side sample of everything; the job runs while the servers start."""
    ours = JupyterServer(work / f"with-{rep}", training=True, others=False)
    bare = JupyterServer(work / f"without-{rep}", training=False, others=False)
    try:
        ours.launch()
        bare.launch()
        supervisor, idle = supervisor_rss(client)
        for server in (ours, bare):
            server.wait_ready()
            server.get("/api/status")
            server.get("/jupyter-training/api/jobs")
        time.sleep(0.5)  # let start-up work (the monitor's first scan) settle
        with_ext, without = rss_mb(ours.pid), rss_mb(bare.pid)
        ours.get("/jupyter-training/api/cluster")  # the sidebar's launch form: loads kubernetes
        time.sleep(0.5)
        after_cluster = rss_mb(ours.pid)
    finally:
        ours.stop()
        bare.stop()
    return {
        "with": with_ext,
        "without": without,
        "after_cluster": after_cluster,
        "supervisor": supervisor,
        "idle": idle,
    }


def run(quick: bool) -> list[dict]:
    work = scratch("footprint")
    client = training_client()
    client.settings.warm_workers = False
    reps = 1 if quick else 3
    warm_private = median([warm_supervisor_private(training_client()) for _ in range(reps)])
    samples = [measure(work, rep, client) for rep in range(reps)]
    series = {key: [s[key] for s in samples] for key in samples[0]}
    added = [a - b for a, b in zip(series["with"], series["without"], strict=True)]
    cluster = [a - b for a, b in zip(series["after_cluster"], series["without"], strict=True)]
    supervisor = median(series["supervisor"])
    return [
        result(
            "footprint.server",
            median(added),
            "MB",
            median(series["without"]),
            paired_ratio(series["with"], series["without"]),
            "<= 30 MB added",
            median(added) <= 30,
            {
                "vs": "server without it",
                "with_extension_mb": series["with"],
                "without_mb": series["without"],
                "added_after_cluster_call_mb": median(cluster),
                "reps": reps,
            },
        ),
        result(
            "footprint.supervisor",
            supervisor,
            "MB",
            median(series["idle"]),
            paired_ratio(series["supervisor"], series["idle"]),
            "<= 30 MB",
            supervisor <= 30,
            {
                "vs": "idle bare python",
                "reps": reps,
                "start": "cold",
                "warm_supervisor_private_mb": warm_private,
            },
        ),
    ]
