"""A scriptable stand-in for the Kubeflow controllers, the scheduler and the kubelet.

``FakeOperator`` changes state only through the emulator's HTTP API, so watchers see ADDED,
MODIFIED and DELETED events exactly as they would from the real controllers.  It follows the
conventions of the Training Operator v1 (release-1.9) and Trainer v2 (TrainJob over JobSet):

* v1 PyTorchJob/XGBoostJob/JAXJob/TFJob pods ``<job>-master-0`` / ``<job>-worker-<i>`` with the
  ``training.kubeflow.org/*`` labels, the replica template's pod spec, the env contract appended
  to every container, ``Created/Running/Restarting/Succeeded/Failed`` conditions with the real
  ``setCondition`` semantics and ``replicaStatuses`` keyed ``Master``/``Worker``; a PyTorchJob
  with an ``elasticPolicy`` gets elastic.go's env (``PET_RDZV_ENDPOINT`` on the Worker's port,
  ``PET_RDZV_BACKEND``, ``PET_NNODES=MIN:MAX``, ``PET_MAX_RESTARTS``, ``PET_RDZV_ID``, ...), and
  the webhook wants its Worker replicas;
* v2 TrainJob pods ``<tj>-node-0-<idx>-<random5>`` with the JobSet/Job labels, container
  ``node``, ``PET_*``/``DMLC_*``/``JAX_*`` env, and only ``Complete/Failed/Suspended``
  conditions.

Ranks: v1 master = rank 0, worker ``i`` = rank ``i + 1`` (workers only: rank ``i``);
v2 completion index = rank.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .emulator import ApiError, KubeEmulator, now_rfc3339, random_suffix

__all__ = [
    "COMPLETION_INDEX",
    "JAX",
    "JOBSET_NAME",
    "JOB_NAME",
    "JOB_ROLE",
    "OPERATOR_NAME",
    "PYTORCH",
    "REPLICATED_JOB",
    "REPLICA_INDEX",
    "REPLICA_TYPE",
    "TENSORFLOW",
    "TRAINJOB",
    "XGBOOST",
    "FakeOperator",
    "JobHandle",
    "JobKind",
    "job_kind",
]

OPERATOR_NAME = "training.kubeflow.org/operator-name"
JOB_NAME = "training.kubeflow.org/job-name"
REPLICA_TYPE = "training.kubeflow.org/replica-type"
REPLICA_INDEX = "training.kubeflow.org/replica-index"
JOB_ROLE = "training.kubeflow.org/job-role"
JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB = "jobset.sigs.k8s.io/replicatedjob-name"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
TRAINER_PORT = 29500


@dataclass(frozen=True)
class JobKind:
    """What differs between PyTorchJob, XGBoostJob and TrainJob."""

    kind: str
    plural: str
    group: str
    version: str
    container: str
    operator_name: str = ""  # v1 only
    specs_key: str = ""  # v1 only
    port_name: str = ""
    default_port: int = TRAINER_PORT
    default_restart: str = "OnFailure"
    #: Replica types the v1 webhook accepts.
    replica_types: tuple[str, ...] = ("Master", "Worker")

    @property
    def v2(self) -> bool:
        """Whether this is a Trainer v2 kind."""
        return not self.specs_key

    @property
    def resource(self) -> str:
        """The emulator resource key."""
        return f"{self.group}/{self.version}/{self.plural}"

    @property
    def api_version(self) -> str:
        """``group/version``."""
        return f"{self.group}/{self.version}"


PYTORCH = JobKind(
    "PyTorchJob",
    "pytorchjobs",
    "kubeflow.org",
    "v1",
    "pytorch",
    "pytorchjob-controller",
    "pytorchReplicaSpecs",
    "pytorchjob-port",
    23456,
    "OnFailure",
)
XGBOOST = JobKind(
    "XGBoostJob",
    "xgboostjobs",
    "kubeflow.org",
    "v1",
    "xgboost",
    "xgboostjob-controller",
    "xgbReplicaSpecs",
    "xgboostjob-port",
    9999,
    "Never",
)
JAX = JobKind(
    "JAXJob",
    "jaxjobs",
    "kubeflow.org",
    "v1",
    "jax",
    "jaxjob-controller",
    "jaxReplicaSpecs",
    "jaxjob-port",
    6666,
    "Never",
    ("Worker",),
)
TENSORFLOW = JobKind(
    "TFJob",
    "tfjobs",
    "kubeflow.org",
    "v1",
    "tensorflow",
    "tfjob-controller",
    "tfReplicaSpecs",
    "tfjob-port",
    2222,
    "Never",
    ("Chief", "Master", "PS", "Worker", "Evaluator"),
)
V1_KINDS = (PYTORCH, XGBOOST, JAX, TENSORFLOW)
TRAINJOB = JobKind("TrainJob", "trainjobs", "trainer.kubeflow.org", "v1alpha1", "node")


def job_kind(name: str | JobKind) -> JobKind:
    """``pytorch``, ``PyTorchJob``, ``pytorchjobs``, ``xgboost...``, ``trainjob...`` -> JobKind."""
    if isinstance(name, JobKind):
        return name
    key = name.lower().rsplit("/", 1)[-1]
    for kind in (*V1_KINDS, TRAINJOB):
        if key in (kind.kind.lower(), kind.plural, kind.plural[:-1], kind.container):
            return kind
    if key in ("torch", "train", "tf"):
        return {"torch": PYTORCH, "train": TRAINJOB, "tf": TENSORFLOW}[key]
    raise KeyError(f"unknown job kind {name!r}")


@dataclass(frozen=True)
class Replica:
    """One pod of a job: its rank, replica type (``Master``/``Worker``/``node``) and index."""

    rank: int
    rtype: str
    index: int


def _env(name: str, value: str | int) -> dict[str, Any]:
    return {"name": name, "value": str(value)}


def _env_from_index(name: str) -> dict[str, Any]:
    path = f"metadata.annotations['{COMPLETION_INDEX}']"
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def _container_id() -> str:
    return "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex


def _condition(ctype: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    cond: dict[str, Any] = {"type": ctype, "status": status, "lastTransitionTime": now_rfc3339()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


# --------------------------------------------------------------------------------------------
# v1 validation webhook (what the Training Operator's validating webhooks reject)
# --------------------------------------------------------------------------------------------

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _apply_node_patches(spec: Mapping[str, Any], pod_spec: dict[str, Any]) -> None:
    """Merge the TrainJob's ``runtimePatches`` for the ``node`` pods (volumes, mounts, node
    selector) into ``pod_spec``, as the Trainer's JobSet builder does."""
    for patch in spec.get("runtimePatches") or []:
        template = (patch.get("trainingRuntimeSpec") or {}).get("template") or {}
        for rjob in (template.get("spec") or {}).get("replicatedJobs") or []:
            if rjob.get("name") != "node":
                continue
            patched = ((rjob.get("template") or {}).get("spec") or {}).get("template") or {}
            patched = patched.get("spec") or {}
            pod_spec["volumes"] = [*pod_spec.get("volumes", []), *(patched.get("volumes") or [])]
            if patched.get("nodeSelector"):
                pod_spec["nodeSelector"] = dict(patched["nodeSelector"])
            for patched_container in patched.get("containers") or []:
                for container in pod_spec["containers"]:
                    if container["name"] == patched_container.get("name"):
                        mounts = patched_container.get("volumeMounts") or []
                        container["volumeMounts"] = [*container.get("volumeMounts", []), *mounts]


def _camel(rtype: str) -> str:
    """The operator's replica-type normalisation (``ps`` -> ``PS``, ``worker`` -> ``Worker``)."""
    return "PS" if rtype.lower() == "ps" else rtype.capitalize()


def _v1_validator(kind: JobKind) -> Callable[[dict[str, Any], str], None]:
    webhook = f"validator.{kind.kind.lower()}.training-operator.kubeflow.org"

    def validate(obj: dict[str, Any], operation: str) -> None:
        errors: list[str] = []
        name = (obj.get("metadata") or {}).get("name", "")
        if not _DNS1035.match(name) or len(name) > 63:
            errors.append(
                f'metadata.name: Invalid value: "{name}": should match: a DNS-1035 label must '
                "consist of lower case alphanumeric characters or '-', start with an alphabetic "
                "character, and end with an alphanumeric character"
            )
        base = f"spec.{kind.specs_key}"
        specs = (obj.get("spec") or {}).get(kind.specs_key)
        if not isinstance(specs, dict) or not specs:
            errors.append(f"{base}: Required value: must be required")
            specs = {}
        for rtype, rspec in specs.items():
            role = f"{base}[{rtype}]"
            if _camel(rtype) not in kind.replica_types:
                supported = ", ".join(f'"{t}"' for t in kind.replica_types)
                errors.append(
                    f'{role}: Unsupported value: "{rtype}": supported values: {supported}'
                )
            path = f"{role}.template.spec.containers"
            containers = (((rspec or {}).get("template") or {}).get("spec") or {}).get(
                "containers"
            ) or []
            if not containers:
                errors.append(f"{path}: Required value: must be specified")
            for i, container in enumerate(containers):
                if not container.get("image"):
                    errors.append(f"{path}[{i}].image: Required value: must be required")
            if not any(c.get("name") == kind.container for c in containers):
                errors.append(
                    f"{path}: Required value: must have at least one container with name "
                    f"{kind.container}"
                )
            replicas = (rspec or {}).get("replicas")
            if rtype.capitalize() == "Master" and replicas != 1:
                errors.append(f"{role}.replicas: Forbidden: must be 1")
            elif replicas is not None and replicas < 1 and kind is PYTORCH:
                errors.append(f"{role}.replicas: Forbidden: must be at least 1")
        spec = obj.get("spec") or {}
        if kind is PYTORCH and spec.get("elasticPolicy") is not None:  # validateSpec
            if "Worker" not in {_camel(k) for k in specs}:
                errors.append(
                    f"{base}[Worker]: Required value: must be configured if elastic policy is used"
                )
            if (spec["elasticPolicy"] or {}).get("nProcPerNode") is not None and (
                spec.get("nprocPerNode") is not None
            ):
                errors.append(
                    "spec.elasticPolicy.nProcPerNode: Forbidden: must not be used with "
                    "spec.nprocPerNode"
                )
        if kind is XGBOOST and "Master" not in {k.capitalize() for k in specs}:
            errors.append(f"{base}[Master]: Required value: must be present")
        if errors:
            text = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
            raise ApiError(
                403, "Forbidden", f'admission webhook "{webhook}" denied the request: {text}'
            )

    return validate


# --------------------------------------------------------------------------------------------
# Pod status builders (kubelet's view)
# --------------------------------------------------------------------------------------------


def _containers(pod: Mapping[str, Any], key: str = "containers") -> list[dict[str, Any]]:
    return list((pod.get("spec") or {}).get(key) or [])


def _statuses(pod: Mapping[str, Any], key: str = "containerStatuses") -> dict[str, dict]:
    return {s["name"]: s for s in (pod.get("status") or {}).get(key) or []}


def _cstatus(container: Mapping[str, Any], old: Mapping[str, Any] | None, **fields: Any) -> dict:
    status = {
        "name": container.get("name", ""),
        "image": container.get("image", ""),
        "imageID": (old or {}).get("imageID", ""),
        "ready": False,
        "started": False,
        "restartCount": (old or {}).get("restartCount", 0),
        "lastState": copy.deepcopy((old or {}).get("lastState") or {}),
    }
    if (old or {}).get("containerID"):
        status["containerID"] = old["containerID"]  # type: ignore[index]
    status.update(fields)
    return status


def _pod_conditions(scheduled: bool, ready: bool, *, message: str = "") -> list[dict]:
    if not scheduled:
        return [_condition("PodScheduled", "False", "Unschedulable", message)]
    reason = "" if ready else "ContainersNotReady"
    flag = "True" if ready else "False"
    return [
        _condition("PodScheduled", "True"),
        _condition("Initialized", "True"),
        _condition("ContainersReady", flag, reason),
        _condition("Ready", flag, reason),
    ]


# --------------------------------------------------------------------------------------------
# Job handles
# --------------------------------------------------------------------------------------------


class JobHandle:
    """Script one job: its pods (by rank), their containers and logs, and the job status."""

    def __init__(self, operator: FakeOperator, kind: JobKind, namespace: str, name: str) -> None:
        self.operator, self.kind, self.namespace, self.name = operator, kind, namespace, name
        self._pods: dict[int, str] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<JobHandle {self.kind.kind} {self.namespace}/{self.name}>"

    @property
    def emulator(self) -> KubeEmulator:
        """The emulator the operator acts on."""
        return self.operator.emulator

    # ---- reading ---------------------------------------------------------------------------

    def obj(self) -> dict[str, Any]:
        """The job object as stored now."""
        obj = self.emulator.get(self.kind.resource, self.namespace, self.name)
        if obj is None:
            raise LookupError(f"{self.kind.kind} {self.namespace}/{self.name} does not exist")
        return obj

    def status(self) -> dict[str, Any]:
        """The job's status as stored now."""
        return self.obj().get("status") or {}

    def conditions(self) -> list[tuple[str, str]]:
        """``[(type, status), ...]`` in list order."""
        return [(c["type"], c["status"]) for c in self.status().get("conditions") or []]

    def _specs(self, job: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """v1 replica specs with CamelCase keys and defaulted replicas/restartPolicy."""
        raw = (job.get("spec") or {}).get(self.kind.specs_key) or {}
        specs: dict[str, dict[str, Any]] = {}
        for key, spec in raw.items():
            spec = dict(spec or {})
            spec.setdefault("replicas", 1)
            spec.setdefault("restartPolicy", self.kind.default_restart)
            specs[_camel(key)] = spec
        return specs

    def _runtime(self, job: Mapping[str, Any]) -> dict[str, Any]:
        ref = (job.get("spec") or {}).get("runtimeRef") or {}
        name = ref.get("name", "")
        if ref.get("kind") == "TrainingRuntime":
            found = self.emulator.get("trainingruntimes", self.namespace, name)
        else:
            found = self.emulator.get("clustertrainingruntimes", None, name)
        return found or {"metadata": {"name": name}}

    def replicas(self, job: Mapping[str, Any] | None = None) -> list[Replica]:
        """The pods this job should have, in rank order."""
        job = job or self.obj()
        if self.kind.v2:
            trainer = (job.get("spec") or {}).get("trainer") or {}
            policy = (self._runtime(job).get("spec") or {}).get("mlPolicy") or {}
            nodes = trainer.get("numNodes") or policy.get("numNodes") or 1
            return [Replica(i, "node", i) for i in range(int(nodes))]
        specs = self._specs(job)
        reps: list[Replica] = []
        offset = 0
        for first in ("Master", "Chief"):  # rank 0 (TFJob: the chief, then the workers)
            if first in specs:
                reps += [Replica(i, first, i) for i in range(int(specs[first]["replicas"]))]
                offset = len(reps)
        if "Worker" in specs:
            count = int(specs["Worker"]["replicas"])
            reps += [Replica(i + offset, "Worker", i) for i in range(count)]
        return reps

    @property
    def world_size(self) -> int:
        """The number of pods (ranks)."""
        return len(self.replicas())

    def ranks(self) -> list[int]:
        """All ranks in order."""
        return [r.rank for r in self.replicas()]

    def _replica(self, rank: int) -> Replica:
        for rep in self.replicas():
            if rep.rank == rank:
                return rep
        raise IndexError(f"{self.name} has no rank {rank} (world size {self.world_size})")

    def pod_name(self, rank: int) -> str:
        """The pod of ``rank`` (v2 names carry a random suffix: create the pods first)."""
        with self._lock:
            if rank in self._pods:
                return self._pods[rank]
        rep = self._replica(rank)
        if self.kind.v2:
            pods = self.pods(f"{COMPLETION_INDEX}={rep.index}")
            if not pods:
                raise LookupError(f"no pod for rank {rank} of {self.name} yet")
            return pods[-1]["metadata"]["name"]
        return f"{self.name}-{rep.rtype.lower()}-{rep.index}"

    def pod(self, rank: int) -> dict[str, Any]:
        """The pod object of ``rank`` as stored now."""
        pod = self.emulator.get("pods", self.namespace, self.pod_name(rank))
        if pod is None:
            raise LookupError(f"pod {self.pod_name(rank)} does not exist")
        return pod

    def selector(self) -> str:
        """The label selector of this job's pods."""
        if self.kind.v2:
            return f"{JOBSET_NAME}={self.name},{REPLICATED_JOB}=node"
        return f"{OPERATOR_NAME}={self.kind.operator_name},{JOB_NAME}={self.name}"

    def pods(self, extra_selector: str = "") -> list[dict[str, Any]]:
        """This job's pods (oldest first for v2)."""
        sel = self.selector() + (f",{extra_selector}" if extra_selector else "")
        pods = self.emulator.objects("pods", self.namespace, label_selector=sel)
        return sorted(pods, key=lambda p: int(p["metadata"]["resourceVersion"]))

    # ---- building pods ---------------------------------------------------------------------

    def _owner(self, job: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": self.kind.api_version,
            "kind": self.kind.kind,
            "name": self.name,
            "uid": job["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def _v1_env(self, job: Mapping[str, Any], rep: Replica) -> list[dict[str, Any]]:
        specs, kind = self._specs(job), self.kind
        total = sum(int(s["replicas"]) for s in specs.values())
        master = f"{self.name}-master-0"
        port = self._port(specs.get("Master"))
        if kind is JAX:  # pkg/controller.v1/jax/envvar.go
            port = self._port(specs.get("Worker"))
            return [
                _env("PYTHONUNBUFFERED", 1),
                _env("COORDINATOR_PORT", port),
                _env("COORDINATOR_ADDRESS", f"{self.name}-worker-0"),
                _env("NUM_PROCESSES", total),
                _env("PROCESS_ID", rep.index),
            ]
        if kind is TENSORFLOW:  # pkg/controller.v1/tensorflow/tensorflow.go: genTFConfigJSONStr
            if total <= 1:
                return []
            cluster = {
                rtype.lower(): [
                    f"{self.name}-{rtype.lower()}-{i}.{self.namespace}.svc:{self._port(rspec)}"
                    for i in range(int(rspec["replicas"]))
                ]
                for rtype, rspec in specs.items()
            }
            config = {
                "cluster": cluster,
                "task": {"type": rep.rtype.lower(), "index": rep.index},
                "environment": "cloud",
            }
            return [_env("TF_CONFIG", json.dumps(config, sort_keys=True))]
        if kind is XGBOOST:
            env = [_env("MASTER_PORT", port), _env("MASTER_ADDR", master)]
            env += [_env("WORLD_SIZE", total), _env("RANK", rep.rank), _env("PYTHONUNBUFFERED", 1)]
            if total > 1:
                workers = ",".join(f"{self.name}-worker-{i}" for i in range(total - 1))
                env += [
                    _env("WORKER_PORT", self._port(specs.get("Worker"))),
                    _env("WORKER_ADDRS", workers),
                ]
            return env
        spec = job.get("spec") or {}
        elastic = spec.get("elasticPolicy")
        nproc = spec.get("nprocPerNode")
        if nproc is None and not (elastic or {}).get("nProcPerNode"):
            nproc = "auto"  # what the defaulter sets
        env = [_env("PYTHONUNBUFFERED", 1)]
        if "Master" in specs:
            per_node = int(nproc) if str(nproc).isdigit() else 1
            env += [_env("MASTER_PORT", port), _env("PET_MASTER_PORT", port)]
            env += [_env("MASTER_ADDR", master), _env("PET_MASTER_ADDR", master)]
            env += [_env("WORLD_SIZE", total * per_node), _env("RANK", rep.rank)]
            env += [_env("PET_NODE_RANK", rep.rank)]
        if nproc is not None:
            env.append(_env("PET_NPROC_PER_NODE", nproc))
        if elastic:  # pkg/controller.v1/pytorch/elastic.go: ElasticEnvVarGenerator.Generate
            workers = int(specs.get("Worker", {}).get("replicas", 1))
            low = elastic.get("minReplicas") or elastic.get("maxReplicas") or workers  # defaulter
            high = elastic.get("maxReplicas") or low
            host = elastic.get("rdzvHost") or f"{self.name}-worker-0"
            rdzv_port = elastic.get("rdzvPort") or self._port(specs.get("Worker"))
            env.append(_env("PET_RDZV_ENDPOINT", f"{host}:{rdzv_port}"))
            env.append(_env("PET_RDZV_BACKEND", elastic.get("rdzvBackend") or "c10d"))
            env.append(_env("PET_NNODES", f"{low}:{high}"))
            if elastic.get("maxRestarts") is not None:
                env.append(_env("PET_MAX_RESTARTS", elastic["maxRestarts"]))
            if elastic.get("nProcPerNode") is not None:
                env.append(_env("PET_NPROC_PER_NODE", elastic["nProcPerNode"]))
            if elastic.get("rdzvId") is not None:
                env.append(_env("PET_RDZV_ID", elastic["rdzvId"]))
            if elastic.get("rdzvConf"):
                conf = ",".join(f"{c['key']}={c['value']}" for c in elastic["rdzvConf"])
                env.append(_env("PET_RDZV_CONF", conf))
            if elastic.get("standalone"):
                env.append(_env("PET_STANDALONE", ""))
        else:
            env.append(_env("PET_NNODES", total))
        return env

    def _port(self, spec: Mapping[str, Any] | None) -> int:
        containers = (((spec or {}).get("template") or {}).get("spec") or {}).get("containers")
        for container in containers or []:
            if container.get("name") == self.kind.container:
                for port in container.get("ports") or []:
                    if port.get("name") == self.kind.port_name:
                        return int(port["containerPort"])
        return self.kind.default_port

    def _v1_pod(self, job: Mapping[str, Any], rep: Replica) -> dict[str, Any]:
        specs = self._specs(job)
        rspec = specs[rep.rtype]
        template = copy.deepcopy(rspec.get("template") or {})
        tmeta, spec = template.get("metadata") or {}, template.get("spec") or {}
        labels = dict(tmeta.get("labels") or {})
        labels.update(
            {
                OPERATOR_NAME: self.kind.operator_name,
                JOB_NAME: self.name,
                REPLICA_TYPE: rep.rtype.lower(),
                REPLICA_INDEX: str(rep.index),
            }
        )
        master_role = rep.rtype == "Master" or (
            self.kind is PYTORCH and "Master" not in specs and rep.index == 0
        )
        if master_role:
            labels[JOB_ROLE] = "master"
        restart = rspec["restartPolicy"]
        spec["restartPolicy"] = "Never" if restart == "ExitCode" else restart
        containers = spec.setdefault("containers", [])
        if containers:
            names = [c.get("name") for c in containers]
            main = (
                containers[names.index(self.kind.container)]
                if self.kind.container in names
                else containers[0]
            )
            ports = main.setdefault("ports", [])
            if not any(p.get("name") == self.kind.port_name for p in ports):
                ports.append(
                    {
                        "name": self.kind.port_name,
                        "containerPort": self.kind.default_port,
                        "protocol": "TCP",
                    }
                )
        env = self._v1_env(job, rep)
        targets = containers
        if self.kind is TENSORFLOW:  # TF_CONFIG goes to the container named tensorflow only
            targets = [c for c in containers if c.get("name") == self.kind.container][:1]
        for container in targets:
            container["env"] = list(container.get("env") or []) + copy.deepcopy(env)
        if self.kind is PYTORCH and "Master" in specs and rep.rtype == "Worker":
            master = f"{self.name}-master-0"
            init = {
                "name": "init-pytorch",
                "image": "alpine:3.10",
                "imagePullPolicy": "IfNotPresent",
                "command": [
                    "sh",
                    "-c",
                    f"until nslookup {master}; do echo waiting for master; sleep 2; done",
                ],
                "resources": {
                    "limits": {"cpu": "100m", "memory": "20Mi"},
                    "requests": {"cpu": "50m", "memory": "10Mi"},
                },
            }
            spec["initContainers"] = [init, *(spec.get("initContainers") or [])]
        meta: dict[str, Any] = {
            "name": f"{self.name}-{rep.rtype.lower()}-{rep.index}",
            "namespace": self.namespace,
            "labels": labels,
            "ownerReferences": [self._owner(job)],
        }
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}

    def _batch_job_uid(self, job: Mapping[str, Any]) -> str:
        return str(uuid.uuid5(uuid.UUID(job["metadata"]["uid"]), "node-0"))

    def _v2_pod(self, job: Mapping[str, Any], rep: Replica) -> dict[str, Any]:
        spec = job.get("spec") or {}
        trainer = spec.get("trainer") or {}
        runtime = self._runtime(job)
        rt_labels = (runtime.get("metadata") or {}).get("labels") or {}
        framework = rt_labels.get("trainer.kubeflow.org/framework") or (
            next(
                (f for f in ("xgboost", "jax") if f in runtime["metadata"].get("name", "")), "torch"
            )
        )
        rt_container: dict[str, Any] = {}
        for rjob in (((runtime.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "replicatedJobs"
        ) or []:
            if rjob.get("name") == "node":
                pod_spec = ((rjob.get("template") or {}).get("spec") or {}).get("template") or {}
                for c in (pod_spec.get("spec") or {}).get("containers") or []:
                    if c.get("name") == "node":
                        rt_container = copy.deepcopy(c)
        nodes = len(self.replicas(job))
        resources = trainer.get("resourcesPerNode") or {}
        limits = {**(resources.get("requests") or {}), **(resources.get("limits") or {})}
        gpus = int(limits.get("nvidia.com/gpu", 0) or 0)
        master = f"{self.name}-node-0-0.{self.name}"
        if framework == "jax":  # pkg/runtime/framework/plugins/jax: one process per node
            env = [
                _env("JAX_NUM_PROCESSES", nodes),
                _env_from_index("JAX_PROCESS_ID"),
                _env("JAX_COORDINATOR_ADDRESS", f"{master}:{TRAINER_PORT}"),
            ]
        elif framework == "xgboost":
            env = [
                _env("DMLC_TRACKER_URI", master),
                _env("DMLC_TRACKER_PORT", TRAINER_PORT),
                _env_from_index("DMLC_TASK_ID"),
                _env("DMLC_NUM_WORKER", nodes * max(gpus, 1)),
            ]
        else:
            nproc = trainer.get("numProcPerNode")
            if nproc is None:
                cpu = str(limits.get("cpu", ""))
                cores = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu or 0)
                nproc = gpus or (max(1, int(cores)) if cpu else "auto")
            env = [
                _env("PET_NNODES", nodes),
                _env("PET_NPROC_PER_NODE", nproc),
                _env_from_index("PET_NODE_RANK"),
                _env("PET_MASTER_ADDR", master),
                _env("PET_MASTER_PORT", TRAINER_PORT),
            ]
        container = {
            **rt_container,
            "name": "node",
            "env": [*(rt_container.get("env") or []), *(trainer.get("env") or []), *env],
            "ports": [{"containerPort": TRAINER_PORT, "protocol": "TCP"}],
        }
        for key in ("image", "command", "args"):
            if trainer.get(key):
                container[key] = trainer[key]
        if resources:
            container["resources"] = copy.deepcopy(resources)
        job_name = f"{self.name}-node-0"
        batch_uid = self._batch_job_uid(job)
        labels = {
            JOBSET_NAME: self.name,
            REPLICATED_JOB: "node",
            "jobset.sigs.k8s.io/job-index": "0",
            "jobset.sigs.k8s.io/job-global-index": "0",
            "jobset.sigs.k8s.io/replicatedjob-replicas": "1",
            "jobset.sigs.k8s.io/job-key": hashlib.sha1(
                f"{self.namespace}/{job_name}".encode()
            ).hexdigest(),
            COMPLETION_INDEX: str(rep.index),
            "batch.kubernetes.io/job-name": job_name,
            "job-name": job_name,
            "batch.kubernetes.io/controller-uid": batch_uid,
            "controller-uid": batch_uid,
        }
        annotations = {
            COMPLETION_INDEX: str(rep.index),
            JOBSET_NAME: self.name,
            REPLICATED_JOB: "node",
            "jobset.sigs.k8s.io/job-index": "0",
        }
        owner = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": job_name,
            "uid": batch_uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        pod_spec: dict[str, Any] = {
            "hostname": f"{job_name}-{rep.index}",
            "subdomain": self.name,
            "restartPolicy": "OnFailure",
            "containers": [container],
        }
        _apply_node_patches(spec, pod_spec)
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{job_name}-{rep.index}-{random_suffix()}",
                "generateName": f"{job_name}-{rep.index}-",
                "namespace": self.namespace,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [owner],
            },
            "spec": pod_spec,
        }

    # ---- pod lifecycle ---------------------------------------------------------------------

    def _write_pod_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        patch = [{"op": "add", "path": "/status", "value": status}]
        return self.emulator.patch("pods", self.namespace, name, patch, subresource="status")

    def _pod_event(self, pod: Mapping[str, Any], reason: str, message: str, **kw: Any) -> None:
        if self.operator.events:
            self.operator.event(pod, reason, message, **kw)

    def _create_pod(
        self, job: Mapping[str, Any], rep: Replica, *, scheduled: bool, reason: str, message: str
    ) -> str:
        pod = self._v2_pod(job, rep) if self.kind.v2 else self._v1_pod(job, rep)
        if scheduled:
            pod["spec"]["nodeName"] = self.operator.node
        created = self.emulator.create("pods", pod, self.namespace)
        name = created["metadata"]["name"]
        with self._lock:
            self._pods[rep.rank] = name
        if self.operator.events:
            owner = (
                job
                if not self.kind.v2
                else {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {
                        "name": f"{self.name}-node-0",
                        "namespace": self.namespace,
                        "uid": self._batch_job_uid(job),
                    },
                }
            )
            self.operator.event(
                owner,
                "SuccessfulCreate" if self.kind.v2 else "SuccessfulCreatePod",
                f"Created pod: {name}",
                component="job-controller"
                if self.kind.v2
                else f"{self.kind.kind.lower()}-controller",
            )
        self._set_pending(created, scheduled=scheduled, reason=reason, message=message)
        return name

    def _set_pending(
        self, pod: dict[str, Any], *, scheduled: bool, reason: str, message: str
    ) -> None:
        status: dict[str, Any] = {
            "phase": "Pending",
            "qosClass": "BestEffort",
            "conditions": _pod_conditions(scheduled, False, message=message),
        }
        if scheduled:
            old = _statuses(pod)
            status.update(hostIP="172.18.0.2", startTime=now_rfc3339())
            status["containerStatuses"] = [
                _cstatus(c, old.get(c["name"]), state={"waiting": {"reason": reason}})
                for c in _containers(pod)
            ]
            if _containers(pod, "initContainers"):
                status["initContainerStatuses"] = [
                    _cstatus(c, None, state={"waiting": {"reason": "PodInitializing"}})
                    for c in _containers(pod, "initContainers")
                ]
            self._pod_event(
                pod,
                "Scheduled",
                f"Successfully assigned {self.namespace}/"
                f"{pod['metadata']['name']} to {self.operator.node}",
                component="default-scheduler",
            )
        else:
            self._pod_event(
                pod, "FailedScheduling", message, type="Warning", component="default-scheduler"
            )
        self._write_pod_status(pod["metadata"]["name"], status)

    def create_pods(
        self,
        *,
        scheduled: bool = True,
        reason: str = "ContainerCreating",
        message: str = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
    ) -> list[str]:
        """Create every pod Pending (scheduled with a waiting ``reason``, or Unschedulable)."""
        job = self.obj()
        if not self.kind.v2:
            self.mark_created()
        names = [
            self._create_pod(job, rep, scheduled=scheduled, reason=reason, message=message)
            for rep in self.replicas(job)
        ]
        self.sync_status(start=True)
        return names

    def unschedulable(self, rank: int | None = None, message: str = "") -> None:
        """Mark pods (all, or one rank) Unschedulable with a FailedScheduling event."""
        message = message or "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
        for r in self._ranks(rank):
            pod = self.pod(r)
            self.emulator.patch(
                "pods", self.namespace, pod["metadata"]["name"], {"spec": {"nodeName": None}}
            )
            self._set_pending(self.pod(r), scheduled=False, reason="", message=message)

    def schedule(self, rank: int | None = None, reason: str = "ContainerCreating") -> None:
        """Bind pods to the node; containers wait with ``reason``."""
        for r in self._ranks(rank):
            name = self.pod_name(r)
            self.emulator.patch(
                "pods", self.namespace, name, {"spec": {"nodeName": self.operator.node}}
            )
            self._set_pending(self.pod(r), scheduled=True, reason=reason, message="")

    def waiting(self, rank: int, reason: str = "ContainerCreating", message: str = "") -> None:
        """The containers of ``rank`` wait (``ImagePullBackOff``, ``ErrImagePull``, ...)."""
        pod = self.pod(rank)
        old = _statuses(pod)
        waiting: dict[str, Any] = {"reason": reason}
        image = (_containers(pod) or [{}])[0].get("image", "")
        message = message or {
            "ImagePullBackOff": f'Back-off pulling image "{image}"',
            "ErrImagePull": f'failed to pull and unpack image "{image}": not found',
        }.get(reason, "")
        if message:
            waiting["message"] = message
        status = dict(pod.get("status") or {})
        status["containerStatuses"] = [
            _cstatus(c, old.get(c["name"]), state={"waiting": dict(waiting)})
            for c in _containers(pod)
        ]
        status["conditions"] = _pod_conditions(True, False)
        self._write_pod_status(pod["metadata"]["name"], status)
        if reason in ("ImagePullBackOff", "ErrImagePull"):
            kind = "BackOff" if reason == "ImagePullBackOff" else "Failed"
            self._pod_event(pod, kind, message, type="Warning")

    def run(self, rank: int) -> None:
        """Start the containers of ``rank`` (a new log instance) and mark the pod Running."""
        pod = self.pod(rank)
        if not pod["spec"].get("nodeName"):
            self.schedule(rank)
            pod = self.pod(rank)
        old, now = _statuses(pod), now_rfc3339()
        status = dict(pod.get("status") or {})
        status.update(phase="Running", podIP=f"10.244.0.{10 + rank}", hostIP="172.18.0.2")
        status.setdefault("startTime", now)
        status["conditions"] = _pod_conditions(True, True)
        status["containerStatuses"] = [
            _cstatus(
                c,
                old.get(c["name"]),
                state={"running": {"startedAt": now}},
                ready=True,
                started=True,
                containerID=_container_id(),
            )
            for c in _containers(pod)
        ]
        if _containers(pod, "initContainers"):
            done = {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}
            status["initContainerStatuses"] = [
                _cstatus(c, None, state={"terminated": done}, containerID=_container_id())
                for c in _containers(pod, "initContainers")
            ]
        for c in _containers(pod):
            self.emulator.start_container(
                self.namespace, pod["metadata"]["name"], container=c["name"]
            )
        self._write_pod_status(pod["metadata"]["name"], status)
        self._pod_event(pod, "Started", f"Started container {self._log_container(pod)}")
        self.sync_status()

    def run_all(self) -> None:
        """Run every pod, then set the job's Running condition (v1)."""
        for rank in self.ranks():
            self.run(rank)
        self.mark_running()

    def _log_container(self, pod: Mapping[str, Any]) -> str:
        names = [c.get("name", "") for c in _containers(pod)]
        return self.kind.container if self.kind.container in names else (names or [""])[0]

    def log(self, rank: int, text: str | Iterable[str]) -> None:
        """Append to the log of the rank's main container (lists are joined as lines)."""
        if not isinstance(text, str):
            text = "".join(f"{line}\n" for line in text)
        pod = self.pod(rank)
        self.emulator.log(
            self.namespace, pod["metadata"]["name"], text, container=self._log_container(pod)
        )

    def end_log(self, rank: int) -> None:
        """End the current log instance of the rank's containers."""
        pod = self.pod(rank)
        for c in _containers(pod):
            self.emulator.end_log(self.namespace, pod["metadata"]["name"], container=c["name"])

    def exit(
        self, rank: int, code: int = 0, *, reason: str = "", message: str = "", phase: str = ""
    ) -> None:
        """The containers of ``rank`` terminate with ``code``; the log ends.

        ``reason`` defaults to Completed/Error; the pod phase to Succeeded/Failed.
        """
        self.end_log(rank)
        pod = self.pod(rank)
        old, now = _statuses(pod), now_rfc3339()
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "finishedAt": now,
        }
        if message:
            terminated["message"] = message
        status = dict(pod.get("status") or {})
        status["phase"] = phase or ("Succeeded" if code == 0 else "Failed")
        status["conditions"] = _pod_conditions(True, False)
        statuses = []
        for c in _containers(pod):
            prev = old.get(c["name"]) or {}
            started = (prev.get("state") or {}).get("running", {}).get("startedAt", now)
            term = {**terminated, "startedAt": started}
            if prev.get("containerID"):
                term["containerID"] = prev["containerID"]
            statuses.append(_cstatus(c, prev, state={"terminated": term}))
        status["containerStatuses"] = statuses
        self._write_pod_status(pod["metadata"]["name"], status)
        self.sync_status()

    def restart(
        self, rank: int, *, crash_loop: bool = False, exit_code: int = 1, reason: str = "Error"
    ) -> None:
        """Restart the containers of ``rank`` in place (restartCount+1, lastState.terminated).

        With ``crash_loop`` the container waits in CrashLoopBackOff instead of running again;
        a later ``run(rank)`` starts it.
        """
        pod = self.pod(rank)
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        old, now = _statuses(pod), now_rfc3339()
        statuses = []
        for c in _containers(pod):
            prev = old.get(c["name"]) or {}
            state = prev.get("state") or {}
            last = state.get("terminated") or {
                "exitCode": exit_code,
                "reason": reason,
                "finishedAt": now,
                "startedAt": (state.get("running") or {}).get("startedAt", now),
                "containerID": prev.get("containerID", _container_id()),
            }
            self.emulator.end_log(self.namespace, name, container=c["name"])
            base = {
                **prev,
                "lastState": {"terminated": last},
                "restartCount": prev.get("restartCount", 0) + 1,
            }
            if crash_loop:
                msg = (
                    f"back-off 10s restarting failed container={c['name']} pod={name}_"
                    f"{self.namespace}({uid})"
                )
                statuses.append(
                    _cstatus(
                        c, base, state={"waiting": {"reason": "CrashLoopBackOff", "message": msg}}
                    )
                )
            else:
                self.emulator.start_container(self.namespace, name, container=c["name"])
                statuses.append(
                    _cstatus(
                        c,
                        base,
                        state={"running": {"startedAt": now}},
                        ready=True,
                        started=True,
                        containerID=_container_id(),
                    )
                )
        status = dict(pod.get("status") or {})
        status.update(phase="Running", containerStatuses=statuses)
        status["conditions"] = _pod_conditions(True, not crash_loop)
        self._write_pod_status(name, status)
        if crash_loop:
            self._pod_event(
                pod,
                "BackOff",
                f"Back-off restarting failed container "
                f"{self._log_container(pod)} in pod {name}_{self.namespace}({uid})",
                type="Warning",
            )
        self.sync_status()

    def recreate_pod(self, rank: int) -> str:
        """Replace the rank's pod: v1 deletes and recreates the same name (ExitCode policy),
        v2 leaves the failed pod and creates a new one with a new suffix (Job backoff)."""
        job = self.obj()
        rep = self._replica(rank)
        if not self.kind.v2:
            self.emulator.delete("pods", self.namespace, self.pod_name(rank))
        name = self._create_pod(job, rep, scheduled=True, reason="ContainerCreating", message="")
        self.sync_status()
        return name

    def event(
        self, reason: str, message: str, *, rank: int | None = None, type: str = "Normal"
    ) -> dict[str, Any]:
        """A core/v1 Event about the pod of ``rank``, or about the job."""
        involved = self.pod(rank) if rank is not None else self.obj()
        return self.operator.event(involved, reason, message, type=type)

    def delete_pods(self) -> None:
        """Delete this job's pods (what garbage collection does after the job is deleted)."""
        for pod in self.pods():
            self.emulator.delete("pods", self.namespace, pod["metadata"]["name"])

    def _ranks(self, rank: int | None) -> list[int]:
        return self.ranks() if rank is None else [rank]

    # ---- job status ------------------------------------------------------------------------

    def _write_status(self, status: dict[str, Any]) -> dict[str, Any]:
        patch = [{"op": "add", "path": "/status", "value": status}]
        return self.emulator.patch(
            self.kind.resource, self.namespace, self.name, patch, subresource="status"
        )

    def _counts(self) -> dict[str, dict[str, int]]:
        """Per replica type: active (Running), succeeded, failed, pending."""
        counts: dict[str, dict[str, int]] = {}
        for pod in self.pods():
            labels = pod["metadata"].get("labels") or {}
            rtype = "node" if self.kind.v2 else labels.get(REPLICA_TYPE, "").capitalize()
            entry = counts.setdefault(
                rtype, {"active": 0, "succeeded": 0, "failed": 0, "pending": 0, "ready": 0}
            )
            phase = (pod.get("status") or {}).get("phase")
            key = {"Running": "active", "Succeeded": "succeeded", "Failed": "failed"}.get(
                phase or "", "pending"
            )
            entry[key] += 1
            ready = [
                s.get("ready") for s in (pod.get("status") or {}).get("containerStatuses") or []
            ]
            entry["ready"] += int(bool(ready) and all(ready))
        return counts

    def sync_status(self, *, start: bool = False) -> dict[str, Any]:
        """Recompute replicaStatuses (v1) / jobsStatus (v2) from the pods."""
        job = self.obj()
        status = copy.deepcopy(job.get("status") or {})
        counts = self._counts()
        if self.kind.v2:
            c = counts.get("node", {})
            status["jobsStatus"] = [
                {
                    "name": "node",
                    "ready": c.get("ready", 0),
                    "succeeded": c.get("succeeded", 0),
                    "failed": c.get("failed", 0),
                    "active": c.get("active", 0) + c.get("pending", 0),
                    "suspended": 0,
                }
            ]
        else:
            if start:
                status.setdefault("startTime", now_rfc3339())
            replica_statuses = {}
            for rtype in self._specs(job):
                c = counts.get(rtype, {})
                selector = (
                    f"{JOB_NAME}={self.name},{OPERATOR_NAME}={self.kind.operator_name},"
                    f"{REPLICA_TYPE}={rtype.lower()}"
                )
                entry = {k: c.get(k, 0) for k in ("active", "succeeded", "failed")}
                replica_statuses[rtype] = {**entry, "selector": selector}
            status["replicaStatuses"] = replica_statuses
            status.setdefault("conditions", [])
        if status == (job.get("status") or {}):
            return job
        return self._write_status(status)

    def _set_v1_condition(
        self, ctype: str, reason: str, message: str, status: str = "True"
    ) -> None:
        """The Training Operator's ``setCondition``/``filterOutCondition`` semantics."""
        job = self.obj()
        current = copy.deepcopy(job.get("status") or {})
        conditions = list(current.get("conditions") or [])
        if any(c["type"] == "Failed" and c["status"] == "True" for c in conditions):
            return  # nothing changes once Failed
        reason = f"{self.kind.kind}{reason}"
        existing = next((c for c in conditions if c["type"] == ctype), None)
        if existing and existing["status"] == status and existing.get("reason") == reason:
            return
        now = now_rfc3339()
        new = {
            "type": ctype,
            "status": status,
            "reason": reason,
            "message": message,
            "lastUpdateTime": now,
            "lastTransitionTime": now,
        }
        if existing and existing["status"] == status:
            new["lastTransitionTime"] = existing.get("lastTransitionTime", now)
        kept = []
        for cond in conditions:
            if {ctype, cond["type"]} == {"Running", "Restarting"} or cond["type"] == ctype:
                continue
            if ctype in ("Failed", "Succeeded") and cond["type"] == "Running":
                cond = {**cond, "status": "False"}
            kept.append(cond)
        current["conditions"] = [*kept, new]
        if ctype in ("Succeeded", "Failed"):
            current.setdefault("completionTime", now)
        self._write_status(current)

    def _set_v2_condition(self, ctype: str, reason: str, message: str) -> None:
        job = self.obj()
        current = copy.deepcopy(job.get("status") or {})
        conditions = [c for c in current.get("conditions") or [] if c["type"] != ctype]
        cond = _condition(ctype, "True", reason, message)
        cond["observedGeneration"] = job["metadata"].get("generation", 1)
        current["conditions"] = [*conditions, cond]
        self._write_status(current)

    def _failed_summary(self) -> tuple[int, str]:
        counts = self._counts()
        for rtype in ("Worker", "Master"):
            if counts.get(rtype, {}).get("failed"):
                return counts[rtype]["failed"], rtype
        return 1, "Worker" if "Worker" in self._specs(self.obj()) else "Master"

    def mark_created(self) -> None:
        """v1: the Created condition (v2 TrainJobs have none)."""
        if not self.kind.v2:
            msg = f"{self.kind.kind} {self.name} is created."
            self._set_v1_condition("Created", "Created", msg)

    def mark_running(self) -> None:
        """v1: the Running condition (replaces Restarting). v2: only jobsStatus changes."""
        self.sync_status()
        if not self.kind.v2:
            self._set_v1_condition(
                "Running", "Running", f"{self.kind.kind} {self.name} is running."
            )

    def mark_restarting(self, message: str = "") -> None:
        """v1: the Restarting condition (replaces Running)."""
        if self.kind.v2:
            raise TypeError("TrainJob has no Restarting condition")
        count, rtype = self._failed_summary()
        message = message or (
            f"{self.kind.kind} {self.name} is restarting because {count} {rtype} replica(s) failed."
        )
        self._set_v1_condition("Restarting", "Restarting", message)

    def mark_suspended(self) -> None:
        """The Suspended condition (v2: reason Suspended)."""
        if self.kind.v2:
            self._set_v2_condition("Suspended", "Suspended", "TrainJob is suspended")
        else:
            msg = f"{self.kind.kind} {self.name} is suspended."
            self._set_v1_condition("Suspended", "Suspended", msg)

    def succeed(self, message: str = "") -> None:
        """The job succeeded (v1 Succeeded + Running=False; v2 Complete)."""
        self.sync_status()
        if self.kind.v2:
            self._set_v2_condition(
                "Complete", "AllJobsCompleted", message or "jobset completed successfully"
            )
        else:
            message = message or f"{self.kind.kind} {self.name} is successfully completed."
            self._set_v1_condition("Succeeded", "Succeeded", message)

    def fail(self, message: str = "", reason: str = "") -> None:
        """The job failed (v1 Failed + Running=False; v2 Failed with reason FailedJobs)."""
        self.sync_status()
        if self.kind.v2:
            self._set_v2_condition(
                "Failed",
                reason or "FailedJobs",
                message or "jobset failed due to one or more job failures",
            )
        else:
            count, rtype = self._failed_summary()
            message = message or (
                f"{self.kind.kind} {self.name} is failed because {count} {rtype} replica(s) failed."
            )
            self._set_v1_condition("Failed", reason or "Failed", message)


# --------------------------------------------------------------------------------------------
# The operator
# --------------------------------------------------------------------------------------------


class FakeOperator:
    """Scriptable Kubeflow controllers (+ scheduler/kubelet) acting on a ``KubeEmulator``.

    ``webhooks`` installs the v1 validating webhooks (denied creates answer 403 like the real
    ones); ``events`` makes the pod and job helpers also post the usual core/v1 Events.
    """

    def __init__(
        self,
        emulator: KubeEmulator,
        *,
        node: str = "node-1",
        webhooks: bool = True,
        events: bool = True,
    ) -> None:
        self.emulator, self.node, self.events = emulator, node, events
        self._claimed: set[tuple[str, str, str]] = set()
        self._pool: ThreadPoolExecutor | None = None
        if webhooks:
            for kind in V1_KINDS:
                if "v1" in emulator.crds:
                    emulator.add_admission(kind.resource, _v1_validator(kind))

    def job(self, kind: str | JobKind, namespace: str, name: str) -> JobHandle:
        """A handle on a job (it need not exist yet)."""
        return JobHandle(self, job_kind(kind), namespace, name)

    def wait_for_job(
        self,
        kind: str | JobKind,
        namespace: str = "default",
        name: str | None = None,
        *,
        timeout: float = 5.0,
    ) -> JobHandle:
        """Wait until the client under test has created the job; without ``name``, the first
        job of that kind in the namespace that no earlier ``wait_for_job`` returned."""
        jk = job_kind(kind)

        def unclaimed(obj: dict[str, Any]) -> bool:
            key = (jk.plural, namespace, obj["metadata"]["name"])
            return name is not None or key not in self._claimed

        obj = self.emulator.wait_for(
            jk.resource, namespace, name, predicate=unclaimed, timeout=timeout
        )
        found = obj["metadata"]["name"]
        self._claimed.add((jk.plural, namespace, found))
        return self.job(jk, namespace, found)

    def run_to_success(
        self,
        kind: str | JobKind,
        namespace: str = "default",
        name: str | None = None,
        *,
        logs: Mapping[int, str | Iterable[str]] | None = None,
        timeout: float = 5.0,
        pause: float = 0.0,
    ) -> JobHandle:
        """Wait for the job, create and run its pods, write ``logs``, exit 0 and succeed.

        ``pause`` sleeps between the steps (and log lines) so clients can observe each one live.
        """
        job = self.wait_for_job(kind, namespace, name, timeout=timeout)
        job.create_pods()
        time.sleep(pause)
        job.run_all()
        self._write_logs(job, logs, pause)
        for rank in job.ranks():
            job.exit(rank, 0)
        job.succeed()
        return job

    def run_to_failure(
        self,
        kind: str | JobKind,
        namespace: str = "default",
        name: str | None = None,
        *,
        failing_rank: int = 1,
        exit_code: int = 1,
        reason: str = "Error",
        log: str | Iterable[str] | None = None,
        logs: Mapping[int, str | Iterable[str]] | None = None,
        message: str = "",
        others_exit_code: int | None = 1,
        timeout: float = 5.0,
        pause: float = 0.0,
    ) -> JobHandle:
        """Wait for the job, run it, fail ``failing_rank`` (clamped to the last rank) with
        ``exit_code``/``reason`` after writing ``log``; the other ranks then exit with
        ``others_exit_code`` (None leaves them running) and the job is marked Failed.
        ``pause`` works as in ``run_to_success``."""
        job = self.wait_for_job(kind, namespace, name, timeout=timeout)
        job.create_pods()
        time.sleep(pause)
        job.run_all()
        ranks = job.ranks()
        bad = min(failing_rank, ranks[-1])
        self._write_logs(job, logs, pause)
        if log is not None:
            self._write_logs(job, {bad: log}, pause)
        job.exit(bad, exit_code, reason=reason)
        if others_exit_code is not None:
            for rank in ranks:
                if rank != bad:
                    job.exit(rank, others_exit_code)
        job.fail(message)
        return job

    @staticmethod
    def _write_logs(
        job: JobHandle, logs: Mapping[int, str | Iterable[str]] | None, pause: float
    ) -> None:
        for rank, text in (logs or {}).items():
            if not pause:
                job.log(rank, text)
                continue
            lines = text.splitlines(keepends=True) if isinstance(text, str) else text
            for line in lines:
                job.log(rank, line if isinstance(text, str) else [line])
                time.sleep(pause)

    def event(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        *,
        type: str = "Normal",
        component: str = "kubelet",
    ) -> dict[str, Any]:
        """Post a core/v1 Event about ``involved`` (any object with apiVersion/kind/metadata)."""
        meta = involved.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        now = now_rfc3339()
        ref = {
            "apiVersion": involved.get("apiVersion", "v1"),
            "kind": involved.get("kind", "Pod"),
            "name": meta.get("name", ""),
            "namespace": ns,
        }
        if meta.get("uid"):
            ref["uid"] = meta["uid"]
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref['name']}.{uuid.uuid4().hex[:16]}", "namespace": ns},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        return self.emulator.create("events", body, ns)

    def background(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Run a script (e.g. ``self.run_to_success``) in a thread while the test blocks in the
        code under test; ``.result(timeout)`` re-raises its errors."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fake-operator")
        return self._pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        """Stop accepting background scripts; running ones end once the emulator stops."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
