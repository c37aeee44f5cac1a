"""The framework registry: one module per framework, found by looking in this package.

Each module (``pytorch``, ``xgboost``, ``jax``, ``tensorflow``, ...) defines a
:class:`~.base.Framework` and exposes it as ``FRAMEWORK``; adding a framework is
adding a module. Nothing else in the project branches on a framework's name:
it asks the descriptor. Stdlib only (the package ships to worker pods).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from .base import COMMON_ENV, Framework, KubeflowKind, Placement

__all__ = [
    "COMMON_ENV",
    "Framework",
    "KubeflowKind",
    "Placement",
    "UnknownFramework",
    "all_frameworks",
    "get",
    "names",
]

_NOT_FRAMEWORKS = frozenset({"base"})


class UnknownFramework(ValueError):
    """A ``--framework`` value no module of this package defines."""


@functools.cache
def _registry() -> dict[str, Framework]:
    found: dict[str, Framework] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_FRAMEWORKS or info.name.startswith("_"):
            continue
        framework = importlib.import_module(f"{__name__}.{info.name}").FRAMEWORK
        found[framework.name] = framework
    return found


def all_frameworks() -> list[Framework]:
    """Every framework, by name."""
    return list(_registry().values())


def names() -> tuple[str, ...]:
    """The ``--framework`` values, by name."""
    return tuple(_registry())


def get(name: object) -> Framework:
    """The framework called ``name`` (or one of its aliases); raises :class:`UnknownFramework`."""
    registry = _registry()
    if isinstance(name, str):
        key = name.strip().lower()
        if key in registry:
            return registry[key]
        for framework in registry.values():
            if key in framework.aliases:
                return framework
    raise UnknownFramework(
        f"{name!r} is not a framework this installation knows; use one of "
        f"{', '.join(registry)} (for example --framework pytorch)"
    )
