"""What runs inside every worker, local process or pod.

Stdlib-only: a stock PyTorch, XGBoost, JAX or TensorFlow image needs nothing else. Cell code may
use :func:`rank`, :func:`world_size`, :func:`local_rank`, :func:`is_main` and
:func:`report`, :func:`log_params` and :func:`artifacts_dir`.
"""

from .context import is_main, local_rank, rank, world_size
from .reporting import artifacts_dir, log_params, report

__all__ = ["artifacts_dir", "is_main", "local_rank", "log_params", "rank", "report", "world_size"]
