"""JAX: the runtime joins every process to one ``jax.distributed`` job before the cell.

``jax.process_count()`` is then the world size and cross-process collectives
work (gloo on CPU, NCCL on GPU). The env is a JAXJob pod's (``COORDINATOR_*``,
``NUM_PROCESSES``, ``PROCESS_ID``) and a TrainJob node's on the
``jax-distributed`` runtime (``JAX_*``); a cell that calls
``jax.distributed.initialize(...)`` itself keeps working (the call is a no-op).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, MutableMapping

from .base import Framework, KubeflowKind, Placement, one_process_per_gpu_set

JAXJOB_ENV = ("COORDINATOR_ADDRESS", "COORDINATOR_PORT", "NUM_PROCESSES", "PROCESS_ID")
TRAINJOB_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


class Jax(Framework):
    name = "jax"
    title = "JAX"
    summary = (
        "JAX multi-process: the runtime calls jax.distributed.initialize() before the cell, "
        "so jax.process_count() is the world size"
    )
    module = "jax"
    warm_modules = ("jax",)
    extra = "jax"
    kubeflow = KubeflowKind(
        "JAXJob", "jaxjobs", "jaxReplicaSpecs", "jax", 6666, "jaxjob-port", None
    )
    v2_runtime = "jax-distributed"
    default_image = "nvcr.io/nvidia/jax:25.10-py3"
    reserved_env = frozenset({*JAXJOB_ENV, *TRAINJOB_ENV})
    fast_exit_modules = ("jax",)

    def local_env(self, place: Placement) -> dict[str, str]:
        env = super().local_env(place)
        env.update(
            COORDINATOR_ADDRESS=place.master_addr,
            COORDINATOR_PORT=str(place.master_port),
            NUM_PROCESSES=str(place.world_size),
            PROCESS_ID=str(place.rank),
            JAX_COORDINATOR_ADDRESS=f"{place.master_addr}:{place.master_port}",
            JAX_NUM_PROCESSES=str(place.world_size),
            JAX_PROCESS_ID=str(place.rank),
        )
        return env

    def check(self, *, nproc_per_worker: int, gpus: int, api: str | None) -> tuple[str, str] | None:
        shared = one_process_per_gpu_set("JAX", nproc_per_worker, gpus)
        if shared is not None:
            return shared
        if api is not None and nproc_per_worker > 1:
            return (
                "--nproc-per-worker",
                "a JAXJob or JAX TrainJob runs one process per pod (it uses every GPU the pod "
                "has); use more --workers instead",
            )
        return None

    def complete_env(self, env: MutableMapping[str, str]) -> None:
        host, _, port = env.get("JAX_COORDINATOR_ADDRESS", "").rpartition(":")
        for name, value in (
            ("RANK", env.get("PROCESS_ID") or env.get("JAX_PROCESS_ID")),
            ("WORLD_SIZE", env.get("NUM_PROCESSES") or env.get("JAX_NUM_PROCESSES")),
            ("MASTER_ADDR", env.get("COORDINATOR_ADDRESS") or host),
            ("MASTER_PORT", env.get("COORDINATOR_PORT") or port),
        ):
            if value and name not in env:
                env[name] = value
        super().complete_env(env)

    @contextlib.contextmanager
    def around_cell(self) -> Iterator[None]:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            yield
            return
        import jax

        address = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        jax.distributed.initialize(
            coordinator_address=address,
            num_processes=world,
            process_id=int(os.environ["RANK"]),
        )
        initialize = jax.distributed.initialize
        jax.distributed.initialize = _already_initialized
        try:
            yield
        finally:
            jax.distributed.initialize = initialize
        # Every process leaves together; rank 0 hosts the coordinator the others need.
        jax.distributed.shutdown()


def _already_initialized(*args: object, **kwargs: object) -> None:
    """Stands in for ``jax.distributed.initialize`` once the runtime has called it."""
    print(
        "[jupyter-training] jax.distributed is already initialized for this job; "
        "the cell's initialize() call is skipped",
        file=sys.stderr,
    )


FRAMEWORK = Jax()
