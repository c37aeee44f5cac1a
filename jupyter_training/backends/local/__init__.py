"""The embedded default backend: jobs run as processes on this machine.

* :mod:`.backend`: :class:`LocalBackend`, what the front ends call.
* :mod:`.files`: :class:`~.files.JobFiles`, a job's directory and its tailing into events.
* :mod:`.supervisor`: the detached per-job supervisor program
  (``python -m jupyter_training.backends.local.supervisor``; the backend starts it
  through ``supervisor.BOOT``, which forks before importing).
* :mod:`.host`: small helpers about this machine (GPUs, ports, processes).

:class:`LocalBackend` loads on first use, so the supervisor process, which
imports this package, stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import LocalBackend

__all__ = ["LocalBackend"]


def __getattr__(name: str) -> Any:
    if name == "LocalBackend":
        from .backend import LocalBackend

        return LocalBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
