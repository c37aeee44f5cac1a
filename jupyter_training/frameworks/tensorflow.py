"""TensorFlow: ``TF_CONFIG`` per worker, as the TFJob operator writes it.

``tf.distribute.MultiWorkerMirroredStrategy()`` in the cell then forms one
group across the workers. Trainer v2 has no TensorFlow runtime, so
``--api v2`` is refused.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping

from .base import Framework, KubeflowKind, Placement, one_process_per_gpu_set


class TensorFlow(Framework):
    name = "tensorflow"
    title = "TensorFlow"
    aliases = ("tf",)
    summary = (
        "TensorFlow multi-worker: TF_CONFIG per worker, so MultiWorkerMirroredStrategy() "
        "forms one group (Kubernetes: TFJob, --api v1)"
    )
    module = "tensorflow"
    warm_modules = ("tensorflow",)
    extra = "tensorflow"
    kubeflow = KubeflowKind(
        "TFJob", "tfjobs", "tfReplicaSpecs", "tensorflow", 2222, "tfjob-port", None
    )
    v2_runtime = None
    default_image = "docker.io/tensorflow/tensorflow:2.18.0-gpu"
    reserved_env = frozenset({"TF_CONFIG"})
    fast_exit_modules = ("tensorflow",)

    def ports_needed(self, world_size: int) -> int:
        return world_size  # every worker runs a gRPC server of its own

    def local_env(self, place: Placement) -> dict[str, str]:
        env = super().local_env(place)
        config = {
            "cluster": {"worker": [f"{place.master_addr}:{port}" for port in place.ports]},
            "task": {"type": "worker", "index": place.rank},
            "environment": "cloud",
        }
        env["TF_CONFIG"] = json.dumps(config)
        return env

    def check(self, *, nproc_per_worker: int, gpus: int, api: str | None) -> tuple[str, str] | None:
        shared = one_process_per_gpu_set("TensorFlow", nproc_per_worker, gpus)
        if shared is not None:
            return shared
        if api == "v2":
            return (
                "--api",
                "Trainer v2 (TrainJob) has no TensorFlow runtime; use --api v1 to run "
                "--framework tensorflow as a TFJob",
            )
        if api is not None and nproc_per_worker > 1:
            return (
                "--nproc-per-worker",
                "a TFJob pod runs one TensorFlow worker; use more --workers instead",
            )
        return None

    def complete_env(self, env: MutableMapping[str, str]) -> None:
        """RANK and WORLD_SIZE from TF_CONFIG: the chief (if any) is rank 0, then workers."""
        try:
            config = json.loads(env.get("TF_CONFIG") or "{}")
            cluster, task = config.get("cluster") or {}, config.get("task") or {}
        except (ValueError, AttributeError):
            cluster, task = {}, {}
        members = [*(cluster.get("chief") or []), *(cluster.get("worker") or [])]
        if members and task.get("type") in ("chief", "worker"):
            offset = len(cluster.get("chief") or []) if task["type"] == "worker" else 0
            env.setdefault("RANK", str(offset + int(task.get("index", 0))))
            env.setdefault("WORLD_SIZE", str(len(members)))
            host, _, port = members[0].rpartition(":")
            env.setdefault("MASTER_ADDR", host)
            env.setdefault("MASTER_PORT", port)
        super().complete_env(env)


FRAMEWORK = TensorFlow()
