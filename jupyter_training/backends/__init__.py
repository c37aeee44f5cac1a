"""Backends: where jobs run. ``local`` (embedded default) and ``kubernetes``.

The list is a registry of backend name -> ``"module:Class"``: the built-in
:data:`BUILTIN_BACKENDS`, plus any a package adds under the entry-point group
:data:`ENTRY_POINT_GROUP`, for example in its ``pyproject.toml``::

    [project.entry-points."jupyter_training.backends"]
    slurm = "my_package.slurm:SlurmBackend"

A backend class is called as ``Backend(store, settings)`` and provides the
:class:`~jupyter_training.backends.base.Backend` protocol. A package's entry
point cannot replace a built-in name. Modules load only when their backend is
first made, so the supervisor (which imports this package) stays light.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..settings import TrainingSettings
    from ..store import JobStore
    from .base import Backend

#: The entry-point group where other packages register backends.
ENTRY_POINT_GROUP = "jupyter_training.backends"

#: The backends that ship with jupyter-training.
BUILTIN_BACKENDS: dict[str, str] = {
    "local": "jupyter_training.backends.local:LocalBackend",
    "kubernetes": "jupyter_training.backends.kubernetes.backend:KubernetesBackend",
}

#: What to install when a built-in backend's module cannot be imported.
_MISSING_CLIENT = {
    "kubernetes": (
        "--backend kubernetes needs the kubernetes client ({err}): "
        "pip install 'jupyter-training[kubernetes]'"
    ),
}


def backend_names() -> tuple[str, ...]:
    """The ``--backend`` values: the built-ins, then the installed packages' (read once)."""
    return tuple(_registry())


def backend_registry() -> dict[str, str]:
    """Every known backend: name -> ``"module:Class"`` (built-ins first)."""
    return dict(_registry())


@functools.cache
def _registry() -> dict[str, str]:
    from importlib.metadata import entry_points

    registry = dict(BUILTIN_BACKENDS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        registry.setdefault(entry.name, entry.value)
    return registry


def make_backend(name: str, store: JobStore, settings: TrainingSettings) -> Backend:
    """The backend called ``name``; raises SubmitError naming the known ones."""
    import importlib

    from .base import SubmitError

    registry = backend_registry()
    target = registry.get(name)
    if target is None:
        raise SubmitError(f"--backend: {name!r} is not one of {', '.join(registry)}")
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise SubmitError(f"--backend {name}: {target!r} is not a 'module:Class' reference")
    try:
        backend_class = importlib.import_module(module_name)
        for part in attribute.split("."):
            backend_class = getattr(backend_class, part)
    except ImportError as err:
        if name in _MISSING_CLIENT:
            raise SubmitError(_MISSING_CLIENT[name].format(err=err)) from None
        raise SubmitError(f"--backend {name}: cannot load {target} ({err})") from err
    except AttributeError as err:
        raise SubmitError(f"--backend {name}: cannot load {target} ({err})") from err
    return backend_class(store, settings)
