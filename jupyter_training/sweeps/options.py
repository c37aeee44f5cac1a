"""`SweepSpec`: what a sweep searches, how, and the job every trial runs (stdlib-only)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..spec import JobSpec, SpecError
from .space import Param

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median", "asha")
OBJECTIVE_MODES = ("last", "best")
DIRECTIONS = {"min": "minimize", "max": "maximize"}


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep: validated on construction, like :class:`~jupyter_training.spec.JobSpec`."""

    params: tuple[Param, ...]
    job: JobSpec
    metric: str = "loss"
    direction: str = "minimize"
    trials: int = 10
    parallel: int = 1
    objective_mode: str = "last"
    sampler: str = "tpe"
    prune: str = "none"
    #: Stop after this many failed trials (default: half of ``trials``, at least 1).
    max_failures: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        if not self.params:
            raise SpecError("--param", "a sweep needs at least one --param")
        _check_count("--trials", self.trials, "--trials 16")
        _check_count("--parallel", self.parallel, "--parallel 2")
        if self.max_failures is not None:
            _check_count("--max-failures", self.max_failures, "--max-failures 3")
        for flag, value, choices in (
            ("--objective-mode", self.objective_mode, OBJECTIVE_MODES),
            ("--sampler", self.sampler, SAMPLERS),
            ("--prune", self.prune, PRUNERS),
            ("--objective", self.direction, tuple(DIRECTIONS.values())),
        ):
            if value not in choices:
                raise SpecError(flag, f"{value!r} is not one of {', '.join(choices)}")
        if not isinstance(self.metric, str) or not self.metric:
            raise SpecError("--objective", "name the metric, for example --objective loss:min")
        if self.seed is not None and not isinstance(self.seed, int):
            raise SpecError("--seed", f"{self.seed!r} is not a whole number")
        if self.sampler == "grid":
            continuous = [p.text() for p in self.params if p.grid() is None]
            if continuous:
                raise SpecError(
                    "--sampler",
                    f"grid searches listed values only; {continuous[0]} is a range: use "
                    "choice(...) or int(...), or --sampler tpe",
                )
        if self.job.name is not None and len(self.job.name) > 50:
            raise SpecError(
                "--name", "a sweep's name is at most 50 characters (its trials add -tN)"
            )

    @property
    def grid_size(self) -> int | None:
        """How many points a grid search has (None unless ``sampler == "grid"``)."""
        if self.sampler != "grid":
            return None
        return math.prod(len(p.grid() or []) for p in self.params)

    @property
    def failure_limit(self) -> int:
        if self.max_failures is not None:
            return self.max_failures
        return max(1, math.ceil(self.trials / 2))

    @property
    def objective_text(self) -> str:
        short = {v: k for k, v in DIRECTIONS.items()}[self.direction]
        return f"{self.metric}:{short}"

    def better(self, a: float, b: float) -> bool:
        """Is objective value ``a`` better than ``b``?"""
        return a < b if self.direction == "minimize" else a > b

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["params"] = [p.to_dict() for p in self.params]
        data["job"] = self.job.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSpec:
        values = dict(data)
        values["params"] = tuple(Param.from_dict(p) for p in data["params"])
        values["job"] = JobSpec.from_record(data["job"])
        return cls(**values)


def parse_objective(text: str | None) -> tuple[str, str]:
    """``loss:min`` -> ("loss", "minimize"); raises ``SpecError("--objective")``."""
    if not text:
        raise SpecError("--objective", "name the metric to optimize, for example loss:min")
    metric, _, mode = text.rpartition(":")
    if not metric:
        metric, mode = mode, "min"
    if mode not in DIRECTIONS or not metric:
        raise SpecError(
            "--objective", f"{text!r} is not METRIC:min or METRIC:max (for example loss:min)"
        )
    return metric, DIRECTIONS[mode]


def _check_count(flag: str, value: Any, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(flag, f"{value!r} must be a whole number of at least 1 ({example})")
