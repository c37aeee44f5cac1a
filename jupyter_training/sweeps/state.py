"""What a sweep view shows: each trial's params, phase, objective and progress (plain data).

The driver keeps a :class:`SweepState` current as trials run; ``%train_attach``
builds one from the store (:func:`state_from_store`) for a sweep driven
elsewhere, finished, or stopped.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from ..events import RUNNING, TERMINAL_PHASES
from ..store import JobStore, SweepRecord
from .options import SweepSpec


@dataclasses.dataclass
class TrialInfo:
    """One trial as a view shows it."""

    number: int
    params: dict[str, Any]
    job_id: str | None = None
    name: str = ""
    phase: str = "Pending"
    #: The objective (``--objective-mode``: last or best reported value), once known.
    value: float | None = None
    #: The latest value of the objective metric (live, before the trial ends).
    current: float | None = None
    step: int | None = None
    total: int | None = None
    message: str = ""
    started: float | None = None
    finished: float | None = None
    #: A cancelled trial whose values a resumed sweep has queued to run again.
    rerun: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    def entry(self) -> dict[str, Any]:
        """As the store keeps it (``SweepRecord.trials``)."""
        return {
            "job": self.job_id,
            "name": self.name,
            "phase": self.phase,
            "value": self.value,
            "params": self.params,
            "message": self.message,
            "started": self.started,
            "finished": self.finished,
            "rerun": self.rerun,
        }

    @classmethod
    def from_entry(cls, number: int, entry: dict[str, Any]) -> TrialInfo:
        return cls(
            number=number,
            params=dict(entry.get("params") or {}),
            job_id=entry.get("job"),
            name=entry.get("name") or "",
            phase=entry.get("phase") or "Pending",
            value=entry.get("value"),
            message=entry.get("message") or "",
            started=entry.get("started"),
            finished=entry.get("finished"),
            rerun=bool(entry.get("rerun")),
        )


@dataclasses.dataclass
class SweepState:
    """A sweep and its trials, as the views render them."""

    sweep: SweepRecord
    spec: SweepSpec
    trials: dict[int, TrialInfo] = dataclasses.field(default_factory=dict)
    phase: str = RUNNING
    message: str = ""

    @property
    def running(self) -> list[TrialInfo]:
        return [t for t in self.trials.values() if not t.is_terminal]

    @property
    def best(self) -> TrialInfo | None:
        """The trial with the best objective so far."""
        best: TrialInfo | None = None
        for trial in self.trials.values():
            if trial.value is None or trial.phase != "Succeeded":
                continue
            if best is None or self.spec.better(trial.value, best.value):  # type: ignore[arg-type]
                best = trial
        return best

    def ranked(self) -> list[TrialInfo]:
        """Trials by objective (best first), then those without one by number."""
        sign = 1 if self.spec.direction == "minimize" else -1
        scored = [t for t in self.trials.values() if t.value is not None]
        rest = [t for t in self.trials.values() if t.value is None]
        return sorted(scored, key=lambda t: sign * t.value) + sorted(rest, key=lambda t: t.number)

    def best_so_far(self) -> list[tuple[int, float]]:
        """``(trial number, best objective up to it)`` in trial order (a chart's line)."""
        line: list[tuple[int, float]] = []
        best: float | None = None
        for trial in sorted(self.trials.values(), key=lambda t: t.number):
            if trial.value is None or trial.phase != "Succeeded":
                continue
            if best is None or self.spec.better(trial.value, best):
                best = trial.value
            line.append((trial.number, best))
        return line

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for trial in self.trials.values():
            counts[trial.phase] = counts.get(trial.phase, 0) + 1
        return counts


def state_from_store(store: JobStore, sweep: SweepRecord) -> SweepState:
    """The sweep as the store has it (live trials' phases read from their jobs)."""
    spec = SweepSpec.from_dict(sweep.spec)
    trials = {int(k): TrialInfo.from_entry(int(k), v) for k, v in sweep.trials.items()}
    for trial in trials.values():
        if trial.job_id and not trial.is_terminal:
            try:
                record = store.get(trial.job_id)
            except KeyError:
                continue
            trial.phase = record.phase
            trial.current = (record.metrics or {}).get(spec.metric)
    return SweepState(sweep, spec, trials, phase=sweep.phase, message=sweep.message)
