"""Kubernetes objects for a job: the payload ConfigMap, its Secret and the Kubeflow job.

Pure rendering to plain dicts (no client import), following the CRD schemas
of kubeflow/trainer: release-1.9 for the v1 kinds (PyTorchJob, XGBoostJob,
JAXJob, TFJob), master for TrainJob. The worker runtime and the framework
descriptors (stdlib only) and the captured cell travel in a ConfigMap mounted
read-only at ``/opt/jupyter-training``; the job owns it.
``--secret-env`` values from the kernel's environment travel in an owned Secret
and reach the pods through ``secretKeyRef``, never as plain values.

Checkpoints live on a claim, under ``<mount>/jupyter-training/checkpoints/<lineage>``:
the ``--checkpoint CLAIM:PATH`` claim, else the first ``--volume``. An elastic job
(``--workers MIN:MAX``) is a PyTorchJob with an ``elasticPolicy``: Worker replicas
only, torchrun as the command (it reads the operator's ``PET_*`` rendezvous
settings), our runtime as each rank it starts.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...runtime import __all__ as WORKER_API
from ...runtime.checkpoints import CHECKPOINT_ENV, CHECKPOINT_REFUSAL_ENV
from ...runtime.masking import ENV_NAMES as SECRET_ENV_NAMES
from ...runtime.reporting import ARTIFACTS_ENV, ARTIFACTS_REFUSAL_ENV
from ...spec import JobSpec, SpecError, parse_volume
from .targets import (
    ANNOTATION_NOTEBOOK,
    LABEL_JOB_ID,
    LABEL_NOTEBOOK,
    LABEL_SWEEP,
    MANAGED_BY,
    V2_GROUP,
    Target,
)

MOUNT = "/opt/jupyter-training"
WORKDIR = "/workspace"
PAYLOAD_KEY = "payload.bin"
PATCH_MANAGER = "jupyter-training.io/jupyter-training"
#: The volume a ``--checkpoint`` claim is mounted from when no ``--volume`` is that mount.
CHECKPOINT_VOLUME = "checkpoint"
CHECKPOINT_REFUSAL = (
    "checkpoint_dir(): this Kubernetes job has no volume for checkpoints; add --volume "
    "CLAIM:/mnt/work or --checkpoint CLAIM:/ckpt (a PersistentVolumeClaim every worker mounts)"
)
#: torchrun's c10d rendezvous: no etcd needed, the store runs in the first Worker's pod.
RDZV_BACKEND = "c10d"
_PACKAGE_DIR = Path(__file__).resolve().parents[2]
#: Stdlib-only packages the worker runtime needs in a pod: itself and the framework descriptors.
_SHIPPED_PACKAGES = ("runtime", "frameworks")
#: The package's ``__init__`` in a pod: the worker API (``runtime.__all__``) and nothing else.
_POD_PACKAGE_INIT = (
    '"""jupyter-training in a worker pod: the worker API only."""\n\n'
    f"from .runtime import {', '.join(WORKER_API)}\n\n"
    f"__all__ = {list(WORKER_API)!r}\n"
)


@dataclasses.dataclass(frozen=True)
class JobObjects:
    """Everything needed to render one job's objects."""

    job_id: str
    name: str
    namespace: str
    spec: JobSpec
    target: Target
    image: str
    payload: bytes | None  # None: the payload travels on a volume at payload_path
    payload_path: str = f"{MOUNT}/{PAYLOAD_KEY}"
    runtime: str | None = None
    notebook: str | None = None
    gpu_resource_name: str = "nvidia.com/gpu"
    ttl_seconds_after_finished: int | None = 86400
    clean_pod_policy: str = "Running"
    result_limit: int | None = None
    #: Values of ``spec.secrets_from_environment``; None renders placeholders (dry run).
    secrets: Mapping[str, str] | None = None

    @property
    def configmap_name(self) -> str:
        return configmap_name(self.name)

    @property
    def secret_name(self) -> str:
        return secret_name(self.name)


def configmap_name(job_name: str) -> str:
    """The payload ConfigMap of the job called ``job_name``."""
    return f"{job_name}-payload"


def secret_name(job_name: str) -> str:
    """The ``--secret-env`` Secret of the job called ``job_name``."""
    return f"{job_name}-secret-env"


def runtime_files() -> dict[str, str]:
    """The worker runtime as files relative to the mount: stdlib-only Python."""
    files = {"jupyter_training/__init__.py": _POD_PACKAGE_INIT}
    for package in _SHIPPED_PACKAGES:
        for path in sorted((_PACKAGE_DIR / package).glob("*.py")):
            files[f"jupyter_training/{package}/{path.name}"] = path.read_text()
    return files


def labels(job: JobObjects) -> dict[str, str]:
    """Labels that identify our objects and pods."""
    result = {"app.kubernetes.io/managed-by": MANAGED_BY, LABEL_JOB_ID: job.job_id}
    if job.notebook:
        result[LABEL_NOTEBOOK] = _label_value(Path(job.notebook).stem)
    if job.spec.sweep:
        result[LABEL_SWEEP] = job.spec.sweep
    if job.spec.kubernetes.queue:
        result["kueue.x-k8s.io/queue-name"] = job.spec.kubernetes.queue
    return result


def metadata(job: JobObjects, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": job.namespace, "labels": labels(job)}
    if job.notebook:
        meta["annotations"] = {ANNOTATION_NOTEBOOK: job.notebook}
    return meta


def configmap(job: JobObjects) -> dict[str, Any]:
    """The ConfigMap holding the runtime (and the payload, unless it rides a volume)."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(job, job.configmap_name),
        "data": {_key(path): text for path, text in runtime_files().items()},
    }
    if job.payload is not None:
        body["binaryData"] = {PAYLOAD_KEY: base64.b64encode(job.payload).decode()}
    return body


def secret(job: JobObjects) -> dict[str, Any] | None:
    """The Secret holding the ``--secret-env`` values taken from the kernel (None if none)."""
    names = job.spec.secrets_from_environment
    if not names:
        return None
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(job, job.secret_name),
        "type": "Opaque",
    }
    if job.secrets is None:
        body["stringData"] = {name: f"<{name} from the kernel's environment>" for name in names}
    else:
        body["data"] = {
            name: base64.b64encode(job.secrets[name].encode()).decode() for name in names
        }
    return body


def owner_reference(job: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference to the created job, so deleting it deletes the ConfigMap."""
    meta = job["metadata"]
    return {
        "apiVersion": job["apiVersion"],
        "kind": job["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "blockOwnerDeletion": True,
    }


def job_manifest(job: JobObjects) -> dict[str, Any]:
    """The PyTorchJob, XGBoostJob or TrainJob."""
    if job.target.api == "v2":
        return _train_job(job)
    return _v1_job(job)


def render(job: JobObjects) -> list[dict[str, Any]]:
    """All objects, in creation order."""
    return [configmap(job), *filter(None, [secret(job)]), job_manifest(job)]


def _env(job: JobObjects) -> list[dict[str, Any]]:
    env = {
        "PYTHONPATH": MOUNT,
        "PYTHONUNBUFFERED": "1",
        "JUPYTER_TRAINING_FRAMEWORK": job.spec.framework,
        "JUPYTER_TRAINING_JOB_ID": job.job_id,
        "JUPYTER_TRAINING_FILES_DIR": WORKDIR,
        "JUPYTER_TRAINING_WORKDIR": WORKDIR,  # TrainJob patches cannot set workingDir
    }
    if job.spec.kubernetes.pip:
        env["JUPYTER_TRAINING_PIP"] = json.dumps(list(job.spec.kubernetes.pip))
    if job.spec.out:
        env["JUPYTER_TRAINING_OUT"] = ",".join(job.spec.out)
    if job.result_limit is not None:
        env["JUPYTER_TRAINING_RESULT_LIMIT"] = str(job.result_limit)
    if job.spec.secret_env:
        env[SECRET_ENV_NAMES] = ",".join(job.spec.secret_env)
    location = artifacts_location(job)
    if location is None:
        env[ARTIFACTS_REFUSAL_ENV] = (
            "artifacts_dir(): this Kubernetes job has no shared volume to keep artifacts on; "
            "add --volume CLAIM:PATH (a PersistentVolumeClaim every worker mounts)"
        )
    else:
        env[ARTIFACTS_ENV] = location[1]
    checkpoints = checkpoint_location(job)
    if checkpoints is None:
        env[CHECKPOINT_REFUSAL_ENV] = CHECKPOINT_REFUSAL
    else:
        env[CHECKPOINT_ENV] = checkpoints[1]
    env.update(job.spec.env)
    plain: list[dict[str, Any]] = [{"name": key, "value": value} for key, value in env.items()]
    return plain + [_secret_env_var(job, name) for name in job.spec.secret_env]


def artifacts_location(job: JobObjects) -> tuple[str, str] | None:
    """``(claim, path in the pod)`` where the run's artifacts go: under the first --volume."""
    if not job.spec.kubernetes.volumes:
        return None
    claim, mount = parse_volume(job.spec.kubernetes.volumes[0])
    return claim, f"{mount.rstrip('/')}/jupyter-training/{job.name}-{job.job_id}/artifacts"


def checkpoint_mount(spec: JobSpec) -> tuple[str, str] | None:
    """``(claim, mount path)`` that holds the checkpoints: ``--checkpoint``, else the first
    ``--volume``; None when the job has neither."""
    if spec.kubernetes.checkpoint is not None:
        return parse_volume(spec.kubernetes.checkpoint, "--checkpoint")
    if spec.kubernetes.volumes:
        return parse_volume(spec.kubernetes.volumes[0])
    return None


def checkpoint_location(job: JobObjects) -> tuple[str, str] | None:
    """``(claim, path in the pod)`` of the lineage's checkpoint directory, shared by the job,
    its restarts and every job resumed from it (``spec.lineage``, else this job's id)."""
    mount = checkpoint_mount(job.spec)
    if mount is None:
        return None
    claim, path = mount
    lineage = job.spec.lineage or job.job_id
    return claim, f"{path.rstrip('/')}/jupyter-training/checkpoints/{lineage}"


def check_checkpoint_mount(spec: JobSpec) -> None:
    """Refuse a ``--checkpoint CLAIM:PATH`` whose PATH is where another claim is mounted."""
    if spec.kubernetes.checkpoint is None:
        return
    claim, path = parse_volume(spec.kubernetes.checkpoint, "--checkpoint")
    for volume in spec.kubernetes.volumes:
        other, mounted = parse_volume(volume)
        if mounted.rstrip("/") == path.rstrip("/") and other != claim:
            raise SpecError(
                "--checkpoint",
                f"{claim}:{path}: {path} is where --volume {volume} is mounted; mount the "
                f"checkpoint claim elsewhere (e.g. --checkpoint {claim}:/ckpt) or use "
                f"--checkpoint {volume}",
            )


def _secret_env_var(job: JobObjects, name: str) -> dict[str, Any]:
    """``name`` read from our Secret (kernel values) or from the Secret the user named."""
    source = job.spec.secret_env[name]
    secret, key = source.split("/", 1) if source else (job.secret_name, name)
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _resources(job: JobObjects) -> dict[str, Any]:
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if job.spec.gpus:
        limits[job.gpu_resource_name] = str(job.spec.gpus)
    if job.spec.kubernetes.cpu:
        requests["cpu"] = job.spec.kubernetes.cpu
    if job.spec.kubernetes.memory:
        requests["memory"] = limits["memory"] = job.spec.kubernetes.memory
    resources: dict[str, Any] = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    return resources


def _volumes(job: JobObjects) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    items = [{"key": _key(path), "path": path} for path in runtime_files()]
    if job.payload is not None:
        items.append({"key": PAYLOAD_KEY, "path": PAYLOAD_KEY})
    volumes: list[dict[str, Any]] = [
        {
            "name": "jupyter-training",
            "configMap": {"name": job.configmap_name, "items": items, "defaultMode": 0o444},
        },
        {"name": "workspace", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "jupyter-training", "mountPath": MOUNT, "readOnly": True},
        {"name": "workspace", "mountPath": WORKDIR},
    ]
    claims = [parse_volume(volume) for volume in job.spec.kubernetes.volumes]
    for index, (claim, path) in enumerate(claims):
        volumes.append({"name": f"volume-{index}", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": f"volume-{index}", "mountPath": path})
    if job.spec.kubernetes.checkpoint is not None:
        claim, path = parse_volume(job.spec.kubernetes.checkpoint, "--checkpoint")
        if (claim, path.rstrip("/")) not in {(c, p.rstrip("/")) for c, p in claims}:
            # A volume of its own, even for a claim some --volume mounts elsewhere: a
            # TrainJob patch keys mounts by volume name, one mount per volume.
            volumes.append(
                {"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": claim}}
            )
            mounts.append({"name": CHECKPOINT_VOLUME, "mountPath": path})
    return volumes, mounts


def _command(job: JobObjects) -> list[str]:
    if job.spec.min_workers is not None:
        # Elastic: torchrun joins the rendezvous the operator's PET_* variables describe and
        # starts the ranks it is given; each runs the cell with its lines tagged by its rank.
        return [
            "python",
            "-m",
            "torch.distributed.run",
            "-m",
            "jupyter_training.runtime.node",
            job.payload_path,
        ]
    return ["python", "-m", "jupyter_training.runtime", job.payload_path]


def _v1_job(job: JobObjects) -> dict[str, Any]:
    volumes, mounts = _volumes(job)
    container: dict[str, Any] = {
        "name": job.target.container,
        "image": job.image,
        "command": _command(job),
        "workingDir": WORKDIR,
        "env": _env(job),
        "ports": [{"name": job.target.port_name, "containerPort": job.target.port}],
        "volumeMounts": mounts,
    }
    resources = _resources(job)
    if resources:
        container["resources"] = resources
    pod_spec: dict[str, Any] = {"containers": [container], "volumes": volumes}
    if job.spec.kubernetes.node_selector:
        pod_spec["nodeSelector"] = dict(job.spec.kubernetes.node_selector)
    template = {"metadata": {"labels": labels(job)}, "spec": pod_spec}
    restart = "OnFailure" if job.spec.max_restarts else "Never"
    master = job.target.master
    elastic = job.spec.min_workers is not None
    if master and not elastic:
        counts = {master: 1, "Worker": job.spec.workers - 1}
    else:  # elastic: Worker replicas only, as many as the most the job may use
        counts = {"Worker": job.spec.workers}
    replicas = {
        rtype: {
            "replicas": count,
            "restartPolicy": restart,
            "template": copy.deepcopy(template),  # no shared (YAML-anchored) templates
        }
        for rtype, count in counts.items()
        if count
    }
    run_policy: dict[str, Any] = {
        "cleanPodPolicy": job.clean_pod_policy,
        "backoffLimit": job.spec.max_restarts,
    }
    if job.ttl_seconds_after_finished is not None:
        run_policy["ttlSecondsAfterFinished"] = job.ttl_seconds_after_finished
    if job.spec.timeout:
        run_policy["activeDeadlineSeconds"] = math.ceil(job.spec.timeout)
    if job.spec.kubernetes.queue:
        run_policy["schedulingPolicy"] = {
            "queue": job.spec.kubernetes.queue,
            "minAvailable": job.spec.min_workers if elastic else job.spec.workers,
        }
    spec: dict[str, Any] = {"runPolicy": run_policy, job.target.replica_key: replicas}
    spec.update(job.spec.framework_descriptor.v1_spec_fields(job.spec.nproc_per_worker))
    if elastic:
        spec["elasticPolicy"] = elastic_policy(job)
    return {
        "apiVersion": job.target.api_version,
        "kind": job.target.kind,
        "metadata": metadata(job, job.name),
        "spec": spec,
    }


def elastic_policy(job: JobObjects) -> dict[str, Any]:
    """PyTorchJob ``spec.elasticPolicy`` of an elastic job (``--workers MIN:MAX``).

    The operator (release-1.9, ``pkg/controller.v1/pytorch/elastic.go``) turns it into
    torchrun's settings on every pod: ``PET_NNODES=MIN:MAX``, ``PET_RDZV_BACKEND``,
    ``PET_RDZV_ENDPOINT=<job>-worker-0:<the pytorch container's port>``, ``PET_RDZV_ID``
    and ``PET_MAX_RESTARTS``. No ``nProcPerNode`` here: ``spec.nprocPerNode`` says it
    (the webhook forbids both), and the operator sets ``PET_NPROC_PER_NODE`` from it.
    """
    return {
        "minReplicas": job.spec.min_workers,
        "maxReplicas": job.spec.workers,
        "rdzvBackend": RDZV_BACKEND,
        "rdzvId": job.job_id,
        "maxRestarts": job.spec.max_restarts,
    }


def _train_job(job: JobObjects) -> dict[str, Any]:
    volumes, mounts = _volumes(job)
    trainer: dict[str, Any] = {
        "image": job.image,
        "command": _command(job),
        "env": _env(job),
        "numNodes": job.spec.workers,
        "numProcPerNode": job.spec.nproc_per_worker,
    }
    resources = _resources(job)
    if resources:
        trainer["resourcesPerNode"] = resources
    pod_spec: dict[str, Any] = {
        "volumes": volumes,
        "containers": [{"name": job.target.container, "volumeMounts": mounts}],
    }
    if job.spec.kubernetes.node_selector:
        pod_spec["nodeSelector"] = dict(job.spec.kubernetes.node_selector)
    node_job = {
        "name": "node",
        "template": {
            "metadata": {"labels": labels(job)},
            "spec": {"template": {"metadata": {"labels": labels(job)}, "spec": pod_spec}},
        },
    }
    spec: dict[str, Any] = {
        "runtimeRef": {"name": job.runtime, "apiGroup": V2_GROUP, "kind": "ClusterTrainingRuntime"},
        "trainer": trainer,
        "runtimePatches": [
            {
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {
                    "template": {
                        "metadata": {"labels": labels(job)},
                        "spec": {"replicatedJobs": [node_job]},
                    }
                },
            }
        ],
    }
    if job.spec.timeout:
        spec["activeDeadlineSeconds"] = math.ceil(job.spec.timeout)
    return {
        "apiVersion": job.target.api_version,
        "kind": job.target.kind,
        "metadata": metadata(job, job.name),
        "spec": spec,
    }


def _key(path: str) -> str:
    return path.replace("/", ".")


def _label_value(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")
    return cleaned or "notebook"
