"""What a sweep's trials will report, read from the cell before any trial starts.

``--objective acc`` on a cell whose every ``report()`` names only ``loss``
would run the whole sweep for nothing; the calls are read from the cell and
the notebook functions it ships, and the sweep is refused at once. When a
call's names cannot be known (``report(**metrics)``, ``report`` passed
around, no ``report`` in sight but code from ``--files``), nothing is refused
here and the first finished trial decides instead.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from ..spec import SpecError

_NOT_METRICS = frozenset({"step", "total"})


def reported_metrics(sources: Iterable[str]) -> set[str] | None:
    """The metric names the ``report()`` calls in ``sources`` pass, or None if unknowable."""
    names: set[str] = set()
    seen_call = False
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return None
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _is_report(node.func):
                seen_call = True
                if any(keyword.arg is None for keyword in node.keywords):  # **metrics
                    return None
                names.update(k.arg for k in node.keywords if k.arg not in _NOT_METRICS)
            elif _is_report(node) and not _called(tree, node):
                return None  # report handed to other code: its names are unknowable
    return names if seen_call else None


def check_objective(metric: str, sources: Iterable[str]) -> None:
    """Refuse ``--objective metric`` when the cell certainly never reports it."""
    names = reported_metrics(sources)
    if names is None or metric in names:
        return
    listed = ", ".join(sorted(names)) or "no metric"
    raise SpecError(
        "--objective",
        f"the cell never reports {metric!r} (its report() calls give {listed}); report it, "
        f"e.g. jupyter_training.report(step=i, {metric}=value), or optimize one of those",
    )


def _is_report(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "report"
    return isinstance(node, ast.Attribute) and node.attr == "report"


def _called(tree: ast.AST, target: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and n.func is target for n in ast.walk(tree))
