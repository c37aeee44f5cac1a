"""Backends: where jobs run. ``local`` (embedded default) and ``kubernetes``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..settings import TrainingSettings
    from ..store import JobStore
    from .base import Backend


def make_backend(name: str, store: JobStore, settings: TrainingSettings) -> Backend:
    """The backend called ``name``; raises SubmitError naming the known ones."""
    from .base import SubmitError

    if name == "local":
        from .local import LocalBackend

        return LocalBackend(store, settings)
    if name == "kubernetes":
        try:
            from .kubernetes.backend import KubernetesBackend
        except ImportError as err:
            raise SubmitError(
                f"--backend kubernetes needs the kubernetes client ({err}): "
                "pip install 'jupyter-training[kubernetes]'"
            ) from None
        return KubernetesBackend(store, settings)
    raise SubmitError(f"--backend: {name!r} is not one of local, kubernetes")
