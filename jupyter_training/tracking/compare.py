"""Several runs side by side: params (those that differ marked), final metrics, the best
run for an objective, and every run's curve of each metric (rank 0).

The model behind ``%train_compare``, the REST ``/compare`` endpoint and the
sidebar's compare view; :mod:`jupyter_training.views.compare` renders it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..store import JobNotFound, JobRecord, JobStore
from .query import RunNotFound, resolve

MODES = ("min", "max")


@dataclasses.dataclass
class Objective:
    """The metric a comparison ranks runs by, and whether lower or higher is better."""

    metric: str
    mode: str = "min"

    @classmethod
    def parse(cls, text: str, flag: str = "--objective") -> Objective:
        """``"loss"``, ``"loss:min"`` or ``"accuracy:max"``."""
        metric, _, mode = text.rpartition(":") if ":" in text else (text, "", "min")
        mode = mode or "min"
        if not metric or mode not in MODES:
            raise ValueError(
                f"{flag}: {text!r} is not METRIC:min or METRIC:max (for example loss:min)"
            )
        return cls(metric, mode)


@dataclasses.dataclass
class Curve:
    run_id: str
    name: str
    x: list[float]
    y: list[float]
    points: int


@dataclasses.dataclass
class Comparison:
    runs: list[JobRecord]
    params: list[str]
    differing: list[str]
    metrics: list[str]
    objective: Objective | None
    best: str | None
    curves: dict[str, list[Curve]]

    def value(self, record: JobRecord, param: str) -> Any:
        return (record.params or {}).get(param, MISSING)

    def to_json(self) -> dict[str, Any]:
        """The REST API's view (see docs/openapi.yaml)."""
        return {
            "runs": [
                {
                    **{k: v for k, v in r.summary().items() if k != "failure"},
                    "duration": (r.finished - r.started) if r.finished and r.started else None,
                }
                for r in self.runs
            ],
            "params": self.params,
            "differing": self.differing,
            "metrics": self.metrics,
            "objective": dataclasses.asdict(self.objective) if self.objective else None,
            "best": self.best,
            "curves": {
                metric: [
                    {"id": c.run_id, "name": c.name, "x": c.x, "y": c.y, "points": c.points}
                    for c in curves
                ]
                for metric, curves in self.curves.items()
            },
        }


class _Missing:
    def __repr__(self) -> str:
        return "-"


MISSING: Any = _Missing()


def compare(
    store: JobStore,
    refs: Sequence[str] = (),
    *,
    last: int | None = None,
    objective: str | Objective | None = None,
    max_points: int = 500,
) -> Comparison:
    """Compare the runs named by ``refs`` (ids, id prefixes or names; a sweep's id or name
    stands for all its trials) and/or the ``last`` N."""
    records: list[JobRecord] = []
    if last is not None:
        if last < 1:
            raise ValueError(f"--last: {last} is not a number of runs; give 1 or more")
        records.extend(store.list(limit=last))
    for ref in refs:
        try:
            records.append(resolve(store, ref))
        except JobNotFound:
            try:
                sweep = store.get_sweep(ref)
            except JobNotFound:
                raise RunNotFound(
                    f"{ref!r} is neither a job id nor a job name, nor a sweep; "
                    "`%train_jobs` lists them"
                ) from None
            trials = store.sweep_jobs(sweep.id)
            if not trials:
                raise ValueError(f"sweep {sweep.name} ({sweep.id}) has no trials") from None
            records.extend(trials)
            if objective is None and "metric" in sweep.spec:
                short = "min" if sweep.spec.get("direction") == "minimize" else "max"
                objective = f"{sweep.spec['metric']}:{short}"
    seen: set[str] = set()
    records = [r for r in records if not (r.id in seen or seen.add(r.id))]
    if not records:
        raise ValueError("name the runs to compare: job ids or names, or --last N")
    from .query import backfill

    for index, record in enumerate(records):
        if record.is_terminal and not record.history_done and record.backend == "local":
            backfill(store, record)
            records[index] = store.get(record.id)
    names = {r.id: store.metric_names(r.id) for r in records}
    metrics: list[str] = []
    for record in records:
        for metric in [*names[record.id], *(record.metrics or {})]:
            if metric not in metrics:
                metrics.append(metric)
    chosen = _objective(objective, metrics)
    params = []
    for record in records:
        for param in record.params or {}:
            if param not in params:
                params.append(param)
    differing = [
        p for p in params if len({repr((r.params or {}).get(p, MISSING)) for r in records}) > 1
    ]
    curves: dict[str, list[Curve]] = {}
    for metric in metrics:
        for record in records:
            if 0 in names[record.id].get(metric, {}):
                x, y, count = store.series(record.id, metric, 0, max_points)
                curves.setdefault(metric, []).append(Curve(record.id, record.name, x, y, count))
    return Comparison(
        runs=records,
        params=params,
        differing=differing,
        metrics=metrics,
        objective=chosen,
        best=best_run(records, chosen),
        curves=curves,
    )


def _objective(objective: str | Objective | None, metrics: list[str]) -> Objective | None:
    if isinstance(objective, Objective):
        chosen = objective
    elif objective:
        chosen = Objective.parse(objective)
    elif metrics:
        return Objective(metrics[0], "min")
    else:
        return None
    if metrics and chosen.metric not in metrics:
        raise ValueError(
            f"--objective: no run here reported {chosen.metric!r}; they reported "
            f"{', '.join(metrics)}"
        )
    return chosen


def best_run(records: list[JobRecord], objective: Objective | None) -> str | None:
    """The id of the run with the best final value of the objective (None: no run has one)."""
    if objective is None:
        return None
    scored = [
        (value, r.id)
        for r in records
        if isinstance(value := (r.metrics or {}).get(objective.metric), int | float)
        and value == value
    ]
    if not scored:
        return None
    pick = min if objective.mode == "min" else max
    return pick(scored, key=lambda item: item[0])[1]
