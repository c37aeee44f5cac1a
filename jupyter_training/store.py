"""Job history in SQLite: every job's spec, cell, phase, timestamps, failure, params and metrics.

It lives under the Jupyter data dir by default and outlives kernels, servers
and the cluster's own objects. WAL mode and a busy timeout let a kernel, the
supervisors and the server write concurrently.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .events import PENDING, TERMINAL_PHASES
from .spec import JobSpec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    phase TEXT NOT NULL,
    framework TEXT NOT NULL,
    backend TEXT NOT NULL,
    workers INTEGER NOT NULL,
    gpus INTEGER NOT NULL,
    spec TEXT NOT NULL,
    cell TEXT NOT NULL,
    notebook TEXT,
    workdir TEXT,
    message TEXT NOT NULL DEFAULT '',
    failure TEXT,
    metrics TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    supervisor_pid INTEGER,
    supervisor_start TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created DESC);
-- Every reported point of every rank; (time, seq) come from the worker, so two
-- followers of one job insert the same rows and the second insert is ignored.
CREATE TABLE IF NOT EXISTS metric_points (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    rank INTEGER NOT NULL,
    time REAL NOT NULL,
    seq INTEGER NOT NULL,
    step INTEGER,
    value REAL,  -- NULL: the worker reported nan
    UNIQUE (job_id, name, rank, time, seq)
);
-- A job's points in the order stored (rowid), for exporters reading on from a watermark.
CREATE INDEX IF NOT EXISTS metric_points_job ON metric_points (job_id);
-- Each series thinned for charts (tracking.envelope), kept current by the followers:
-- a chart of ten 100,000-point runs reads ten small rows, not a million points.
CREATE TABLE IF NOT EXISTS metric_previews (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    rank INTEGER NOT NULL,
    points INTEGER NOT NULL,
    x TEXT NOT NULL,
    y TEXT NOT NULL,
    PRIMARY KEY (job_id, name, rank)
);
-- Where a job's run was exported to (one row per target, e.g. an MLflow URI) and who
-- holds the lease to export it: one follower at a time, another after a lapse.
CREATE TABLE IF NOT EXISTS exports (
    job_id TEXT NOT NULL,
    target TEXT NOT NULL,
    run_id TEXT,
    owner TEXT,
    lease REAL NOT NULL DEFAULT 0,
    watermark INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, target)
);
-- A sweep (sweeps/): its options and cell, who drives it, and each trial's outcome;
-- its trials are ordinary jobs whose sweep column holds the sweep's id.
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    phase TEXT NOT NULL,
    spec TEXT NOT NULL,
    cell TEXT NOT NULL,
    notebook TEXT,
    message TEXT NOT NULL DEFAULT '',
    trials TEXT NOT NULL DEFAULT '{}',
    best TEXT,
    driver_pid INTEGER,
    driver_start TEXT,
    created REAL NOT NULL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS sweeps_created ON sweeps (created DESC);
"""

_JSON_FIELDS = ("spec", "failure", "metrics", "params", "tags", "context", "checkpoints")
#: Columns added after the first release, with their SQL types (added on open).
_ADDED_COLUMNS = {
    "metrics": "TEXT",
    "params": "TEXT",
    "tags": "TEXT",
    "context": "TEXT",
    "artifacts": "TEXT",
    "sweep": "TEXT",
    "history_done": "INTEGER NOT NULL DEFAULT 0",
    "parent_id": "TEXT",
    "lineage": "TEXT",
    "checkpoints": "TEXT",
}
#: Columns :meth:`JobStore.run_rows` reads: enough for a runs table, never the cell or spec.
RUN_COLUMNS = (
    "id",
    "name",
    "phase",
    "framework",
    "backend",
    "workers",
    "gpus",
    "notebook",
    "created",
    "started",
    "finished",
    "sweep",
    "parent_id",
    "params",
    "metrics",
    "tags",
)


class JobNotFound(KeyError):
    """No job matches the id or prefix given."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclasses.dataclass
class JobRecord:
    """One job as the store knows it."""

    id: str
    name: str
    phase: str
    framework: str
    backend: str
    workers: int
    gpus: int
    spec: JobSpec
    cell: str
    notebook: str | None = None
    workdir: str | None = None
    message: str = ""
    failure: dict[str, Any] | None = None
    metrics: dict[str, float] | None = None
    #: Flags, plain notebook values the cell read, and ``log_params()`` (see ``tracking``).
    params: dict[str, Any] | None = None
    #: ``--tag key=value`` (and the tags a sweep adds).
    tags: dict[str, str] | None = None
    #: Cell hash, package versions, host or cluster (see ``tracking.context``).
    context: dict[str, Any] | None = None
    #: Where ``artifacts_dir()`` files are kept: a local path or ``pvc://CLAIM/PATH``.
    artifacts: str | None = None
    sweep: str | None = None
    #: 1 once a follower has stored the job's whole metric history.
    history_done: int = 0
    #: The job this one resumed (``%train_resume``), if any.
    parent_id: str | None = None
    #: The first job of the resume chain: it names the checkpoint directory they share.
    lineage: str | None = None
    #: ``save_checkpoint()`` calls seen: ``[{"step", "time"}]``, oldest first.
    checkpoints: list[dict[str, Any]] | None = None
    attempt: int = 0
    supervisor_pid: int | None = None
    supervisor_start: str | None = None
    created: float = dataclasses.field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    @property
    def is_terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def nproc_per_worker(self) -> int:
        """Processes per worker (1 for jobs recorded before the setting existed)."""
        return int(self.spec.nproc_per_worker)

    @property
    def world_size(self) -> int:
        """Ranks in the job: workers x processes per worker."""
        return self.workers * self.nproc_per_worker

    def summary(self) -> dict[str, Any]:
        """The public JSON view (``list --json``, ``show --json``)."""
        return {
            "id": self.id,
            "name": self.name,
            "phase": self.phase,
            "framework": self.framework,
            "backend": self.backend,
            "workers": self.workers,
            "nproc_per_worker": self.nproc_per_worker,
            "world_size": self.world_size,
            "gpus": self.gpus,
            "created": _iso(self.created),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "failure": self.failure,
            "metrics": self.metrics,
            "params": self.params or {},
            "tags": self.tags or {},
            "sweep": self.sweep,
            "parent_id": self.parent_id,
            "lineage": self.lineage or self.id,
            "checkpoints": self.checkpoints or [],
            "message": self.message,
            "attempt": self.attempt,
            "notebook": self.notebook,
        }


@dataclasses.dataclass
class SweepRecord:
    """One sweep as the store knows it (its trials are jobs with ``sweep`` = its id)."""

    id: str
    name: str
    phase: str
    #: The sweep's options and base job spec (``sweeps.SweepSpec.to_dict()``).
    spec: dict[str, Any]
    cell: str
    notebook: str | None = None
    message: str = ""
    #: Trial number (as text) -> ``{"job": id, "phase": ..., "value": objective or None,
    #: "params": {...}}``, written by the sweep's driver as trials start and end.
    trials: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: The best trial so far: ``{"trial", "job", "value", "params"}``.
    best: dict[str, Any] | None = None
    driver_pid: int | None = None
    driver_start: str | None = None
    created: float = dataclasses.field(default_factory=time.time)
    finished: float | None = None

    @property
    def is_terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (REST, CLI ``--json``)."""
        return {
            "id": self.id,
            "name": self.name,
            "phase": self.phase,
            "message": self.message,
            "notebook": self.notebook,
            "created": _iso(self.created),
            "finished": _iso(self.finished),
            "options": {k: v for k, v in self.spec.items() if k != "job"},
            "trials": self.trials,
            "best": self.best,
        }


_SWEEP_JSON_FIELDS = ("spec", "trials", "best")


def new_job_id() -> str:
    """A fresh, unguessable, DNS-safe job id (12 hex digits)."""
    return secrets.token_hex(6)


CHANGE_FEED_MAX_BYTES = 4 * 1024 * 1024


class JobStore:
    """SQLite-backed job history at ``path`` (created with mode 0600).

    Every write also appends the job's id to ``changes.jsonl`` beside the
    database: a change feed that a server tails to push job updates to its
    clients, whichever process (kernel, supervisor, server) made the change.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        with self._connect() as db:
            _use_wal(db)
            # One writer at a time creates and migrates the schema: two kernels opening a
            # new store at once would otherwise both add the same column.
            db.executescript("BEGIN IMMEDIATE;\n" + _SCHEMA)
            try:
                present = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
                for column, kind in _ADDED_COLUMNS.items():
                    if column not in present:
                        db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
                db.execute("CREATE INDEX IF NOT EXISTS jobs_sweep ON jobs (sweep)")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    def add(self, record: JobRecord) -> JobRecord:
        """Insert a new job."""
        row = _to_row(record)
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._connect() as db:
            db.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", tuple(row.values()))
        self._announce(record.id)
        return record

    def get(self, job_id: str) -> JobRecord:
        """The job with this id or unique id prefix; raises :class:`JobNotFound`."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchall()
            if not rows and job_id and all(c in "0123456789abcdef" for c in job_id):
                rows = db.execute(
                    "SELECT * FROM jobs WHERE id LIKE ? LIMIT 2", (job_id + "%",)
                ).fetchall()
        if len(rows) != 1:
            reason = "is ambiguous" if rows else "matches no job"
            raise JobNotFound(f"job id {job_id!r} {reason}; `jupyter training list` shows ids")
        return _from_row(rows[0])

    def list(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        phase: str | None = None,
        backend: str | None = None,
        notebook: str | None = None,
    ) -> list[JobRecord]:
        """Jobs newest first, optionally filtered."""
        where, params = self._filters(phase=phase, backend=backend, notebook=notebook)
        query = f"SELECT * FROM jobs {where} ORDER BY created DESC LIMIT ? OFFSET ?"
        with self._connect() as db:
            rows = db.execute(query, (*params, limit, offset)).fetchall()
        return [_from_row(row) for row in rows]

    @staticmethod
    def _filters(**filters: str | None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for column, value in filters.items():
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params

    def update(self, job_id: str, **fields: Any) -> None:
        """Set ``fields`` on a job, whatever its phase."""
        self._update(job_id, fields, only_active=False)

    def set_phase(self, job_id: str, phase: str, **fields: Any) -> bool:
        """Move an unfinished job to ``phase``; False if it had already ended."""
        return self._update(job_id, {"phase": phase, **fields}, only_active=True)

    def _update(self, job_id: str, fields: dict[str, Any], *, only_active: bool) -> bool:
        row = {k: json.dumps(v) if k in _JSON_FIELDS else v for k, v in fields.items()}
        assignments = ", ".join(f"{column} = ?" for column in row)
        query = f"UPDATE jobs SET {assignments} WHERE id = ?"
        params: list[Any] = [*row.values(), job_id]
        if only_active:
            query += f" AND phase NOT IN ({', '.join('?' for _ in TERMINAL_PHASES)})"
            params.extend(sorted(TERMINAL_PHASES))
        with self._connect() as db:
            changed = db.execute(query, params).rowcount == 1
        if changed:
            self._announce(job_id)
        return changed

    @property
    def change_feed(self) -> Path:
        return self.path.with_name("changes.jsonl")

    def _announce(self, job_id: str) -> None:
        line = json.dumps({"id": job_id, "time": time.time()}).encode() + b"\n"
        try:
            fd = os.open(self.change_feed, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                if os.fstat(fd).st_size > CHANGE_FEED_MAX_BYTES:
                    os.ftruncate(fd, 0)  # readers notice the file shrank and start over
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError:
            pass  # the feed is a convenience; the database is the record

    def merge(
        self,
        job_id: str,
        column: str,
        values: dict[str, Any],
        *,
        keep_existing: bool = False,
        override: Iterable[str] = (),
    ) -> None:
        """Add ``values`` to the JSON object in ``column`` (params, tags, context);
        with ``keep_existing`` the values already there win, except those named in
        ``override``."""
        if column not in ("params", "tags", "context") or not values:
            return
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(f"SELECT {column} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return
            present = json.loads(row[0] or "{}")
            if keep_existing:
                replaced = set(override)
                present = {k: v for k, v in present.items() if k not in replaced or k not in values}
                merged = {**values, **present}
            else:
                merged = {**present, **values}
            db.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?", (json.dumps(merged), job_id))
            db.execute("COMMIT")
        self._announce(job_id)

    def add_checkpoints(self, job_id: str, marks: list[dict[str, Any]]) -> None:
        """Record ``save_checkpoint()`` calls (``{"step", "time"}``), each once."""
        if not marks:
            return
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT checkpoints FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return
            present = json.loads(row[0] or "null") or []
            seen = {(m["step"], m["time"]) for m in present}
            present += [m for m in marks if (m["step"], m["time"]) not in seen]
            present.sort(key=lambda m: m["time"])
            db.execute(
                "UPDATE jobs SET checkpoints = ? WHERE id = ?", (json.dumps(present), job_id)
            )
            db.execute("COMMIT")
        self._announce(job_id)

    def lineage_jobs(self, lineage: str) -> list[JobRecord]:
        """Every job of a resume chain (the first job's id names it), oldest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE lineage = ? OR id = ? ORDER BY created",
                (lineage, lineage),
            ).fetchall()
        return [_from_row(row) for row in rows]

    # -- metric history ---------------------------------------------------------------------------

    def add_points(
        self, job_id: str, points: list[tuple[str, int, float, int, int | None, float | None]]
    ) -> None:
        """Store ``(name, rank, time, seq, step, value)`` points, ignoring ones already stored."""
        if not points:
            return
        with self._connect() as db:
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR IGNORE INTO metric_points (job_id, name, rank, time, seq, step, value)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(job_id, *point) for point in points],
            )
            db.execute("COMMIT")

    def metric_names(self, job_id: str) -> dict[str, dict[int, int]]:
        """Each metric the job reported, in the order first reported:
        ``{name: {rank: number of points}}`` (ranks in order). The followers' previews
        say it without counting the points; a job recorded without them is counted."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT name, rank, points FROM metric_previews WHERE job_id = ? ORDER BY rowid",
                (job_id,),
            ).fetchall()
            if not rows:
                rows = db.execute(
                    "SELECT name, rank, COUNT(*) FROM metric_points WHERE job_id = ? "
                    "GROUP BY name, rank ORDER BY MIN(rowid), rank",
                    (job_id,),
                ).fetchall()
        names: dict[str, dict[int, int]] = {}
        for name, rank, count in rows:
            names.setdefault(name, {})[rank] = count
        return {name: dict(sorted(ranks.items())) for name, ranks in names.items()}

    def history(
        self, job_id: str, name: str, rank: int | None = None
    ) -> list[tuple[int, int | None, float, float]]:
        """Every point of metric ``name``: ``(rank, step, value, time)``, by rank then time."""
        query = "SELECT rank, step, value, time FROM metric_points WHERE job_id = ? AND name = ?"
        params: list[Any] = [job_id, name]
        if rank is not None:
            query += " AND rank = ?"
            params.append(rank)
        with self._connect() as db:
            return db.execute(query + " ORDER BY rank, time, seq", params).fetchall()

    def save_previews(
        self, job_id: str, previews: list[tuple[str, int, int, list[float], list[float]]]
    ) -> None:
        """Store ``(name, rank, points, x, y)`` chart previews, replacing older ones."""
        if not previews:
            return
        rows = [
            (job_id, name, rank, count, json.dumps(xs), json.dumps(ys))
            for name, rank, count, xs, ys in previews
        ]
        with self._connect() as db:  # an upsert keeps the row (and so the first-reported order)
            db.executemany(
                "INSERT INTO metric_previews (job_id, name, rank, points, x, y) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, name, rank) DO UPDATE SET "
                "points = excluded.points, x = excluded.x, y = excluded.y "
                "WHERE excluded.points >= metric_previews.points",  # who saw more wins
                rows,
            )

    def set_final_metrics(self, job_id: str, final: dict[str, tuple[float | None, int]]) -> None:
        """Set rank 0's last value of each metric from ``{name: (value, points seen)}``,
        unless the stored preview shows another follower saw more points of it."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT metrics FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return
            seen = dict(
                db.execute(
                    "SELECT name, points FROM metric_previews WHERE job_id = ? AND rank = 0",
                    (job_id,),
                ).fetchall()
            )
            metrics = json.loads(row[0] or "null") or {}
            for name, (value, count) in final.items():
                if count >= seen.get(name, 0):
                    metrics[name] = value
            db.execute("UPDATE jobs SET metrics = ? WHERE id = ?", (json.dumps(metrics), job_id))
            db.execute("COMMIT")
        self._announce(job_id)

    def preview(
        self, job_id: str, name: str, rank: int
    ) -> tuple[list[float], list[float], int] | None:
        """The stored chart preview of one series: ``(x, y, points)``, if any."""
        with self._connect() as db:
            row = db.execute(
                "SELECT x, y, points FROM metric_previews WHERE job_id = ? AND name = ? "
                "AND rank = ?",
                (job_id, name, rank),
            ).fetchone()
        if row is None:
            return None
        return json.loads(row[0]), json.loads(row[1]), row[2]

    def series(
        self, job_id: str, name: str, rank: int, max_points: int = 1000
    ) -> tuple[list[float], list[float], int]:
        """Metric ``name`` of ``rank`` for a chart: ``(x, y, points stored)``.

        ``x`` is the step (the rank's report count where no step was reported). Past
        ``max_points`` the points are thinned to each bucket's lowest and highest
        value, so spikes survive; the store keeps them all. The followers' preview
        answers when it is fine enough; else the history is read.
        """
        from .tracking.envelope import PREVIEW_BUCKETS, thin  # stdlib-only, small

        preview = self.preview(job_id, name, rank)
        whole = preview is not None and preview[2] < PREVIEW_BUCKETS  # never thinned
        if preview is not None and (whole or max_points <= len(preview[0])):
            xs, ys, count = preview
            if len(xs) > max_points:
                points = thin(list(zip(xs, ys, strict=True)), max_points)
                xs, ys = [p[0] for p in points], [p[1] for p in points]
            return xs, ys, count
        series = "WHERE job_id = ? AND name = ? AND rank = ?"
        # finite values only: JSON has no nan or inf
        where = f"{series} AND value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"
        key = (job_id, name, rank)
        with self._connect() as db:
            total = db.execute(f"SELECT COUNT(*) FROM metric_points {series}", key).fetchone()[0]
            shown = db.execute(f"SELECT COUNT(*) FROM metric_points {where}", key).fetchone()[0]
            ordered = (
                "SELECT COALESCE(step, seq) AS x, value, "
                f"(ROW_NUMBER() OVER w - 1) / ? AS bucket FROM metric_points {where} "
                "WINDOW w AS (ORDER BY time, seq)"
            )
            if shown <= max_points:
                rows = db.execute(f"SELECT x, value FROM ({ordered})", (1, *key)).fetchall()
            else:
                size = -(-shown * 2 // max(2, max_points))
                rows = db.execute(
                    f"WITH p AS ({ordered}) "
                    "SELECT bucket, x, MIN(value) FROM p GROUP BY bucket UNION ALL "
                    "SELECT bucket, x, MAX(value) FROM p GROUP BY bucket ORDER BY 1, 2",
                    (size, *key),
                ).fetchall()
                rows = [row[1:] for row in rows]
        return [float(r[0]) for r in rows], [float(r[1]) for r in rows], total

    def points_after(
        self, job_id: str, watermark: int, limit: int = 1000
    ) -> list[tuple[int, str, int, float, int, int | None, float]]:
        """Points stored after ``watermark`` (a row id): ``(rowid, name, rank, time, seq, step,
        value)``, oldest first (what an exporter has not sent yet)."""
        with self._connect() as db:
            return db.execute(
                "SELECT rowid, name, rank, time, seq, step, value FROM metric_points "
                "WHERE rowid > ? AND job_id = ? ORDER BY rowid LIMIT ?",
                (watermark, job_id, limit),
            ).fetchall()

    # -- runs -------------------------------------------------------------------------------------

    def run_rows(self, where: str = "", params: tuple[Any, ...] = ()) -> list[list[Any]]:
        """The :data:`RUN_COLUMNS` of every job matching the SQL ``where``, newest first,
        with params, metrics and tags decoded (and the decoding of an unchanged value
        remembered: listing the same 10,000 jobs again decodes nothing)."""
        query = f"SELECT {', '.join(RUN_COLUMNS)} FROM jobs {where} ORDER BY created DESC"
        with self._connect() as db:
            db.row_factory = None
            rows = db.execute(query, params).fetchall()
        decode = _decoded  # params, metrics and tags are the last three columns
        return [[*row[:-3], decode(row[-3]), decode(row[-2]), decode(row[-1])] for row in rows]

    def unrecorded(self, backend: str) -> list[str]:
        """Finished jobs of ``backend`` that ran but whose history nobody stored."""
        marks = ", ".join("?" for _ in TERMINAL_PHASES)
        with self._connect() as db:
            rows = db.execute(
                f"SELECT id FROM jobs WHERE backend = ? AND history_done = 0 AND started IS NOT "
                f"NULL AND phase IN ({marks})",
                (backend, *sorted(TERMINAL_PHASES)),
            ).fetchall()
        return [row[0] for row in rows]

    def newest_named(self, name: str) -> JobRecord | None:
        """The newest job called ``name``, if any."""
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM jobs WHERE name = ? ORDER BY created DESC LIMIT 1", (name,)
            ).fetchone()
        return _from_row(row) if row is not None else None

    # -- exports ----------------------------------------------------------------------------------

    def claim_export(self, job_id: str, target: str, owner: str, lease_seconds: float) -> bool:
        """Take (or renew) the lease to export ``job_id`` to ``target``; False if another
        owner holds a live lease or the export is done."""
        now = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO exports (job_id, target) VALUES (?, ?)", (job_id, target)
            )
            claimed = db.execute(
                "UPDATE exports SET owner = ?, lease = ? WHERE job_id = ? AND target = ? "
                "AND done = 0 AND (owner IS NULL OR owner = ? OR lease < ?)",
                (owner, now + lease_seconds, job_id, target, owner, now),
            ).rowcount
        return claimed == 1

    def export_state(self, job_id: str, target: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM exports WHERE job_id = ? AND target = ?", (job_id, target)
            ).fetchone()
        return dict(row) if row is not None else None

    def update_export(self, job_id: str, target: str, owner: str, **fields: Any) -> bool:
        """Set ``run_id``/``watermark``/``done`` of an export this ``owner`` holds."""
        assignments = ", ".join(f"{column} = ?" for column in fields)
        with self._connect() as db:
            return (
                db.execute(
                    f"UPDATE exports SET {assignments} WHERE job_id = ? AND target = ? "
                    "AND owner = ?",
                    (*fields.values(), job_id, target, owner),
                ).rowcount
                == 1
            )

    # -- sweeps -----------------------------------------------------------------------------------

    def add_sweep(self, sweep: SweepRecord) -> SweepRecord:
        """Insert a new sweep."""
        row = {f.name: getattr(sweep, f.name) for f in dataclasses.fields(sweep)}
        for key in _SWEEP_JSON_FIELDS:
            row[key] = json.dumps(row[key])
        marks = ", ".join("?" for _ in row)
        with self._connect() as db:
            db.execute(
                f"INSERT INTO sweeps ({', '.join(row)}) VALUES ({marks})", tuple(row.values())
            )
        self._announce(sweep.id)
        return sweep

    def get_sweep(self, ref: str) -> SweepRecord:
        """The sweep with this id, unique id prefix or (newest with this) name; raises
        :class:`JobNotFound`."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM sweeps WHERE id = ?", (ref,)).fetchall()
            if not rows and ref and all(c in "0123456789abcdef" for c in ref):
                rows = db.execute(
                    "SELECT * FROM sweeps WHERE id LIKE ? LIMIT 2", (ref + "%",)
                ).fetchall()
            if not rows:
                rows = db.execute(
                    "SELECT * FROM sweeps WHERE name = ? ORDER BY created DESC LIMIT 1", (ref,)
                ).fetchall()
        if len(rows) != 1:
            reason = "is ambiguous" if rows else "matches no sweep"
            raise JobNotFound(f"sweep {ref!r} {reason}; `jupyter training list` shows sweeps")
        return _sweep_from_row(rows[0])

    def list_sweeps(self, *, limit: int = 50) -> list[SweepRecord]:
        """Sweeps, newest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM sweeps ORDER BY created DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_sweep_from_row(row) for row in rows]

    def update_sweep(self, sweep_id: str, **fields: Any) -> None:
        """Set ``fields`` of a sweep."""
        row = {k: json.dumps(v) if k in _SWEEP_JSON_FIELDS else v for k, v in fields.items()}
        assignments = ", ".join(f"{column} = ?" for column in row)
        with self._connect() as db:
            db.execute(f"UPDATE sweeps SET {assignments} WHERE id = ?", (*row.values(), sweep_id))
        self._announce(sweep_id)

    def set_sweep_phase(self, sweep_id: str, phase: str, message: str = "") -> bool:
        """Move an unfinished sweep to ``phase``; False if it had already ended."""
        marks = ", ".join("?" for _ in TERMINAL_PHASES)
        finished = time.time() if phase in TERMINAL_PHASES else None
        with self._connect() as db:
            changed = (
                db.execute(
                    f"UPDATE sweeps SET phase = ?, message = ?, finished = ? WHERE id = ? "
                    f"AND phase NOT IN ({marks})",
                    (phase, message, finished, sweep_id, *sorted(TERMINAL_PHASES)),
                ).rowcount
                == 1
            )
        if changed:
            self._announce(sweep_id)
        return changed

    def set_trial(self, sweep_id: str, number: int, info: dict[str, Any]) -> None:
        """Merge ``info`` into trial ``number``'s entry of the sweep."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT trials FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return
            trials = json.loads(row[0] or "{}")
            trials[str(number)] = {**trials.get(str(number), {}), **info}
            db.execute("UPDATE sweeps SET trials = ? WHERE id = ?", (json.dumps(trials), sweep_id))
            db.execute("COMMIT")
        self._announce(sweep_id)

    def sweep_jobs(self, sweep_id: str) -> list[JobRecord]:
        """The sweep's trial jobs, oldest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE sweep = ? ORDER BY created", (sweep_id,)
            ).fetchall()
        return [_from_row(row) for row in rows]

    def count(self, *, phase: str | None = None, backend: str | None = None) -> int:
        """How many jobs match the filters."""
        clauses, params = self._filters(phase=phase, backend=backend)
        with self._connect() as db:
            return db.execute(f"SELECT COUNT(*) FROM jobs {clauses}", params).fetchone()[0]


def pending_record(job_id: str, spec: JobSpec, cell: str, **fields: Any) -> JobRecord:
    """A new Pending record for ``spec``, its flags as params and its tags."""
    from .tracking.params import cell_hash, flag_params

    fields.setdefault("params", flag_params(spec))
    fields.setdefault("tags", dict(spec.tags))
    fields.setdefault("sweep", spec.sweep)
    fields.setdefault("parent_id", spec.parent)
    fields.setdefault("lineage", spec.lineage or job_id)  # a resumed job keeps its parent's
    context = {"cell_sha256": cell_hash(cell), "notebook": fields.get("notebook")}
    fields["context"] = {**context, **(fields.get("context") or {})}
    return JobRecord(
        id=job_id,
        name=spec.name or f"job-{job_id}",
        phase=PENDING,
        framework=spec.framework,
        backend=spec.backend,
        workers=spec.workers,
        gpus=spec.gpus,
        spec=spec,
        cell=cell,
        **fields,
    )


def _to_row(record: JobRecord) -> dict[str, Any]:
    row = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    row["spec"] = record.spec.to_dict()
    for key in _JSON_FIELDS:
        row[key] = json.dumps(row[key])
    return row


def _from_row(row: sqlite3.Row) -> JobRecord:
    data = dict(row)
    for key in _JSON_FIELDS:
        data[key] = json.loads(data[key]) if data[key] is not None else None
    data["spec"] = JobSpec.from_record(data["spec"] or {})
    return JobRecord(**data)


def _use_wal(db: sqlite3.Connection, wait: float = 30.0) -> None:
    """Put the database in WAL mode (persistent: once per file). Switching needs the file to
    itself and SQLite's busy timeout does not cover it, so openers of a new store retry."""
    deadline = time.monotonic() + wait
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sweep_from_row(row: sqlite3.Row) -> SweepRecord:
    data = dict(row)
    for key in _SWEEP_JSON_FIELDS:
        data[key] = json.loads(data[key]) if data[key] is not None else None
    data["trials"] = data["trials"] or {}
    return SweepRecord(**data)


@functools.lru_cache(maxsize=1 << 16)
def _decoded(text: str | None) -> Any:
    """``json.loads(text)``, remembered: the value is shared, so never change it."""
    return json.loads(text) if text else None


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + (
        f".{int(timestamp % 1 * 1000):03d}Z"
    )
