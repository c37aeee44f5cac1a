"""Where this worker sits in the job: rank, world size, local rank.

Stdlib-only and read from the Kubeflow env contract, so the same calls work in
a local worker, a Kubeflow v1 job's pod and a TrainJob pod.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from .. import frameworks


def complete_env(
    environ: MutableMapping[str, str] | None = None, framework: str = "pytorch"
) -> None:
    """Fill in contract variables a platform left out, as ``framework`` defines them.

    A TrainJob pod gets ``PET_*`` (torch), ``DMLC_*`` (xgboost) or ``JAX_*``
    names only, a PyTorchJob pod no ``LOCAL_RANK``, a TFJob pod only
    ``TF_CONFIG``. After this every worker has ``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT`` and ``LOCAL_RANK``, and the framework's own
    launcher names as well.
    """
    frameworks.get(framework).complete_env(os.environ if environ is None else environ)


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
