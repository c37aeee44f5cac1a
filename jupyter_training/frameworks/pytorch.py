"""PyTorch: torchrun's worker contract, a PyTorchJob pod's and a TrainJob node's, in one.

Code written for any of the three launchers runs unmodified in a cell:
``init_process_group("gloo"/"nccl")`` with the ``env://`` defaults, and the
trainers that pick their launcher from the environment (Lightning's
``TorchElasticEnvironment``, Accelerate, Hugging Face ``Trainer``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, MutableMapping

from .base import Framework, KubeflowKind, Placement

#: What torch's elastic agent gives every worker it starts, beyond the common names
#: (torch/distributed/elastic/agent/server/local_elastic_agent.py, ``_start_workers``).
TORCHRUN_ENV = (
    "GROUP_RANK",
    "ROLE_RANK",
    "ROLE_NAME",
    "ROLE_WORLD_SIZE",
    "GROUP_WORLD_SIZE",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
    "TORCHELASTIC_MAX_RESTARTS",
    "TORCHELASTIC_USE_AGENT_STORE",
    "TORCH_NCCL_ASYNC_ERROR_HANDLING",
)
#: What a TrainJob's torch runtime gives a node (and a PyTorchJob pod, some of them).
PET_ENV = (
    "PET_NNODES",
    "PET_NPROC_PER_NODE",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
)
ROLE_NAME = "default"  # torchrun's --role default


class PyTorch(Framework):
    name = "pytorch"
    title = "PyTorch"
    aliases = ("torch",)
    summary = (
        "torch.distributed (gloo/nccl): the cell calls init_process_group() itself; every "
        "torchrun, PyTorchJob and TrainJob variable is set"
    )
    module = "torch"
    warm_modules = ("torch", "torch.distributed")
    extra = "pytorch"
    kubeflow = KubeflowKind(
        "PyTorchJob", "pytorchjobs", "pytorchReplicaSpecs", "pytorch", 23456, "pytorchjob-port"
    )
    v2_runtime = "torch-distributed"
    default_image = "docker.io/pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
    reserved_env = frozenset(TORCHRUN_ENV) - {"TORCH_NCCL_ASYNC_ERROR_HANDLING"} | set(PET_ENV)
    fast_exit_modules = ("torch",)
    elastic = True
    env_aliases = {
        "RANK": ("PET_NODE_RANK",),
        "WORLD_SIZE": ("PET_NNODES",),
        "MASTER_ADDR": ("PET_MASTER_ADDR",),
        "MASTER_PORT": ("PET_MASTER_PORT",),
    }

    def local_env(self, place: Placement) -> dict[str, str]:
        env = super().local_env(place)
        env.update(
            GROUP_RANK=str(place.node_rank),
            ROLE_RANK=str(place.rank),
            ROLE_NAME=ROLE_NAME,
            ROLE_WORLD_SIZE=str(place.world_size),
            GROUP_WORLD_SIZE=str(place.nnodes),
            TORCHELASTIC_RUN_ID=place.job_id,
            TORCHELASTIC_RESTART_COUNT=str(place.restart_count),
            TORCHELASTIC_MAX_RESTARTS=str(place.max_restarts),
            # No agent store here: rank 0 hosts the TCPStore, as env:// expects.
            TORCHELASTIC_USE_AGENT_STORE="False",
            PET_NNODES=str(place.nnodes),
            PET_NPROC_PER_NODE=str(place.nproc_per_node),
            PET_NODE_RANK=str(place.node_rank),
            PET_MASTER_ADDR=place.master_addr,
            PET_MASTER_PORT=str(place.master_port),
        )
        env.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        return env

    def v1_spec_fields(self, nproc_per_worker: int) -> dict[str, object]:
        return {"nprocPerNode": str(nproc_per_worker)}

    def complete_env(self, env: MutableMapping[str, str]) -> None:
        """A pod's names, completed to torchrun's whole set (a PyTorchJob pod has no
        ``GROUP_RANK``, a TrainJob node only ``PET_*``), so launcher-detecting trainers
        see one consistent launcher everywhere."""
        nproc = env.get("PET_NPROC_PER_NODE", "")
        if "LOCAL_WORLD_SIZE" not in env and nproc.isdigit():
            env["LOCAL_WORLD_SIZE"] = nproc
        super().complete_env(env)
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        per_node = max(1, int(env["LOCAL_WORLD_SIZE"]))
        env.setdefault("GROUP_RANK", str(rank // per_node))
        env.setdefault("ROLE_RANK", str(rank))
        env.setdefault("ROLE_NAME", ROLE_NAME)
        env.setdefault("ROLE_WORLD_SIZE", str(world))
        env.setdefault("GROUP_WORLD_SIZE", str(max(1, world // per_node)))
        env.setdefault("TORCHELASTIC_RUN_ID", env.get("JUPYTER_TRAINING_JOB_ID", "none"))
        env.setdefault("TORCHELASTIC_RESTART_COUNT", "0")
        env.setdefault("TORCHELASTIC_MAX_RESTARTS", "0")
        env.setdefault("TORCHELASTIC_USE_AGENT_STORE", "False")

    @contextlib.contextmanager
    def around_cell(self) -> Iterator[None]:
        yield
        leave_torch_group()

    def pod_processes(self, env: Mapping[str, str]) -> int:
        """``nprocPerNode`` / ``numProcPerNode``: the operator sets PET_NPROC_PER_NODE and
        expects torchrun as the command; our runtime plays torchrun's part."""
        nproc = env.get("PET_NPROC_PER_NODE", "")
        if "LOCAL_RANK" in env or not nproc.isdigit():
            return 1
        return int(nproc)

    def pod_node(self, env: Mapping[str, str]) -> tuple[int, int]:
        node = env.get("PET_NODE_RANK") or env.get("RANK") or "0"
        return int(node), int(env.get("PET_NNODES") or "1")


def leave_torch_group() -> None:
    """Leave an initialised torch.distributed group so peers are not left waiting."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


FRAMEWORK = PyTorch()
