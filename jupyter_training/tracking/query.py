"""``runs()`` and ``run(ID)``: the job history as runs to compare.

``runs()`` reads only the columns a table needs (never cells or specs), so a
10,000-job store lists in well under 100 ms; rows use MLflow's column names
(``params.lr``, ``metrics.loss``, ``tags.team``). It returns a pandas
DataFrame when pandas is installed, else a list of dicts.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..events import TERMINAL_PHASES
from ..store import RUN_COLUMNS, JobNotFound, JobRecord, JobStore
from .where import parse_sort, parse_where, sort_rows

#: The fixed columns of a runs table, in order (params., metrics., tags. follow).
BASE_COLUMNS = (
    "id",
    "name",
    "phase",
    "framework",
    "backend",
    "workers",
    "created",
    "duration",
    "sweep",
    "parent_id",
)
_INDEX = {name: i for i, name in enumerate(RUN_COLUMNS)}
_NESTED = ("params", "metrics", "tags")
_EMPTY: dict[str, Any] = {}


class RunNotFound(JobNotFound):
    """No job has this id or name."""


class RunRow:
    """One job as a runs-table row: ``row.get("params.lr")``, ``row["id"]``, ``row.to_dict()``."""

    __slots__ = ("now", "raw")

    def __init__(self, raw: list[Any], now: float) -> None:
        self.raw = raw
        self.now = now

    def get(self, column: str, default: Any = None) -> Any:
        prefix, dot, key = column.partition(".")
        if dot and prefix in _NESTED:
            return (self.raw[_INDEX[prefix]] or {}).get(key, default)
        if column == "duration":
            return self.duration
        index = _INDEX.get(column)
        return default if index is None else self.raw[index]

    def __getitem__(self, column: str) -> Any:
        return self.get(column)

    def has_tag(self, key: str, value: str | None) -> bool:
        tags = self.raw[_INDEX["tags"]] or {}
        return key in tags if value is None else tags.get(key) == value

    @property
    def duration(self) -> float | None:
        started, finished = self.raw[_INDEX["started"]], self.raw[_INDEX["finished"]]
        if started is None:
            return None
        if finished is not None:
            return finished - started
        return None if self.raw[_INDEX["phase"]] in TERMINAL_PHASES else self.now - started

    def to_dict(self) -> dict[str, Any]:
        """The flat row: fixed columns, ``notebook``, ``params.*``, ``metrics.*``, ``tags.*``."""
        row = {column: self.get(column) for column in (*BASE_COLUMNS, "notebook")}
        for prefix in _NESTED:
            for key, value in (self.raw[_INDEX[prefix]] or {}).items():
                row[f"{prefix}.{key}"] = value
        return row


def run_rows(
    store: JobStore,
    *,
    name: str | None = None,
    phase: str | Iterable[str] | None = None,
    tag: str | Mapping[str, str] | None = None,
    notebook: str | None = None,
    since: Any = None,
    until: Any = None,
    where: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
    sweep: str | None = None,
    name_contains: str | None = None,
    backend: str | None = None,
) -> list[RunRow]:
    """Run rows (see :func:`runs`), filtered and sorted (``name_contains``: a
    case-insensitive substring, as the sidebar's filter box)."""
    backfill_local(store)
    clauses, params = [], []
    if name is not None:
        clauses.append("name GLOB ?" if _is_glob(name) else "name = ?")
        params.append(name)
    if name_contains is not None:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("name LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    if backend is not None:
        clauses.append("backend = ?")
        params.append(backend)
    if phase is not None:
        phases = [phase] if isinstance(phase, str) else list(phase)
        clauses.append(f"phase IN ({', '.join('?' for _ in phases)})")
        params.extend(phases)
    if notebook is not None:
        clauses.append("notebook GLOB ?" if _is_glob(notebook) else "notebook = ?")
        params.append(notebook)
    if sweep is not None:
        clauses.append("sweep = ?")
        params.append(sweep)
    for column, bound, test in (("created", since, ">="), ("created", until, "<")):
        if bound is not None:
            clauses.append(f"{column} {test} ?")
            params.append(_timestamp(bound, "since" if test == ">=" else "until"))
    sql_where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    matches = parse_where(where) if where else None
    ordering = parse_sort(sort) if sort else None
    tags = _tag_filter(tag)
    now = time.time()
    rows = [RunRow(raw, now) for raw in store.run_rows(sql_where, tuple(params))]
    if tags:
        rows = [r for r in rows if all(r.has_tag(k, v) for k, v in tags.items())]
    if matches is not None:
        rows = [r for r in rows if matches(r)]
    if ordering is not None:
        rows = sort_rows(rows, *ordering)
    return rows[:limit] if limit is not None else rows


def runs(
    name: str | None = None,
    *,
    phase: str | Iterable[str] | None = None,
    tag: str | Mapping[str, str] | None = None,
    notebook: str | None = None,
    since: Any = None,
    until: Any = None,
    where: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
    sweep: str | None = None,
    store: JobStore | None = None,
) -> Any:
    """Every job as a run, newest first: a pandas DataFrame (a list of dicts without pandas).

    Columns: ``id, name, phase, framework, backend, workers, created, duration,
    sweep`` then ``params.<name>``, ``metrics.<name>`` (final rank-0 values) and
    ``tags.<name>``. ``name`` and ``notebook`` take glob patterns (``"lr-*"``);
    ``tag`` is ``"key=value"``, ``"key"`` or a dict; ``since``/``until`` a
    datetime, epoch seconds or ISO text; ``where`` conditions such as
    ``"params.lr>0.01 and metrics.loss<0.5"``; ``sort`` a column, ``-`` first
    for descending; ``sweep`` a sweep's id or name (its trials only). Finished
    local jobs whose history was never stored (nobody followed them) are read
    back from their files first.
    """
    store = store or default_store()
    rows = run_rows(
        store,
        sweep=store.get_sweep(sweep).id if sweep is not None else None,
        name=name,
        phase=phase,
        tag=tag,
        notebook=notebook,
        since=since,
        until=until,
        where=where,
        sort=sort,
        limit=limit,
    )
    return as_table(rows)


def as_table(rows: list[RunRow]) -> Any:
    """``rows`` as a DataFrame with the fixed columns first, or a list of dicts without pandas."""
    try:
        import pandas as pd
    except ImportError:
        return [row.to_dict() for row in rows]
    data: dict[str, list[Any]] = {}
    for column in (*BASE_COLUMNS, "notebook"):
        if column == "duration":
            data[column] = [row.duration for row in rows]
        else:
            index = _INDEX[column]
            data[column] = [row.raw[index] for row in rows]
    for prefix in _NESTED:
        index = _INDEX[prefix]
        dicts = [row.raw[index] or _EMPTY for row in rows]
        for key in sorted(set().union(*dicts)):
            data[f"{prefix}.{key}"] = [values.get(key) for values in dicts]
    frame = pd.DataFrame(data)
    frame["created"] = pd.to_datetime(frame["created"], unit="s", utc=True)
    return frame


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _tag_filter(tag: str | Mapping[str, str] | None) -> dict[str, str | None]:
    if tag is None:
        return {}
    if isinstance(tag, Mapping):
        return dict(tag)
    key, sep, value = tag.partition("=")
    return {key: value if sep else None}


def _timestamp(value: Any, argument: str) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.astimezone()
        return value.timestamp()
    if isinstance(value, str):
        try:
            return _timestamp(_dt.datetime.fromisoformat(value), argument)
        except ValueError:
            pass
    raise ValueError(
        f"{argument}: {value!r} is not a time; give a datetime, epoch seconds or ISO text "
        "such as '2026-12-01' or '2026-12-01T09:30'"
    )


# -- one run -------------------------------------------------------------------------------------


class Run:
    """One job as a run: its params, final metrics, tags, context, artifacts and history."""

    def __init__(self, record: JobRecord, store: JobStore) -> None:
        self.record = record
        self.store = store

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.name!r} {self.phase}>"

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def phase(self) -> str:
        return self.record.phase

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.record.params or {})

    @property
    def metrics(self) -> dict[str, float]:
        """Rank 0's final value of each metric."""
        return dict(self.record.metrics or {})

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.record.tags or {})

    @property
    def context(self) -> dict[str, Any]:
        """Cell hash, notebook, package versions, host or cluster."""
        return dict(self.record.context or {})

    @property
    def cell(self) -> str:
        return self.record.cell

    @property
    def metric_names(self) -> list[str]:
        """Every metric any rank reported, in the order first reported."""
        return list(self.store.metric_names(self.id))

    @property
    def artifacts(self) -> list[Path]:
        """The files the cell wrote under ``artifacts_dir()`` (local jobs; [] elsewhere)."""
        location = self.record.artifacts
        if not location or location.startswith("pvc://"):
            return []
        root = Path(location)
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []

    def history(self, metric: str, rank: int | None = None) -> Any:
        """Every point of ``metric``: columns ``rank, step, value, time`` (a DataFrame with
        pandas, else a list of dicts), by rank then time; only ``rank``'s when given."""
        known = self.store.metric_names(self.id)
        if metric not in known:
            reported = ", ".join(known) or "none"
            raise KeyError(
                f"metric {metric!r} was never reported by job {self.id} ({self.name}); "
                f"it reported: {reported}"
            )
        if rank is not None and rank not in known[metric]:
            ranks = ", ".join(str(r) for r in known[metric])
            raise KeyError(f"rank {rank} never reported {metric!r}; ranks that did: {ranks}")
        rows = self.store.history(self.id, metric, rank)
        try:
            import pandas as pd
        except ImportError:
            return [dict(zip(("rank", "step", "value", "time"), row, strict=True)) for row in rows]
        frame = pd.DataFrame(rows, columns=["rank", "step", "value", "time"])
        frame["step"] = frame["step"].astype("Int64")
        return frame


def resolve(store: JobStore, ref: str) -> JobRecord:
    """The job with id (or unique id prefix) ``ref``, else the newest job named ``ref``."""
    try:
        return store.get(ref)
    except JobNotFound:
        record = store.newest_named(ref)
        if record is None:
            raise RunNotFound(
                f"{ref!r} is neither a job id nor a job name; `%train_jobs` lists both"
            ) from None
        return record


def run(ref: str, *, store: JobStore | None = None) -> Run:
    """One job as a :class:`Run`, by id, id prefix or name (the newest job of that name)."""
    store = store or default_store()
    record = resolve(store, ref)
    if record.is_terminal and not record.history_done and record.backend == "local":
        backfill(store, record)
        record = store.get(record.id)
    return Run(record, store)


# -- history of jobs nobody followed ----------------------------------------------------------


def backfill(store: JobStore, record: JobRecord) -> None:
    """Store the history of a finished local job from its files (nobody followed it live),
    and log it to MLflow when a tracking URI is configured."""
    from ..backends.local.files import JobFiles
    from ..settings import load_settings
    from .recorder import RunRecorder

    files = JobFiles(store.path.parent / "jobs" / record.id)
    if not files.root.is_dir():
        store.update(record.id, history_done=1)
        return
    recorder = RunRecorder(store, record.id, mlflow_uri=load_settings().mlflow_uri)
    for event in files.follow(record.id, record.world_size, follow=False):
        recorder.feed(event)
    recorder.close(complete=True)


def backfill_local(store: JobStore) -> None:
    """:func:`backfill` every finished local job whose history is missing."""
    for job_id in store.unrecorded(backend="local"):
        backfill(store, store.get(job_id))


def default_store() -> JobStore:
    """The store of this kernel's settings (``c.TrainingApp.store_dir``), as the magics use."""
    from ..settings import load_settings

    config = None
    try:
        from IPython import get_ipython

        config = getattr(get_ipython(), "config", None)
    except ImportError:
        pass
    return JobStore(load_settings(config).store_path)
