"""What runs inside every worker, local process or pod.

Stdlib-only: a stock PyTorch, XGBoost, JAX or TensorFlow image needs nothing else. Cell code may
use :func:`rank`, :func:`world_size`, :func:`local_rank`, :func:`is_main` and
:func:`report`, :func:`log_params`, :func:`artifacts_dir` and the checkpoint helpers
(:func:`checkpoint_dir`, :func:`save_checkpoint`, :func:`latest_checkpoint`,
:func:`restart_count`).
"""

from .checkpoints import (
    Checkpoint,
    checkpoint_dir,
    latest_checkpoint,
    restart_count,
    save_checkpoint,
)
from .context import is_main, local_rank, rank, world_size
from .reporting import artifacts_dir, log_params, report

__all__ = [
    "Checkpoint",
    "artifacts_dir",
    "checkpoint_dir",
    "is_main",
    "latest_checkpoint",
    "local_rank",
    "log_params",
    "rank",
    "report",
    "restart_count",
    "save_checkpoint",
    "world_size",
]
