"""jupyter-training: run a notebook cell as a distributed PyTorch, XGBoost, JAX or TF job.

Entry points and public names only; heavy modules load on first use so that
worker processes importing :func:`rank` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .runtime import (
    Checkpoint,
    artifacts_dir,
    checkpoint_dir,
    is_main,
    latest_checkpoint,
    local_rank,
    log_params,
    rank,
    report,
    restart_count,
    save_checkpoint,
    world_size,
)

if TYPE_CHECKING:
    from .client import TrainingClient
    from .spec import JobSpec, SpecError

__version__ = "0.1.0"
__all__ = [
    "Checkpoint",
    "JobSpec",
    "SpecError",
    "TrainingClient",
    "__version__",
    "artifacts_dir",
    "checkpoint_dir",
    "is_main",
    "latest_checkpoint",
    "load_ipython_extension",
    "local_rank",
    "log_params",
    "rank",
    "report",
    "restart_count",
    "run",
    "runs",
    "save_checkpoint",
    "world_size",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_training``: register the training magics."""
    from .magics import TrainingMagics

    ipython.register_magics(TrainingMagics)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The server extension (``TrainingApp``), found by jupyter_server."""
    from .server.app import TrainingApp

    return [{"module": "jupyter_training.server.app", "app": TrainingApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab sidebar shipped in the wheel."""
    return [{"src": "labextension", "dest": "jupyter-training"}]


#: Public names loaded on first use: a worker importing :func:`rank` pays for none of them.
_LAZY = {
    "TrainingClient": ".client",
    "JobSpec": ".spec",
    "SpecError": ".spec",
    "runs": ".tracking",
    "run": ".tracking",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'jupyter_training' has no attribute {name!r}")
