"""`JobSpec`: what to run and how, validated before anything launches.

Every bad value becomes one :class:`SpecError` that names the flag at fault and
says how to fix it. The module is stdlib-only so the server, the magic and the
CLI can all build specs cheaply.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

FRAMEWORKS = ("pytorch", "xgboost")
BACKENDS = ("local", "kubernetes")

#: Variables our runtime sets for every worker; a user may not override them.
RESERVED_ENV = frozenset(
    {
        "MASTER_ADDR",
        "MASTER_PORT",
        "WORLD_SIZE",
        "RANK",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "WORKER_ADDRS",
        "WORKER_PORT",
        "PET_NNODES",
        "PET_NPROC_PER_NODE",
        "PET_NODE_RANK",
        "PET_MASTER_ADDR",
        "PET_MASTER_PORT",
        "DMLC_TRACKER_URI",
        "DMLC_TRACKER_PORT",
        "DMLC_TASK_ID",
        "DMLC_NUM_WORKER",
        "CUDA_VISIBLE_DEVICES",
        "JUPYTER_TRAINING_FRAMEWORK",
        "JUPYTER_TRAINING_JOB_ID",
    }
)

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Kubernetes resource.Quantity: a decimal number with an optional SI or binary suffix.
_QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e\d+)?$")
MAX_NAME_LENGTH = 63


class SpecError(ValueError):
    """A bad job setting; ``field`` names the flag (``--workers``) at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A distributed job: framework, topology, limits and environment.

    Construct it with keyword arguments; it validates itself and raises
    :class:`SpecError` on the first bad value.
    """

    framework: str = "pytorch"
    workers: int = 2
    gpus: int = 0
    backend: str = "local"
    name: str | None = None
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    max_restarts: int = 0
    timeout: float | None = None
    cpu: str | None = None
    memory: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", dict(self.env))
        _check_choice("--framework", self.framework, FRAMEWORKS)
        _check_choice("--backend", self.backend, BACKENDS)
        _check_int("--workers", self.workers, minimum=1, example="--workers 2")
        _check_int("--gpus", self.gpus, minimum=0, example="--gpus 1")
        _check_int("--max-restarts", self.max_restarts, minimum=0, example="--max-restarts 3")
        _check_timeout(self.timeout)
        if self.name is not None:
            check_job_name(self.name)
        _check_env(self.env)
        for flag, value in (("--cpu", self.cpu), ("--memory", self.memory)):
            if value is not None:
                _check_quantity(flag, value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        """Build a spec from JSON-like data, refusing unknown keys by name."""
        if not isinstance(data, Mapping):
            raise SpecError("spec", f"expected an object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(
                unknown[0],
                f"unknown setting; known settings are {', '.join(sorted(known))}",
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data (``from_dict`` reverses it)."""
        data = dataclasses.asdict(self)
        data["env"] = dict(self.env)
        return data

    def replace(self, **changes: Any) -> JobSpec:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


def check_job_name(name: object) -> str:
    """Return ``name`` if it is a DNS-1123 label, else raise ``SpecError('--name')``."""
    if not isinstance(name, str) or not name:
        raise SpecError("--name", "must be a non-empty string such as --name mnist-ddp")
    if len(name) > MAX_NAME_LENGTH:
        raise SpecError(
            "--name", f"{name!r} is {len(name)} characters; use at most {MAX_NAME_LENGTH}"
        )
    if not _DNS1123_LABEL.match(name):
        raise SpecError(
            "--name",
            f"{name!r} is not a DNS-1123 label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (for example mnist-ddp)",
        )
    return name


def parse_env_assignments(items: list[str] | None) -> dict[str, str]:
    """Turn repeated ``--env KEY=VALUE`` strings into a dict."""
    env: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError("--env", f"{item!r} is not KEY=VALUE (for example --env SEED=1)")
        env[key] = value
    return env


def _check_choice(flag: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SpecError(flag, f"{value!r} is not one of {', '.join(choices)}")


def _check_int(flag: str, value: object, *, minimum: int, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(flag, f"must be a whole number, got {value!r} (for example {example})")
    if value < minimum:
        raise SpecError(flag, f"must be >= {minimum}, got {value} (for example {example})")


def _check_timeout(value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError("--timeout", f"must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise SpecError("--timeout", f"must be a positive number of seconds, got {value}")


def _check_env(env: Mapping[str, str]) -> None:
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise SpecError(
                "--env",
                f"{key!r} is not a valid variable name: use letters, digits and '_', "
                "not starting with a digit",
            )
        if key in RESERVED_ENV:
            raise SpecError(
                "--env", f"{key} is set by the training runtime for every worker; remove it"
            )
        if not isinstance(value, str):
            raise SpecError("--env", f"value of {key} must be a string, got {value!r}")
        if "\x00" in value:
            raise SpecError("--env", f"value of {key} contains a NUL byte")


def _check_quantity(flag: str, value: object) -> None:
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise SpecError(
            flag,
            f"{value!r} is not a Kubernetes quantity (for example --cpu 2, --cpu 500m, "
            "--memory 4Gi)",
        )
