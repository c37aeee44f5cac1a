"""The search space: ``--param lr=loguniform(1e-4,1e-1)`` and friends, parsed and checked.

Stdlib-only (the spec of a sweep is checked before Optuna is imported); the
Optuna distributions are made in :mod:`jupyter_training.sweeps.study`.
"""

from __future__ import annotations

import ast
import dataclasses
import math
from typing import Any

from ..spec import SpecError

#: Distribution name -> what it takes, for messages.
DISTRIBUTIONS = {
    "uniform": "uniform(LOW,HIGH)",
    "loguniform": "loguniform(LOW,HIGH) with LOW > 0",
    "int": "int(LOW,HIGH) or int(LOW,HIGH,STEP)",
    "choice": "choice(V1,V2,...)",
}
_EXAMPLE = "--param lr=loguniform(1e-4,1e-1)"


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched name: ``kind`` is a key of :data:`DISTRIBUTIONS`."""

    name: str
    kind: str
    args: tuple[Any, ...]

    def text(self) -> str:
        """As the user wrote it: ``lr=loguniform(0.0001,0.1)``."""
        return f"{self.name}={self.kind}({','.join(repr(a) for a in self.args)})"

    def grid(self) -> list[Any] | None:
        """Every value, for a grid search; None for a continuous range."""
        if self.kind == "choice":
            return list(self.args)
        if self.kind == "int":
            low, high, step = (*self.args, 1)[:3]
            return list(range(low, high + 1, step))
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "args": list(self.args)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Param:
        return cls(data["name"], data["kind"], tuple(data["args"]))


def parse_param(text: str) -> Param:
    """``NAME=DIST(ARGS)`` -> :class:`Param`; raises ``SpecError("--param")``."""
    name, sep, rest = text.partition("=")
    name, rest = name.strip(), rest.strip()
    if not sep or not name.isidentifier() or not rest:
        raise SpecError("--param", f"{text!r} is not NAME=DISTRIBUTION (for example {_EXAMPLE})")
    if name.startswith("_"):
        raise SpecError("--param", f"{name!r}: a searched name may not start with '_'")
    try:
        call = ast.parse(rest, mode="eval").body
    except SyntaxError:
        call = None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)) or call.keywords:
        raise SpecError("--param", f"{text!r}: {rest!r} is not a distribution; {_known()}")
    kind = call.func.id
    if kind not in DISTRIBUTIONS:
        raise SpecError("--param", f"{name}: unknown distribution {kind!r}; {_known()}")
    try:
        args = tuple(ast.literal_eval(arg) for arg in call.args)
    except ValueError:
        raise SpecError(
            "--param", f"{name}: {kind}() takes literal values only (numbers, strings)"
        ) from None
    _check(name, kind, args)
    return Param(name, kind, args)


def parse_params(texts: list[str]) -> list[Param]:
    """Every ``--param``; a name given twice is an error."""
    params = [parse_param(text) for text in texts]
    if not params:
        raise SpecError("--param", f"a sweep needs at least one (for example {_EXAMPLE})")
    seen: set[str] = set()
    for param in params:
        if param.name in seen:
            raise SpecError("--param", f"{param.name!r} is given twice")
        seen.add(param.name)
    return params


def _check(name: str, kind: str, args: tuple[Any, ...]) -> None:
    usage = f"{name}: use {DISTRIBUTIONS[kind]}"
    if kind == "choice":
        if not args:
            raise SpecError("--param", f"{usage}, with at least one value")
        for value in args:
            if value is not None and not isinstance(value, bool | int | float | str):
                raise SpecError("--param", f"{usage}: {value!r} is not a number or string")
        if len(set(map(repr, args))) != len(args):
            raise SpecError("--param", f"{usage}: a value is given twice")
        return
    if kind == "int":
        if len(args) not in (2, 3) or not all(_is_int(a) for a in args):
            raise SpecError("--param", f"{usage}, whole numbers")
        if len(args) == 3 and args[2] < 1:
            raise SpecError("--param", f"{usage}: STEP must be at least 1")
    elif len(args) != 2 or not all(_is_number(a) for a in args):
        raise SpecError("--param", f"{usage}, two numbers")
    low, high = args[0], args[1]
    if not low < high:
        raise SpecError("--param", f"{name}: {kind}({low},{high}) is empty; LOW must be < HIGH")
    if kind == "loguniform" and low <= 0:
        raise SpecError("--param", f"{name}: loguniform needs LOW > 0, got {low}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _known() -> str:
    return "use one of " + ", ".join(DISTRIBUTIONS.values())
