"""``--where 'params.lr>0.01 and metrics.loss<0.5'`` and ``--sort -metrics.loss`` for run tables.

Conditions compare one column of a run row (``name``, ``phase``, ``workers``,
``params.<name>``, ``metrics.<name>``, ``tags.<name>``, ...) with a number or a
word, joined by ``and`` (MLflow's search filters work the same way). Numbers
compare as numbers; anything else compares as text. A run without the column
never matches.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "==": operator.eq,
    "=": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
_CONDITION = re.compile(
    r"""^\s*(?P<column>[A-Za-z_][\w]*(\.[\w./:-]+)?)\s*(?P<op>>=|<=|!=|==|=|>|<)\s*
    (?P<value>"[^"]*"|'[^']*'|[^\s"']+)\s*$""",
    re.VERBOSE,
)
_AND = re.compile(r"\s+and\s+|\s*&&\s*", re.IGNORECASE)

Row = Mapping[str, Any]

#: The run filters ``%train_jobs`` and ``jupyter training list`` share: (flag, help).
FILTER_FLAGS = (
    ("--name", "Only jobs with this name (a glob: 'lr-*')."),
    ("--notebook", "Only jobs of this notebook (a glob)."),
    ("--tag", "Only jobs with this tag (KEY=VALUE or KEY)."),
    ("--where", "Conditions such as 'params.lr>0.01 and metrics.loss<0.5' (quote them)."),
    ("--sort", "Order by a column, '-' first for descending: metrics.loss, --sort=-params.lr."),
)


def filter_values(args: Any, clean: Callable[[Any], Any] = lambda value: value) -> dict[str, Any]:
    """The :data:`FILTER_FLAGS` values of parsed ``args`` (each through ``clean``), by name."""
    return {flag[2:]: clean(getattr(args, flag[2:])) for flag, _ in FILTER_FLAGS}


class WhereError(ValueError):
    """A ``--where`` or ``--sort`` that does not parse; the message names the flag."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"{flag}: {message}")
        self.flag = flag


def parse_where(text: str, flag: str = "--where") -> Callable[[Row], bool]:
    """A predicate over run rows for ``text``; raises :class:`WhereError`."""
    conditions = []
    for part in _AND.split(text.strip()):
        match = _CONDITION.match(part)
        if match is None:
            raise WhereError(
                flag,
                f"cannot read {part.strip()!r}: write COLUMN OP VALUE joined by 'and', e.g. "
                '"params.lr>0.01 and metrics.loss<0.5" (OP is one of = != < <= > >=)',
            )
        value, column = match["value"], match["column"]
        quoted = value[0] in "\"'"
        expected = value[1:-1] if quoted else _number(value)
        if column in _TIME_COLUMNS and isinstance(expected, str):
            expected = _epoch(flag, column, expected)
        conditions.append((column, _OPERATORS[match["op"]], expected))

    def matches(row: Row) -> bool:
        return all(_compare(row.get(column), test, value) for column, test, value in conditions)

    return matches


def parse_sort(text: str, flag: str = "--sort") -> tuple[str, bool]:
    """``"-metrics.loss"`` -> ``("metrics.loss", True)`` (descending)."""
    descending = text.startswith("-")
    column = text.lstrip("-+").strip()
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[\w./:-]+)?", column):
        raise WhereError(
            flag, f"{text!r} is not a column: use e.g. metrics.loss, -metrics.accuracy, created"
        )
    return column, descending


def sort_rows(rows: list[Any], column: str, descending: bool) -> list[Any]:
    """``rows`` (anything with ``.get(column)``) ordered by ``column`` (numbers before text;
    rows without it last)."""
    keyed = [(row.get(column), row) for row in rows]
    present = [item for item in keyed if item[0] is not None]
    missing = [row for value, row in keyed if value is None]
    present.sort(key=lambda item: _sort_key(item[0]), reverse=descending)
    return [row for _, row in present] + missing


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (1, str(value))
    if isinstance(value, int | float):
        return (0, value)
    return (1, str(value))


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return {"true": True, "false": False, "none": None}.get(text.lower(), text)


_TIME_COLUMNS = ("created",)


def _epoch(flag: str, column: str, text: str) -> float:
    import datetime

    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise WhereError(
            flag, f"{column} compares with a date or time, e.g. {column}>2026-12-01T09:30"
        ) from None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def _compare(actual: Any, test: Callable[[Any, Any], bool], expected: Any) -> bool:
    try:
        return _compared(actual, test, expected)
    except TypeError:  # e.g. a bool against a list: no order between them, no match
        return False


def _compared(actual: Any, test: Callable[[Any, Any], bool], expected: Any) -> bool:
    if actual is None:
        return expected is None and test is operator.eq
    if isinstance(expected, bool) and isinstance(actual, str):  # tags are text: true = "true"
        return test(actual.lower(), str(expected).lower())
    numeric = isinstance(expected, int | float) and not isinstance(expected, bool)
    if numeric and isinstance(actual, str):
        try:
            actual = float(actual)
        except ValueError:
            return test is operator.ne
    if numeric and isinstance(actual, int | float):
        return test(actual, expected)
    if isinstance(expected, bool) or expected is None:
        return test(actual, expected)
    return test(str(actual), str(expected))
