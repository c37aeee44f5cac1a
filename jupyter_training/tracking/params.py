"""A run's params: the magic's flags and the plain notebook values its cell read.

``log_params()`` inside the cell adds more (and wins); see
:mod:`jupyter_training.runtime.params` for what counts as plain data. Secret
values never appear: ``--secret-env`` contributes names only to the spec and
nothing here, and ``--env`` values are left out too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..runtime.params import plain_value
from ..spec import JobSpec

#: Flags that are params whatever their value (they change what a run computes).
_ALWAYS = ("framework", "workers", "gpus", "nproc_per_worker", "backend")
#: Flags that are params when given (their default says nothing).
_WHEN_SET = ("max_restarts", "timeout")
_KUBERNETES_WHEN_SET = ("image", "cpu", "memory", "api", "runtime")
#: Every name a flag param may have (the rest of a run's params are notebook values).
FLAG_PARAMS = frozenset((*_ALWAYS, *_WHEN_SET, *_KUBERNETES_WHEN_SET))
_SECRET_NAME = re.compile(r"token|secret|passw|api_?key|credential|private_?key", re.IGNORECASE)


def flag_params(spec: JobSpec) -> dict[str, Any]:
    """The flags of ``spec`` worth comparing runs by."""
    params: dict[str, Any] = {name: getattr(spec, name) for name in _ALWAYS}
    for name in _WHEN_SET:
        value = getattr(spec, name)
        if value:
            params[name] = value
    if spec.backend == "kubernetes":
        for name in _KUBERNETES_WHEN_SET:
            value = getattr(spec.kubernetes, name)
            if value and value != "auto":
                params[name] = value
    return params


def notebook_params(
    namespace: Mapping[str, Any], names: Iterable[str], secrets: Iterable[str] = ()
) -> dict[str, Any]:
    """The plain-data values among the notebook ``names`` a cell read.

    Left out: names that say they hold a secret (``token``, ``password``,
    ``api_key``, ...) and any value holding one of ``secrets`` (the job's
    ``--secret-env`` values).
    """
    hidden = [s for s in secrets if s]
    params = {}
    for name in names:
        if name.startswith("_") or name not in namespace or _SECRET_NAME.search(name):
            continue
        ok, value = plain_value(namespace[name])
        if ok and not any(secret in text for text in _strings(value) for secret in hidden):
            params[name] = value
    return params


def _strings(value: Any) -> Iterable[str]:
    """Every string in a plain value (dict keys too)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)


def cell_hash(cell: str) -> str:
    """The cell source's SHA-256 (hex): equal cells, equal hashes."""
    return hashlib.sha256(cell.encode("utf-8")).hexdigest()
