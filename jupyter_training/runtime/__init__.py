"""What runs inside every worker, local process or pod.

Stdlib-only: a stock PyTorch, XGBoost, JAX or TensorFlow image needs nothing else. Cell code may
use :func:`rank`, :func:`world_size`, :func:`local_rank`, :func:`is_main` and
:func:`report`.
"""

from .context import is_main, local_rank, rank, world_size
from .reporting import report

__all__ = ["is_main", "local_rank", "rank", "report", "world_size"]
