"""XGBoost: rank 0 starts the tracker and every rank joins the collective.

A plain ``xgb.train(...)`` on each rank's shard then trains one model across
the workers, with no tracker code in the cell. The env is an XGBoostJob pod's
(``MASTER_*``, ``WORKER_ADDRS``, ...) and a TrainJob node's (``DMLC_*``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .base import (
    Framework,
    KubeflowKind,
    Placement,
    is_loopback,
    one_process_per_gpu_set,
    wait_for_local_listener,
)

DMLC_ENV = ("DMLC_TRACKER_URI", "DMLC_TRACKER_PORT", "DMLC_TASK_ID", "DMLC_NUM_WORKER")


class XGBoost(Framework):
    name = "xgboost"
    title = "XGBoost"
    aliases = ("xgb",)
    summary = (
        "XGBoost collective: the runtime starts the tracker on rank 0 and joins every "
        "rank, so xgb.train() on each shard trains one model"
    )
    module = "xgboost"
    warm_modules = ("xgboost",)
    extra = "xgboost"
    kubeflow = KubeflowKind(
        "XGBoostJob", "xgboostjobs", "xgbReplicaSpecs", "xgboost", 9999, "xgboostjob-port"
    )
    v2_runtime = "xgboost-distributed"
    default_image = "ghcr.io/kubeflow/trainer/xgboost-runtime:latest"
    reserved_env = frozenset({"WORKER_ADDRS", "WORKER_PORT", *DMLC_ENV})
    env_aliases = {
        "RANK": ("DMLC_TASK_ID",),
        "WORLD_SIZE": ("DMLC_NUM_WORKER",),
        "MASTER_ADDR": ("DMLC_TRACKER_URI",),
        "MASTER_PORT": ("DMLC_TRACKER_PORT",),
        "DMLC_TRACKER_URI": ("MASTER_ADDR",),
        "DMLC_TRACKER_PORT": ("MASTER_PORT",),
        "DMLC_TASK_ID": ("RANK",),
        "DMLC_NUM_WORKER": ("WORLD_SIZE",),
    }

    def local_env(self, place: Placement) -> dict[str, str]:
        env = super().local_env(place)
        env.update(
            WORKER_ADDRS=",".join([place.master_addr] * (place.world_size - 1)),
            WORKER_PORT=str(place.master_port),
            DMLC_TRACKER_URI=place.master_addr,
            DMLC_TRACKER_PORT=str(place.master_port),
            DMLC_TASK_ID=str(place.rank),
            DMLC_NUM_WORKER=str(place.world_size),
        )
        return env

    def check(self, *, nproc_per_worker: int, gpus: int, api: str | None) -> tuple[str, str] | None:
        shared = one_process_per_gpu_set("XGBoost", nproc_per_worker, gpus)
        if shared is not None:
            return shared
        if api is not None and nproc_per_worker > 1:
            return (
                "--nproc-per-worker",
                "an XGBoost pod runs one worker process; use more --workers instead",
            )
        if api == "v2" and gpus > 1:
            return (
                "--gpus",
                "an XGBoost TrainJob runs one worker per GPU: use --gpus 1 and more --workers",
            )
        return None

    @contextlib.contextmanager
    def around_cell(self) -> Iterator[None]:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            yield
            return
        with xgboost_collective():
            yield


@contextlib.contextmanager
def xgboost_collective() -> Iterator[None]:
    """Run the body inside XGBoost's collective, with the tracker on rank 0."""
    from xgboost import collective
    from xgboost.tracker import RabitTracker

    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    host = os.environ["DMLC_TRACKER_URI"]
    port = int(os.environ["DMLC_TRACKER_PORT"])
    tracker = None
    if rank == 0:
        tracker = RabitTracker(n_workers=world, host_ip=host, port=port, sortby="task")
        tracker.start()
    elif is_loopback(host):
        # XGBoost retries a refused connection only after a ~2 s back-off.
        wait_for_local_listener(port, timeout=120)
    args = {
        "dmlc_tracker_uri": host,
        "dmlc_tracker_port": port,
        "dmlc_task_id": str(rank),
        "dmlc_retry": 30,
        "dmlc_timeout": 600,
    }
    with collective.CommunicatorContext(**args):
        yield
    if tracker is not None:
        tracker.wait_for()


FRAMEWORK = XGBoost()
