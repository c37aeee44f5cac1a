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

from . import frameworks
from .backends import backend_names
from .runtime.masking import ENV_NAMES as SECRET_ENV_NAMES
from .runtime.masking import MIN_LENGTH as MASKED_MIN_LENGTH

FRAMEWORKS = frameworks.names()
#: The built-in backends; packages may add more (``jupyter_training.backends`` entry points).
BACKENDS = ("local", "kubernetes")

#: Variables our runtime sets for every worker whatever its framework; with the
#: framework's own (``Framework.reserved_env``), a user may not override them.
RESERVED_ENV = frameworks.COMMON_ENV | frozenset(
    {
        "CUDA_VISIBLE_DEVICES",
        "JUPYTER_TRAINING_FRAMEWORK",
        "JUPYTER_TRAINING_JOB_ID",
        "JUPYTER_TRAINING_FILES_DIR",
        "JUPYTER_TRAINING_PIP",
        "JUPYTER_TRAINING_OUT",
        "JUPYTER_TRAINING_WORKDIR",
        "JUPYTER_TRAINING_RESULT_LIMIT",
        "JUPYTER_TRAINING_ARTIFACTS_DIR",
        "JUPYTER_TRAINING_ARTIFACTS_REFUSAL",
        "JUPYTER_TRAINING_CHECKPOINT_DIR",
        "JUPYTER_TRAINING_CHECKPOINT_REFUSAL",
        "JUPYTER_TRAINING_RESTART_COUNT",
        SECRET_ENV_NAMES,
    }
)

APIS = ("auto", "v1", "v2")

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$")
_PIP_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~+*:/@]*$")
_EXAMPLES = {"--env": "SEED=1", "--node-selector": "disktype=ssd", "--tag": "team=vision"}
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.\-/: ]{1,250}$")
MAX_TAG_VALUE_LENGTH = 5000
MAX_EXPERIMENT_LENGTH = 250
#: ``--secret-env NAME=SECRET/KEY``: a Secret's name (DNS subdomain) and one of its data keys.
_SECRET_REF = re.compile(
    r"^(?=.{1,253}/)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[-._a-zA-Z0-9]+$"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Kubernetes resource.Quantity: a decimal number with an optional SI or binary suffix.
_QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e\d+)?$")
MAX_NAME_LENGTH = 63
#: Shortest ``--secret-env`` value (the worker runtime masks values this long or longer).
MIN_SECRET_LENGTH = MASKED_MIN_LENGTH
MAX_TIMEOUT_SECONDS = 2**31  # activeDeadlineSeconds must fit the API's integers


class SpecError(ValueError):
    """A bad job setting; ``field`` names the flag (``--workers``) at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclasses.dataclass(frozen=True)
class KubernetesOptions:
    """Settings only the Kubernetes backend reads (``JobSpec.kubernetes``).

    Grouped so that no other backend can take them by accident: a spec for any
    other backend that sets one is refused, naming the flag.
    """

    api: str = "auto"
    runtime: str | None = None
    image: str | None = None
    namespace: str | None = None
    context: str | None = None
    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    pip: tuple[str, ...] = ()
    queue: str | None = None
    volumes: tuple[str, ...] = ()
    #: ``--checkpoint CLAIM:PATH``: where checkpoint_dir() lives (default: the first volume).
    checkpoint: str | None = None
    cpu: str | None = None
    memory: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.node_selector, Mapping):
            raise SpecError(
                "--node-selector", f"must be a mapping of KEY to VALUE, got {self.node_selector!r}"
            )
        object.__setattr__(self, "node_selector", dict(self.node_selector))
        for name in ("pip", "volumes"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, list | tuple):
                raise SpecError(_flag(name), f"must be a list of strings, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        for flag, value in (("--cpu", self.cpu), ("--memory", self.memory)):
            if value is not None:
                _check_quantity(flag, value)
        _check_choice("--api", self.api, APIS)
        if self.runtime is not None:
            _check_dns_name("--runtime", self.runtime, _DNS1123_SUBDOMAIN, 253)
        if self.queue is not None:  # also a label value (kueue.x-k8s.io/queue-name)
            _check_dns_name("--queue", self.queue, _DNS1123_LABEL, MAX_NAME_LENGTH)
        if self.namespace is not None:
            _check_dns_name("--namespace", self.namespace, _DNS1123_LABEL, MAX_NAME_LENGTH)
        if self.image is not None and (
            not isinstance(self.image, str) or not _IMAGE.match(self.image)
        ):
            raise SpecError(
                "--image",
                f"{self.image!r} is not an image reference such as "
                "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
            )
        if self.context is not None and (not isinstance(self.context, str) or not self.context):
            raise SpecError("--context", "must name a kubeconfig context")
        _check_node_selector(self.node_selector)
        for requirement in self.pip:
            if not isinstance(requirement, str) or not _PIP_REQUIREMENT.match(requirement):
                raise SpecError(
                    "--pip",
                    f"{requirement!r} is not a package requirement such as "
                    "'scikit-learn==1.5.2' (options are not allowed)",
                )
        for volume in self.volumes:
            parse_volume(volume)
        if self.checkpoint is not None:
            parse_volume(self.checkpoint, "--checkpoint")

    @classmethod
    def from_dict(cls, data: object) -> KubernetesOptions:
        """Options from JSON-like data, refusing unknown keys by name."""
        if not isinstance(data, Mapping):
            raise SpecError("kubernetes", f"expected an object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(KUBERNETES_FIELDS), key=str)
        if unknown:
            raise SpecError(
                str(unknown[0]),
                f"unknown Kubernetes setting; known ones are {', '.join(KUBERNETES_FIELDS)}",
            )
        return cls(**data)

    def changed(self) -> list[str]:
        """The settings given a value other than their default."""
        return [name for name in KUBERNETES_FIELDS if getattr(self, name) != _K8S_DEFAULTS[name]]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["node_selector"] = dict(self.node_selector)
        return data

    def replace(self, **changes: Any) -> KubernetesOptions:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


KUBERNETES_FIELDS = tuple(f.name for f in dataclasses.fields(KubernetesOptions))
_K8S_DEFAULTS = {
    f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
    for f in dataclasses.fields(KubernetesOptions)
}


@dataclasses.dataclass(frozen=True, init=False)
class JobSpec:
    """A distributed job: framework, topology, limits and environment.

    Construct it with keyword arguments; it validates itself and raises
    :class:`SpecError` on the first bad value. The Kubernetes-only settings
    live in :attr:`kubernetes` (a :class:`KubernetesOptions`); they may also be
    given flat, ``JobSpec(backend="kubernetes", image=...)``, as the magic's
    flags and the REST API give them.
    """

    framework: str = "pytorch"
    #: Worker count; with ``min_workers`` (``--workers MIN:MAX``) the most, for elastic jobs.
    workers: int = 2
    gpus: int = 0
    #: Processes per worker (torchrun's --nproc-per-node); "auto" is one per GPU, else 1.
    nproc_per_worker: int | str = 1
    backend: str = "local"
    name: str | None = None
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: NAME -> "" (the submitting process' environment) or "SECRET/KEY" (a Kubernetes Secret).
    secret_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    max_restarts: int = 0
    timeout: float | None = None
    files: tuple[str, ...] = ()
    out: tuple[str, ...] = ()
    #: The MLflow experiment the run goes to (default: the notebook's name).
    experiment: str | None = None
    #: ``--tag key=value``: labels kept with the run (and sent to MLflow).
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: The sweep this job is a trial of (set by ``%%train_sweep``, not a flag).
    sweep: str | None = None
    #: Elastic jobs (``--workers MIN:MAX``): the fewest workers the job goes on with.
    min_workers: int | None = None
    #: The job this one resumes (``%train_resume``), and the first job of that chain, whose
    #: id names the checkpoint directory they share (set by the client, not flags).
    parent: str | None = None
    lineage: str | None = None
    kubernetes: KubernetesOptions = dataclasses.field(default_factory=KubernetesOptions)

    def __init__(
        self,
        framework: str = "pytorch",
        workers: int | str = 2,
        gpus: int = 0,
        nproc_per_worker: int | str = 1,
        backend: str = "local",
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
        max_restarts: int = 0,
        timeout: float | None = None,
        files: tuple[str, ...] | list[str] = (),
        out: tuple[str, ...] | list[str] = (),
        experiment: str | None = None,
        tags: Mapping[str, str] | None = None,
        sweep: str | None = None,
        min_workers: int | None = None,
        parent: str | None = None,
        lineage: str | None = None,
        kubernetes: KubernetesOptions | Mapping[str, Any] | None = None,
        **kubernetes_settings: Any,
    ) -> None:
        unknown = sorted(set(kubernetes_settings) - set(KUBERNETES_FIELDS))
        if unknown:
            known = sorted([*GENERAL_FIELDS, *KUBERNETES_FIELDS])
            raise SpecError(unknown[0], f"unknown setting; known settings are {', '.join(known)}")
        if kubernetes is None:
            kubernetes = KubernetesOptions(**kubernetes_settings)
        elif isinstance(kubernetes, KubernetesOptions):
            if kubernetes_settings:
                kubernetes = kubernetes.replace(**kubernetes_settings)
        elif isinstance(kubernetes, Mapping):
            kubernetes = KubernetesOptions.from_dict({**kubernetes, **kubernetes_settings})
        else:
            raise SpecError("kubernetes", f"expected an object, got {type(kubernetes).__name__}")
        values = {
            "framework": framework,
            "workers": workers,
            "gpus": gpus,
            "nproc_per_worker": nproc_per_worker,
            "backend": backend,
            "name": name,
            "env": {} if env is None else env,
            "secret_env": {} if secret_env is None else secret_env,
            "max_restarts": max_restarts,
            "timeout": timeout,
            "files": files,
            "out": out,
            "experiment": experiment,
            "tags": {} if tags is None else tags,
            "sweep": sweep,
            "min_workers": min_workers,
            "parent": parent,
            "lineage": lineage,
            "kubernetes": kubernetes,
        }
        for key, value in values.items():
            object.__setattr__(self, key, value)
        self._validate()

    def _validate(self) -> None:
        for name in ("env", "secret_env", "tags"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise SpecError(_flag(name), f"must be a mapping of KEY to VALUE, got {value!r}")
            object.__setattr__(self, name, dict(value))
        for name in ("files", "out"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, list | tuple):
                raise SpecError(_flag(name), f"must be a list of strings, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        try:
            framework = frameworks.get(self.framework)
        except frameworks.UnknownFramework as err:
            raise SpecError("--framework", str(err)) from None
        object.__setattr__(self, "framework", framework.name)
        if self.backend not in BACKENDS:  # plug-ins: read the entry points only then (~90 ms)
            _check_choice("--backend", self.backend, backend_names())
        if isinstance(self.workers, str) and ":" in self.workers:  # --workers MIN:MAX
            low, _, high = self.workers.partition(":")
            try:
                workers, least = int(high), int(low)
            except ValueError:
                raise SpecError(
                    "--workers", f"{self.workers!r} is not N or MIN:MAX (e.g. --workers 2:4)"
                ) from None
            object.__setattr__(self, "workers", workers)
            object.__setattr__(self, "min_workers", least)
        _check_int("--workers", self.workers, minimum=1, example="--workers 2")
        if self.min_workers is not None:
            _check_int("--workers", self.min_workers, minimum=1, example="--workers 2:4")
            if self.min_workers > self.workers:
                raise SpecError(
                    "--workers",
                    f"{self.min_workers}:{self.workers}: MIN must not be more than MAX "
                    "(e.g. --workers 2:4)",
                )
            if not framework.elastic:
                elastic = [f.name for f in frameworks.all_frameworks() if f.elastic]
                raise SpecError(
                    "--workers",
                    f"MIN:MAX (elastic) is not supported for {framework.name}; "
                    f"it is for {', '.join(elastic)}",
                )
        _check_int("--gpus", self.gpus, minimum=0, example="--gpus 1")
        object.__setattr__(self, "nproc_per_worker", _nproc(self.nproc_per_worker, self.gpus))
        _check_int("--max-restarts", self.max_restarts, minimum=0, example="--max-restarts 3")
        _check_timeout(self.timeout)
        if self.name is not None:
            check_job_name(self.name)
        reserved = RESERVED_ENV | framework.reserved_env
        _check_env(self.env, reserved)
        _check_secret_env(self.secret_env, self.env, reserved)
        for name in self.out:
            if not isinstance(name, str) or not name.isidentifier():
                raise SpecError(
                    "--out", f"{name!r} is not a variable name (for example --out model,metrics)"
                )
        for path in self.files:
            if not isinstance(path, str) or not path or "\x00" in path:
                raise SpecError("--files", f"{path!r} is not a file path")
        _check_tags(self.tags)
        for field in ("sweep", "parent", "lineage"):
            value = getattr(self, field)
            if value is not None and not (isinstance(value, str) and _DNS1123_LABEL.match(value)):
                raise SpecError(field, f"{value!r} is not a job or sweep id")
        if self.experiment is not None and (
            not isinstance(self.experiment, str)
            or not self.experiment.strip()
            or len(self.experiment) > MAX_EXPERIMENT_LENGTH
        ):
            raise SpecError(
                "--experiment",
                f"{self.experiment!r} is not an experiment name: give 1 to "
                f"{MAX_EXPERIMENT_LENGTH} characters, e.g. --experiment lr-search",
            )
        if self.backend != "kubernetes":
            self._check_kubernetes_only()
        refusal = framework.check(
            nproc_per_worker=self.nproc_per_worker,
            gpus=self.gpus,
            api=self.kubernetes.api if self.backend == "kubernetes" else None,
        )
        if refusal is not None:
            raise SpecError(*refusal)

    @property
    def framework_descriptor(self) -> frameworks.Framework:
        """The :class:`~jupyter_training.frameworks.Framework` this job runs."""
        return frameworks.get(self.framework)

    @property
    def world_size(self) -> int:
        """Processes in the job: ``workers`` x ``nproc_per_worker``."""
        return self.workers * int(self.nproc_per_worker)

    def _check_kubernetes_only(self) -> None:
        """Refuse Kubernetes-only settings on any other backend (local or a plug-in)."""
        for name, source in self.secret_env.items():
            if source:
                raise SpecError(
                    "--secret-env",
                    f"{name}={source} reads a Kubernetes Secret, which needs --backend "
                    f"kubernetes; on {self.backend} use --secret-env {name} to pass {name} "
                    "from the kernel's environment",
                )
        changed = self.kubernetes.changed()
        if changed:
            raise SpecError(
                _flag(changed[0]),
                f"only applies to --backend kubernetes, not {self.backend}; remove it or "
                "add --backend kubernetes",
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        """Build a spec from JSON-like data (Kubernetes settings flat or under
        ``kubernetes``), refusing unknown keys by name."""
        if not isinstance(data, Mapping):
            raise SpecError("spec", f"expected an object, got {type(data).__name__}")
        known = {*GENERAL_FIELDS, *KUBERNETES_FIELDS, "kubernetes"}
        unknown = sorted(set(data) - known, key=str)
        if unknown:
            raise SpecError(
                str(unknown[0]),
                f"unknown setting; known settings are {', '.join(sorted(known))}",
            )
        return cls(**data)

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> JobSpec:
        """A spec read back from the job history, validated when it still is valid.

        History outlives versions: a spec that today's rules refuse (a framework
        no longer installed, a limit since tightened) is kept as it was recorded,
        unvalidated, so listing old jobs never fails.
        """
        try:
            return cls.from_dict(data)
        except (SpecError, TypeError):
            spec = object.__new__(cls)
            for name in GENERAL_FIELDS:
                object.__setattr__(spec, name, data.get(name, JOBSPEC_DEFAULTS[name]))
            options = object.__new__(KubernetesOptions)
            for name in KUBERNETES_FIELDS:
                object.__setattr__(options, name, data.get(name, _K8S_DEFAULTS[name]))
            object.__setattr__(spec, "kubernetes", options)
            return spec

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data, Kubernetes settings flat (``from_dict`` reverses it)."""
        data = {name: getattr(self, name) for name in GENERAL_FIELDS}
        data["env"] = dict(self.env)
        data["secret_env"] = dict(self.secret_env)
        data["tags"] = dict(self.tags)
        data.update(self.kubernetes.to_dict())
        return data

    @property
    def secrets_from_environment(self) -> list[str]:
        """``--secret-env`` names whose values come from the submitting process' environment."""
        return [name for name, source in self.secret_env.items() if not source]

    def replace(self, **changes: Any) -> JobSpec:
        """A copy with ``changes`` applied (and validated); Kubernetes settings may be flat."""
        return dataclasses.replace(self, **changes)


GENERAL_FIELDS = tuple(f.name for f in dataclasses.fields(JobSpec) if f.name != "kubernetes")


def parse_volume(value: object, flag: str = "--volume") -> tuple[str, str]:
    """``CLAIM:/mount/path`` -> (claim, path); raises ``SpecError(flag)``."""
    claim, sep, path = value.partition(":") if isinstance(value, str) else ("", "", "")
    if not sep or not _DNS1123_SUBDOMAIN.match(claim) or not path.startswith("/"):
        raise SpecError(
            flag,
            f"{value!r} is not CLAIM:/absolute/path, the name of a "
            "PersistentVolumeClaim and where to mount it (for example work:/mnt/work)",
        )
    return claim, path


def parse_assignments(flag: str, items: list[str] | None) -> dict[str, str]:
    """Turn repeated ``--flag KEY=VALUE`` strings into a dict."""
    result: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(
                flag, f"{item!r} is not KEY=VALUE (for example {flag} {_EXAMPLES[flag]})"
            )
        result[key] = value
    return result


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
    return parse_assignments("--env", items)


def parse_secret_env(items: list[str] | None) -> dict[str, str]:
    """Repeated ``--secret-env NAME`` or ``NAME=SECRET/KEY`` (``NAME=SECRET``: key NAME)."""
    result: dict[str, str] = {}
    for item in items or []:
        name, sep, source = item.partition("=")
        if sep and source and "/" not in source:
            source = f"{source}/{name}"
        if sep and not source:
            raise SpecError(
                "--secret-env",
                f"{item!r} names no Secret: use --secret-env {name} (from the kernel's "
                f"environment) or --secret-env {name}=SECRET/KEY (a Kubernetes Secret)",
            )
        result[name] = source
    return result


def secret_values(spec: JobSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """The values of ``spec``'s ``--secret-env`` names taken from ``environ``.

    They are handed to the backend and never stored: the spec keeps the names only.
    """
    values = {}
    for name in spec.secrets_from_environment:
        value = environ.get(name)
        if not value:
            state = "empty" if value == "" else "not set"
            raise SpecError(
                "--secret-env",
                f"{name} is {state} in the kernel's environment; set it first (for example "
                f"os.environ[{name!r}] = getpass.getpass()), or read it from a Kubernetes "
                f"Secret with --secret-env {name}=SECRET/KEY",
            )
        if len(value) < MIN_SECRET_LENGTH:
            raise SpecError(
                "--secret-env",
                f"{name} is only {len(value)} characters; a secret shorter than "
                f"{MIN_SECRET_LENGTH} cannot be masked in logs without garbling them",
            )
        values[name] = value
    return values


def _flag(field: str) -> str:
    return {"volumes": "--volume", "node_selector": "--node-selector", "tags": "--tag"}.get(
        field, "--" + field.replace("_", "-")
    )


def _check_dns_name(flag: str, value: object, pattern: re.Pattern[str], limit: int) -> None:
    if not isinstance(value, str) or not pattern.match(value) or len(value) > limit:
        raise SpecError(
            flag,
            f"{value!r} is not a valid Kubernetes name: use lowercase letters, "
            "digits and '-', starting and ending with a letter or digit",
        )


def _check_node_selector(selector: Mapping[str, str]) -> None:
    for key, value in selector.items():
        prefix, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", "")
        if (prefix and not _DNS1123_SUBDOMAIN.match(prefix)) or not _LABEL_NAME.match(name):
            raise SpecError(
                "--node-selector",
                f"{key!r} is not a label key such as nvidia.com/gpu.product or disktype",
            )
        if not isinstance(value, str) or (value and not _LABEL_NAME.match(value)):
            raise SpecError(
                "--node-selector",
                f"{value!r} (for {key}) is not a label value: "
                "at most 63 letters, digits, '-', '_' or '.'",
            )


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
    if value > MAX_TIMEOUT_SECONDS:
        raise SpecError("--timeout", f"{value:g} s is too long; at most {MAX_TIMEOUT_SECONDS} s")


def _nproc(value: object, gpus: int) -> int:
    if value == "auto":
        return max(1, gpus)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(
            "--nproc-per-worker",
            f"must be a whole number >= 1 or 'auto' (one per GPU), got {value!r} "
            "(for example --nproc-per-worker 2)",
        )
    return value


def _check_env_name(flag: str, name: object, reserved: frozenset[str]) -> None:
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise SpecError(
            flag,
            f"{name!r} is not a valid variable name: use letters, digits and '_', "
            "not starting with a digit",
        )
    if name in reserved:
        raise SpecError(flag, f"{name} is set by the training runtime for every worker; remove it")


def _check_env(env: Mapping[str, str], reserved: frozenset[str]) -> None:
    for key, value in env.items():
        _check_env_name("--env", key, reserved)
        if not isinstance(value, str):
            raise SpecError("--env", f"value of {key} must be a string, got {value!r}")
        if "\x00" in value:
            raise SpecError("--env", f"value of {key} contains a NUL byte")


def _check_secret_env(
    secret_env: Mapping[str, str], env: Mapping[str, str], reserved: frozenset[str]
) -> None:
    for name, source in secret_env.items():
        _check_env_name("--secret-env", name, reserved)
        if name in env:
            raise SpecError(
                "--secret-env", f"{name} is also set with --env; keep only --secret-env {name}"
            )
        if not isinstance(source, str) or (source and not _SECRET_REF.match(source)):
            raise SpecError(
                "--secret-env",
                f"{name}={source!r}: expected SECRET/KEY, a Kubernetes Secret's name and one "
                f"of its keys (for example --secret-env {name}=hf-token/token)",
            )


def _check_tags(tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        if not isinstance(key, str) or not _TAG_KEY.match(key):
            raise SpecError(
                "--tag",
                f"{key!r} is not a tag name: use letters, digits and _ . - / : or spaces, "
                "1 to 250 characters (for example --tag team=vision)",
            )
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE_LENGTH:
            raise SpecError(
                "--tag",
                f"the value of {key!r} must be text of at most {MAX_TAG_VALUE_LENGTH} characters",
            )


def _check_quantity(flag: str, value: object) -> None:
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise SpecError(
            flag,
            f"{value!r} is not a Kubernetes quantity (for example --cpu 2, --cpu 500m, "
            "--memory 4Gi)",
        )


JOBSPEC_DEFAULTS = {
    f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
    for f in dataclasses.fields(JobSpec)
}
