"""Where this worker sits in the job: rank, world size, local rank.

Stdlib-only and read from the Kubeflow env contract, so the same calls work in
a local worker, a PyTorchJob/XGBoostJob pod and a TrainJob pod.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: Contract names and the Trainer v2 names that carry the same value.
_ALIASES = {
    "RANK": ("PET_NODE_RANK", "DMLC_TASK_ID"),
    "WORLD_SIZE": ("PET_NNODES", "DMLC_NUM_WORKER"),
    "MASTER_ADDR": ("PET_MASTER_ADDR", "DMLC_TRACKER_URI"),
    "MASTER_PORT": ("PET_MASTER_PORT", "DMLC_TRACKER_PORT"),
}
_XGBOOST_ALIASES = {
    "DMLC_TRACKER_URI": ("MASTER_ADDR",),
    "DMLC_TRACKER_PORT": ("MASTER_PORT",),
    "DMLC_TASK_ID": ("RANK",),
    "DMLC_NUM_WORKER": ("WORLD_SIZE",),
}


def complete_env(
    environ: MutableMapping[str, str] | None = None, framework: str = "pytorch"
) -> None:
    """Fill in contract variables a platform left out, from their aliases.

    A TrainJob pod gets ``PET_*`` (torch) or ``DMLC_*`` (xgboost) names only; a
    PyTorchJob pod no ``LOCAL_RANK``. After this every worker has ``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` and ``LOCAL_RANK``, and an
    XGBoost worker the ``DMLC_*`` tracker names as well.
    """
    env = os.environ if environ is None else environ
    aliases_of = dict(_ALIASES, **(_XGBOOST_ALIASES if framework == "xgboost" else {}))
    for name, aliases in aliases_of.items():
        if name not in env:
            for alias in aliases:
                if alias in env:
                    env[name] = env[alias]
                    break
    env.setdefault("LOCAL_RANK", "0")
    env.setdefault("LOCAL_WORLD_SIZE", "1")


def rank() -> int:
    """This worker's global rank (0 when not inside a job)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of workers in the job (1 when not inside a job)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """Rank of this worker among the workers of its node."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on rank 0, the worker that by convention saves, logs and reports."""
    return rank() == 0
