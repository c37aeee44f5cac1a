"""Where this worker sits in the job: rank, world size, local rank.

Stdlib-only and read from the Kubeflow env contract, so the same calls work in
a local worker, a PyTorchJob/XGBoostJob pod and a TrainJob pod.
"""

from __future__ import annotations

import os


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
