"""What every framework descriptor answers, and the placement of one worker process.

Stdlib only: this package also ships to worker pods with the runtime, where a
descriptor's worker half (:meth:`Framework.complete_env`,
:meth:`Framework.around_cell`) runs before and around the cell.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping, MutableMapping

#: Names every local worker gets, whatever its framework (the PyTorchJob pod's core set).
COMMON_ENV = frozenset(
    {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"}
)


@dataclasses.dataclass(frozen=True)
class KubeflowKind:
    """A Training Operator v1 job kind (kubeflow.org/v1) as its CRD and controller define it.

    ``master`` is the replica type that holds rank 0 ("Master" for PyTorchJob and
    XGBoostJob), or None when every replica is a ``Worker`` and rank ``i`` is
    worker ``i`` (JAXJob, TFJob).
    """

    kind: str
    plural: str
    replica_key: str
    container: str
    port: int
    port_name: str
    master: str | None = "Master"


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where one process sits in a local job: its ranks, its node and its ports."""

    job_id: str
    rank: int
    nnodes: int
    nproc_per_node: int = 1
    master_addr: str = "127.0.0.1"
    #: ``ports[0]`` is the rendezvous port; frameworks asking for more get one per process.
    ports: tuple[int, ...] = (0,)
    restart_count: int = 0
    max_restarts: int = 0

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node

    @property
    def node_rank(self) -> int:
        return self.rank // self.nproc_per_node

    @property
    def local_rank(self) -> int:
        return self.rank % self.nproc_per_node

    @property
    def master_port(self) -> int:
        return self.ports[0]


class Framework:
    """One training framework: everything about it that the rest of the project asks.

    Subclass it in a module of this package and expose an instance as
    ``FRAMEWORK``; the registry (:mod:`jupyter_training.frameworks`) finds it.
    """

    #: The ``--framework`` value, and other spellings accepted for it.
    name: str = ""
    #: How people write it (the sidebar's label).
    title: str = ""
    aliases: tuple[str, ...] = ()
    #: One line for ``--help`` and the sidebar's framework list.
    summary: str = ""
    #: The module a worker imports to use it (named in errors when it is missing).
    module: str = ""
    #: Extra the user installs to get it locally (``pip install jupyter-training[...]``).
    extra: str = ""
    #: Training Operator v1 kind, and the Trainer v2 runtime (None: v2 has none).
    kubeflow: KubeflowKind | None = None
    v2_runtime: str | None = None
    #: Default container image on Kubernetes (``c.TrainingApp.<name>_image``).
    default_image: str = ""
    #: Variables this framework's launcher sets, beyond :data:`COMMON_ENV`; ``--env`` may not.
    reserved_env: frozenset[str] = frozenset()
    #: Leave with ``os._exit`` after the cell when this module is loaded (slow or crashing
    #: interpreter teardown).
    fast_exit_modules: tuple[str, ...] = ()
    #: What a warm process imports before forking this framework's workers (nothing that
    #: starts a thread or touches a GPU at import).
    warm_modules: tuple[str, ...] = ()
    #: Whether the job may run elastic (``--workers MIN:MAX``: PyTorchJob's elasticPolicy,
    #: torchrun's min:max nodes).
    elastic: bool = False

    # -- the client side ------------------------------------------------------------------

    def ports_needed(self, world_size: int) -> int:
        """Free ports the local backend must find for a job of ``world_size`` processes."""
        return 1

    def local_env(self, place: Placement) -> dict[str, str]:
        """The contract environment of one local worker process."""
        return {
            "MASTER_ADDR": place.master_addr,
            "MASTER_PORT": str(place.master_port),
            "WORLD_SIZE": str(place.world_size),
            "RANK": str(place.rank),
            "LOCAL_RANK": str(place.local_rank),
            "LOCAL_WORLD_SIZE": str(place.nproc_per_node),
        }

    def check(self, *, nproc_per_worker: int, gpus: int, api: str | None) -> tuple[str, str] | None:
        """Why this framework cannot run such a job, as (flag, message), or None.

        ``api`` is the resolved Kubeflow API on Kubernetes, None on the local backend.
        """
        return None

    def v1_spec_fields(self, nproc_per_worker: int) -> dict[str, object]:
        """Fields of the v1 job's ``spec`` besides the replica specs and run policy."""
        return {}

    def help(self) -> str:
        return f"{self.name}: {self.summary}"

    def describe(self) -> dict[str, object]:
        """What the sidebar and the REST API show of this framework."""
        return {
            "name": self.name,
            "title": self.title or self.name,
            "aliases": list(self.aliases),
            "summary": self.summary,
            "kubeflow_kind": self.kubeflow.kind if self.kubeflow else None,
            "v2_runtime": self.v2_runtime,
        }

    # -- the worker side ------------------------------------------------------------------

    #: Platform names that carry a contract name's value, tried in order
    #: (e.g. ``{"RANK": ("PET_NODE_RANK",)}``), for pods whose operator sets only its own.
    env_aliases: Mapping[str, tuple[str, ...]] = {}

    def complete_env(self, env: MutableMapping[str, str]) -> None:
        """Fill in contract names a platform left out, so ``rank()`` & co. work everywhere."""
        for name, aliases in self.env_aliases.items():
            if name not in env:
                for alias in aliases:
                    if alias in env:
                        env[name] = env[alias]
                        break
        env.setdefault("RANK", "0")
        env.setdefault("WORLD_SIZE", "1")
        env.setdefault("LOCAL_RANK", "0")
        env.setdefault("LOCAL_WORLD_SIZE", "1")

    @contextlib.contextmanager
    def around_cell(self) -> Iterator[None]:
        """What the worker runtime does before the cell and after it succeeds."""
        yield

    def pod_processes(self, env: Mapping[str, str]) -> int:
        """Ranks the runtime must start in this pod (its operator asked for several)."""
        return 1

    def pod_node(self, env: Mapping[str, str]) -> tuple[int, int]:
        """(this pod's node rank, number of nodes), for a pod of several ranks."""
        return int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))

    def __repr__(self) -> str:
        return f"<framework {self.name}>"


def one_process_per_gpu_set(name: str, nproc_per_worker: int, gpus: int) -> tuple[str, str] | None:
    """The refusal for frameworks that take every GPU they see (all but PyTorch, which picks
    one by LOCAL_RANK): several processes of one worker would fight over the same GPUs."""
    if nproc_per_worker > 1 and gpus:
        return (
            "--nproc-per-worker",
            f"the processes of a {name} worker would all take its {gpus} GPU(s); use "
            "--nproc-per-worker 1 with more --workers (one per GPU set)",
        )
    return None


_LOOPBACK = ("127.0.0.1", "localhost")
_TCP_LISTEN = "0A"


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK


def wait_for_local_listener(port: int, timeout: float) -> bool:
    """Wait until a socket on this host listens on ``port`` (read from /proc/net).

    Lets a local worker wait for rank 0's server without connecting to it, where a
    framework's own retry after a refused connection backs off for seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _is_listening(port):
            return True
        time.sleep(0.01)
    return False


def _is_listening(port: int) -> bool:
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                next(rows, None)
                for row in rows:
                    fields = row.split()
                    if fields[1].endswith(wanted) and fields[3] == _TCP_LISTEN:
                        return True
        except OSError:
            return True  # no /proc: let the framework's own retries do the waiting
    return False
