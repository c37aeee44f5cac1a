"""Plain data: the values a run may keep as params (stdlib-only, shared with the kernel side).

Numbers, strings, bools, None, and short lists, tuples and dicts of those; a
value must also print short. Anything else (arrays, models, data frames) is
not a param: it is never pickled into the job history.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Longest param value, as JSON (MLflow keeps 6,000 characters; a table cell far fewer).
MAX_VALUE_CHARS = 500
#: Most items of a list, tuple or dict param.
MAX_ITEMS = 32
_SCALARS = (bool, int, float, str, type(None))


def plain_value(value: Any) -> tuple[bool, Any]:
    """``(True, json-ready value)`` when ``value`` is plain data, else ``(False, None)``."""
    if not _is_plain(value, depth=0):
        return False, None
    data = _jsonable(value)
    try:
        text = json.dumps(data, allow_nan=True)
    except (TypeError, ValueError):
        return False, None
    return len(text) <= MAX_VALUE_CHARS, data


def _is_plain(value: Any, depth: int) -> bool:
    if type(value) in _SCALARS:
        return not (isinstance(value, str) and len(value) > MAX_VALUE_CHARS)
    if depth >= 2 or type(value) not in (list, tuple, dict) or len(value) > MAX_ITEMS:
        return False
    if isinstance(value, dict):
        return all(type(k) is str and _is_plain(v, depth + 1) for k, v in value.items())
    return all(_is_plain(item, depth + 1) for item in value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no nan/inf; keep what it was readable
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value
