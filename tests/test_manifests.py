"""Rendered Kubernetes objects validate against the Kubeflow CRD schemas and say the right things.

The schemas are the hand-written model in ``kubeflow_schemas`` (written from the real CRDs of
kubeflow/trainer, release-1.9 for v1 and master for TrainJob); the validator's own tests at the
end prove that it catches typos, bad enum values, missing fields and the other rules it models.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from jupyter_training.backends.kubernetes import manifests
from jupyter_training.backends.kubernetes.manifests import JobObjects
from jupyter_training.backends.kubernetes.targets import (
    ANNOTATION_NOTEBOOK,
    LABEL_JOB_ID,
    target_for,
)
from jupyter_training.spec import JobSpec

from kubeflow_schemas import (
    CONFIGMAP_KEY,
    OWNER_REFERENCE,
    PYTORCH_JOB,
    amap,
    arr,
    boolean,
    int32,
    obj,
    string,
    validate,
    validate_manifest,
)

JOB_ID = "0123456789ab"
NAMESPACE = "team-a"
PAYLOAD = bytes(range(256)) * 4 + b"\x00\xff end"
RUNTIMES = {
    "pytorch": "torch-distributed",
    "xgboost": "xgboost-distributed",
    "jax": "jax-distributed",
}
IMAGES = {
    "pytorch": "docker.io/pytorch/pytorch:2.5.1",
    "xgboost": "ghcr.io/example/xgb:1",
    "jax": "nvcr.io/nvidia/jax:25.10-py3",
    "tensorflow": "docker.io/tensorflow/tensorflow:2.18.0",
}
NOTEBOOK = "notebooks/My Experiment (v2).ipynb"
V1_KIND = {"pytorch": "PyTorchJob", "xgboost": "XGBoostJob", "jax": "JAXJob", "tensorflow": "TFJob"}
V1_CONTAINER = {
    "PyTorchJob": "pytorch",
    "XGBoostJob": "xgboost",
    "JAXJob": "jax",
    "TFJob": "tensorflow",
}
V1_PORT = {
    "PyTorchJob": (23456, "pytorchjob-port"),
    "XGBoostJob": (9999, "xgboostjob-port"),
    "JAXJob": (6666, "jaxjob-port"),
    "TFJob": (2222, "tfjob-port"),
}
V1_REPLICAS_FIELD = {
    "PyTorchJob": "pytorchReplicaSpecs",
    "XGBoostJob": "xgbReplicaSpecs",
    "JAXJob": "jaxReplicaSpecs",
    "TFJob": "tfReplicaSpecs",
}
#: The replica type holding rank 0 (JAXJob and TFJob: Worker 0).
V1_FIRST_ROLE = {
    "PyTorchJob": "Master",
    "XGBoostJob": "Master",
    "JAXJob": "Worker",
    "TFJob": "Worker",
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One point of the rendering matrix."""

    framework: str
    api: str
    workers: int
    gpus: int
    full: bool  # every optional setting given

    @property
    def id(self) -> str:
        """The pytest id."""
        extras = "full" if self.full else "bare"
        return f"{self.framework}-{self.api}-w{self.workers}-g{self.gpus}-{extras}"

    def spec(self) -> JobSpec:
        """The JobSpec of this case, as the backend resolves it."""
        settings: dict[str, Any] = {}
        if self.full:
            settings = {
                "name": "mnist-ddp",
                "cpu": "2",
                "memory": "8Gi",
                "node_selector": {"disktype": "ssd", "nvidia.com/gpu.product": "A100-SXM4-80GB"},
                "queue": "team-a-queue",
                "timeout": 90.5,
                "pip": ("scikit-learn==1.5.2", "pandas>=2"),
                "env": {"SEED": "1", "DATA_DIR": "/mnt/work/data"},
                "secret_env": {"HF_TOKEN": "", "DB_PASSWORD": "db-creds/password"},
                "volumes": ("work:/mnt/work", "datasets.v1:/data"),
                "files": ("train.csv", "conf/model.yaml"),
            }
            if self.api == "v1":  # a TrainJob has no restart limit (the backend refuses it)
                settings["max_restarts"] = 3
        return JobSpec(
            framework=self.framework,
            workers=self.workers,
            gpus=self.gpus,
            backend="kubernetes",
            api=self.api,
            runtime=RUNTIMES[self.framework] if self.api == "v2" else None,
            image=IMAGES[self.framework],
            namespace=NAMESPACE,
            **settings,
        )

    def job(self, **changes: Any) -> JobObjects:
        """The JobObjects to render, with ``changes`` applied."""
        spec = self.spec()
        fields: dict[str, Any] = {
            "job_id": JOB_ID,
            "name": spec.name or f"job-{JOB_ID}",
            "namespace": NAMESPACE,
            "spec": spec,
            "target": target_for(spec.framework, spec.kubernetes.api),
            "image": spec.kubernetes.image,
            "payload": PAYLOAD,
            "runtime": spec.kubernetes.runtime,
            "notebook": NOTEBOOK if self.full else None,
            "secrets": {"HF_TOKEN": "hf_abcdefghijklmnop"} if self.full else {},
        }
        fields.update(changes)
        return JobObjects(**fields)


def _cases() -> list[Case]:
    """framework x api x workers x gpus x (bare, full); XGBoost TrainJobs get at most 1 GPU."""
    cases = []
    for framework, api, workers, gpus, full in itertools.product(
        ("pytorch", "xgboost", "jax", "tensorflow"), ("v1", "v2"), (1, 4), (0, 2), (False, True)
    ):
        if framework == "tensorflow" and api == "v2":
            continue  # Trainer v2 has no TensorFlow runtime (refused, tested in test_spec)
        if framework == "xgboost" and api == "v2":
            gpus = min(gpus, 1)  # an XGBoost TrainJob runs one worker per GPU
        cases.append(Case(framework, api, workers, gpus, full))
    return cases


CASES = _cases()
V1_CASES = [case for case in CASES if case.api == "v1"]
V2_CASES = [case for case in CASES if case.api == "v2"]


def ids(case: Case) -> str:
    """The pytest id of a case."""
    return case.id


def _container(job: dict[str, Any], role: str | None = None) -> dict[str, Any]:
    """The training container: the v1 role's first container, or the TrainJob trainer."""
    if job["kind"] == "TrainJob":
        return job["spec"]["trainer"]
    role = role or V1_FIRST_ROLE[job["kind"]]
    replicas = job["spec"][V1_REPLICAS_FIELD[job["kind"]]]
    return replicas[role]["template"]["spec"]["containers"][0]


def _pod_spec(job: dict[str, Any], role: str | None = None) -> dict[str, Any]:
    """The pod spec: the v1 role's template, or the TrainJob's node runtime patch."""
    if job["kind"] == "TrainJob":
        patch = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]
        node = patch["spec"]["replicatedJobs"][0]
        return node["template"]["spec"]["template"]["spec"]
    role = role or V1_FIRST_ROLE[job["kind"]]
    return job["spec"][V1_REPLICAS_FIELD[job["kind"]]][role]["template"]["spec"]


def _pod_labels(job: dict[str, Any], role: str | None = None) -> dict[str, str]:
    """The pod template's labels (v1 role, or the TrainJob node patch)."""
    if job["kind"] == "TrainJob":
        patch = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]
        node = patch["spec"]["replicatedJobs"][0]
        return node["template"]["spec"]["template"]["metadata"]["labels"]
    role = role or V1_FIRST_ROLE[job["kind"]]
    return job["spec"][V1_REPLICAS_FIELD[job["kind"]]][role]["template"]["metadata"]["labels"]


def _env(container: dict[str, Any]) -> dict[str, str]:
    """A container's plain env values as a dict (``valueFrom`` entries left out)."""
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


# -- every rendered object is valid ------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_rendered_objects_validate(case: Case) -> None:
    """Every case renders a valid ConfigMap (Secret) and job, the same as JSON and as YAML."""
    objects = manifests.render(case.job())
    secret = ["Secret"] if case.full else []  # full cases use --secret-env
    assert [o["kind"] for o in objects] == ["ConfigMap", *secret, case.job().target.kind]
    for manifest in objects:
        assert validate_manifest(manifest) == [], manifest["kind"]
        # What is sent (JSON) and what --dry-run prints (YAML) is the same object.
        assert json.loads(json.dumps(manifest)) == manifest
        assert yaml.safe_load(yaml.safe_dump(manifest)) == manifest


@pytest.mark.parametrize(
    "changes",
    [
        {"gpu_resource_name": "amd.com/gpu"},
        {"ttl_seconds_after_finished": None},
        {"clean_pod_policy": "All"},
        {"clean_pod_policy": "None"},
        {"payload": None, "payload_path": "/mnt/work/.jupyter-training/0123456789ab/payload.bin"},
        {"notebook": "/home/jovyan/--weird__.ipynb"},
    ],
    ids=lambda changes: "-".join(f"{k}={v}" for k, v in changes.items())[:40],
)
@pytest.mark.parametrize("case", [c for c in CASES if c.full and c.workers == 4], ids=ids)
def test_settings_variants_validate(case: Case, changes: dict[str, Any]) -> None:
    """Backend settings (GPU name, TTL, clean-up, payload on a volume) stay valid."""
    for manifest in manifests.render(case.job(**changes)):
        assert validate_manifest(manifest) == [], manifest["kind"]


def test_owner_reference_validates() -> None:
    """The ownerReference set on the ConfigMap after creation is valid there."""
    job = manifests.job_manifest(CASES[0].job())
    job["metadata"]["uid"] = "5f2c2a4e-8d2b-4c3e-9f1a-0123456789ab"
    reference = manifests.owner_reference(job)
    assert validate(reference, OWNER_REFERENCE) == []
    configmap = manifests.configmap(CASES[0].job())
    configmap["metadata"]["ownerReferences"] = [reference]
    assert validate_manifest(configmap) == []


# -- v1: PyTorchJob / XGBoostJob -------------------------------------------------------------


@pytest.mark.parametrize("case", V1_CASES, ids=ids)
def test_v1_replicas_container_and_port(case: Case) -> None:
    """Master 1 and Worker workers-1 (absent for 1), or Worker x workers; container, port."""
    job = manifests.job_manifest(case.job())
    kind = V1_KIND[case.framework]
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", kind)
    replicas = job["spec"][V1_REPLICAS_FIELD[kind]]
    if V1_FIRST_ROLE[kind] == "Worker":
        assert set(replicas) == {"Worker"}
        assert replicas["Worker"]["replicas"] == case.workers
    elif case.workers == 1:
        assert set(replicas) == {"Master"}
        assert replicas["Master"]["replicas"] == 1
    else:
        assert set(replicas) == {"Master", "Worker"}
        assert replicas["Master"]["replicas"] == 1
        assert replicas["Worker"]["replicas"] == case.workers - 1
    restart = "OnFailure" if case.full else "Never"  # full cases have max_restarts
    port, port_name = V1_PORT[kind]
    for role in replicas:
        assert replicas[role]["restartPolicy"] == restart
        container = _container(job, role)
        assert container["name"] == V1_CONTAINER[kind]
        assert container["image"] == IMAGES[case.framework]
        assert container["ports"] == [{"name": port_name, "containerPort": port}]
    if kind == "PyTorchJob":
        assert job["spec"]["nprocPerNode"] == "1"
    else:
        assert "nprocPerNode" not in job["spec"]


@pytest.mark.parametrize("case", V1_CASES, ids=ids)
def test_v1_run_policy(case: Case) -> None:
    """backoffLimit, deadline (rounded up), TTL, clean-up and queue in runPolicy."""
    job = manifests.job_manifest(case.job())
    policy = job["spec"]["runPolicy"]
    assert policy["cleanPodPolicy"] == "Running"
    assert policy["ttlSecondsAfterFinished"] == 86400
    assert policy["backoffLimit"] == (3 if case.full else 0)
    if case.full:
        assert policy["activeDeadlineSeconds"] == 91  # 90.5 s rounded up
        assert policy["schedulingPolicy"] == {"queue": "team-a-queue", "minAvailable": case.workers}
    else:
        assert "activeDeadlineSeconds" not in policy
        assert "schedulingPolicy" not in policy


def test_v1_run_policy_settings() -> None:
    """No TTL when it is None, and the configured cleanPodPolicy."""
    case = Case("pytorch", "v1", 2, 0, False)
    policy = manifests.job_manifest(
        case.job(ttl_seconds_after_finished=None, clean_pod_policy="All")
    )["spec"]["runPolicy"]
    assert policy == {"cleanPodPolicy": "All", "backoffLimit": 0}


# -- v2: TrainJob ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", V2_CASES, ids=ids)
def test_v2_trainer_and_runtime_patch(case: Case) -> None:
    """runtimeRef, numNodes == workers, one process per node, the node patch."""
    job = manifests.job_manifest(case.job())
    assert (job["apiVersion"], job["kind"]) == ("trainer.kubeflow.org/v1alpha1", "TrainJob")
    spec = job["spec"]
    assert spec["runtimeRef"] == {
        "name": RUNTIMES[case.framework],
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
    }
    trainer = spec["trainer"]
    assert trainer["numNodes"] == case.workers
    assert trainer["numProcPerNode"] == 1
    assert trainer["image"] == IMAGES[case.framework]
    assert ("activeDeadlineSeconds" in spec) is case.full
    if case.full:
        assert spec["activeDeadlineSeconds"] == 91
    [patch] = spec["runtimePatches"]
    assert patch["manager"] == manifests.PATCH_MANAGER
    [node] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert node["name"] == "node"  # the trainer's replicated job in both runtimes
    pod_spec = _pod_spec(job)
    [container] = pod_spec["containers"]
    assert container["name"] == "node"
    assert "env" not in container  # the webhook refuses env on "node": it goes in trainer.env
    volumes = {volume["name"] for volume in pod_spec["volumes"]}
    assert {mount["name"] for mount in container["volumeMounts"]} <= volumes
    if case.full:
        assert pod_spec["nodeSelector"] == case.spec().kubernetes.node_selector
    else:
        assert "nodeSelector" not in pod_spec


# -- shared: container, resources, labels, ConfigMap --------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_command_env_and_resources(case: Case) -> None:
    """The runtime command, its environment and the requested resources."""
    job_objects = case.job()
    job = manifests.job_manifest(job_objects)
    container = _container(job)
    payload_path = f"{manifests.MOUNT}/{manifests.PAYLOAD_KEY}"
    assert container["command"] == ["python", "-m", "jupyter_training.runtime", payload_path]
    env = _env(container)
    assert env["PYTHONPATH"] == manifests.MOUNT
    assert env["JUPYTER_TRAINING_FRAMEWORK"] == case.framework
    assert env["JUPYTER_TRAINING_JOB_ID"] == JOB_ID
    if case.full:
        assert env["SEED"] == "1"
        assert json.loads(env["JUPYTER_TRAINING_PIP"]) == ["scikit-learn==1.5.2", "pandas>=2"]
    else:
        assert "JUPYTER_TRAINING_PIP" not in env
    resources = container.get("resourcesPerNode" if case.api == "v2" else "resources", {})
    limits, requests = resources.get("limits", {}), resources.get("requests", {})
    if case.gpus:
        assert limits["nvidia.com/gpu"] == str(case.gpus)
    else:
        assert "nvidia.com/gpu" not in limits
    if case.full:
        assert requests["cpu"] == "2"
        assert requests["memory"] == limits["memory"] == "8Gi"
    if not case.full and not case.gpus:
        assert resources == {}


@pytest.mark.parametrize("case", [c for c in CASES if c.gpus], ids=ids)
def test_gpu_resource_name_is_configurable(case: Case) -> None:
    """--gpus requests the configured extended resource instead."""
    container = _container(manifests.job_manifest(case.job(gpu_resource_name="amd.com/gpu")))
    limits = container["resourcesPerNode" if case.api == "v2" else "resources"]["limits"]
    assert limits["amd.com/gpu"] == str(case.gpus)
    assert "nvidia.com/gpu" not in limits


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_volumes_and_mounts(case: Case) -> None:
    """The runtime ConfigMap, the workspace and the claims are mounted where asked."""
    job = manifests.job_manifest(case.job())
    roles = list(job["spec"][V1_REPLICAS_FIELD[job["kind"]]]) if case.api == "v1" else [None]
    for role in roles:
        pod_spec = _pod_spec(job, role)
        volumes = {volume["name"]: volume for volume in pod_spec["volumes"]}
        mounts = {m["mountPath"]: m for m in pod_spec["containers"][0]["volumeMounts"]}
        assert volumes["jupyter-training"]["configMap"]["name"] == f"{case.job().name}-payload"
        assert mounts[manifests.MOUNT] == {
            "name": "jupyter-training",
            "mountPath": manifests.MOUNT,
            "readOnly": True,
        }
        assert mounts[manifests.WORKDIR]["name"] == "workspace"
        assert volumes["workspace"] == {"name": "workspace", "emptyDir": {}}
        claims = {
            volume["persistentVolumeClaim"]["claimName"]: mount["mountPath"]
            for mount in mounts.values()
            if "persistentVolumeClaim" in (volume := volumes[mount["name"]])
        }
        expected = {"work": "/mnt/work", "datasets.v1": "/data"} if case.full else {}
        assert claims == expected
        if case.api == "v1":
            assert _container(job, role)["workingDir"] == manifests.WORKDIR
            assert ("nodeSelector" in pod_spec) is case.full


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_labels_and_annotations(case: Case) -> None:
    """Our labels on every object and pod template, the notebook annotation, names."""
    job_objects = case.job()
    job, configmap = manifests.job_manifest(job_objects), manifests.configmap(job_objects)
    label_sets = [job["metadata"]["labels"], configmap["metadata"]["labels"], _pod_labels(job)]
    if case.api == "v1" and case.workers > 1:
        label_sets.append(_pod_labels(job, "Worker"))
    if case.api == "v2":  # the JobSet and the node Job of the runtime patch
        template = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]
        label_sets.append(template["metadata"]["labels"])
        label_sets.append(template["spec"]["replicatedJobs"][0]["template"]["metadata"]["labels"])
    for labels in label_sets:
        assert labels["app.kubernetes.io/managed-by"] == "jupyter-training"
        assert labels[LABEL_JOB_ID] == JOB_ID
        assert labels.get("kueue.x-k8s.io/queue-name") == ("team-a-queue" if case.full else None)
    for manifest in (job, configmap):
        assert manifest["metadata"]["namespace"] == NAMESPACE
        if case.full:
            assert manifest["metadata"]["annotations"] == {ANNOTATION_NOTEBOOK: NOTEBOOK}
            assert manifest["metadata"]["labels"]["jupyter-training.io/notebook"] == (
                "My-Experiment-v2"
            )
        else:
            assert "annotations" not in manifest["metadata"]
    assert job["metadata"]["name"] == ("mnist-ddp" if case.full else f"job-{JOB_ID}")
    assert configmap["metadata"]["name"] == f"{job['metadata']['name']}-payload"


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_configmap_carries_runtime_and_payload(case: Case) -> None:
    """Valid keys, all mounted; runtime files verbatim; payload round-trips."""
    job_objects = case.job()
    configmap = manifests.configmap(job_objects)
    keys = set(configmap["data"]) | set(configmap["binaryData"])
    assert all(re.fullmatch(CONFIGMAP_KEY, key) for key in keys)
    assert base64.b64decode(configmap["binaryData"][manifests.PAYLOAD_KEY]) == PAYLOAD
    files = manifests.runtime_files()
    assert "jupyter_training/runtime/__main__.py" in files
    [volume] = [
        v for v in _pod_spec(manifests.job_manifest(job_objects))["volumes"] if "configMap" in v
    ]
    items = volume["configMap"]["items"]
    assert {item["key"] for item in items} == keys  # every item has a key, every key is mounted
    by_path = {item["path"]: item["key"] for item in items}
    assert set(by_path) == set(files) | {manifests.PAYLOAD_KEY}
    for path, text in files.items():
        assert configmap["data"][by_path[path]] == text
    assert volume["configMap"]["defaultMode"] == 0o444


def test_payload_on_a_volume_leaves_it_out_of_the_configmap() -> None:
    """A large payload is read from the claim."""
    path = "/mnt/work/.jupyter-training/0123456789ab/payload.bin"
    case = Case("pytorch", "v1", 2, 0, True)
    job_objects = case.job(payload=None, payload_path=path)
    configmap = manifests.configmap(job_objects)
    job = manifests.job_manifest(job_objects)
    assert "binaryData" not in configmap
    [volume] = [v for v in _pod_spec(job)["volumes"] if "configMap" in v]
    assert {item["key"] for item in volume["configMap"]["items"]} == set(configmap["data"])
    assert _container(job)["command"][-1] == path
    assert validate_manifest(configmap) == validate_manifest(job) == []


# -- the validator catches what the API server would refuse ---------------------------------------

Mutation = Callable[[dict[str, Any]], None]
Expected = str | tuple[str, ...]


def _v1_master(job: dict[str, Any]) -> dict[str, Any]:
    """The Master replica spec of a PyTorchJob."""
    return job["spec"]["pytorchReplicaSpecs"]["Master"]


def _v1_pod(job: dict[str, Any]) -> dict[str, Any]:
    """The Master pod spec of a PyTorchJob."""
    return _v1_master(job)["template"]["spec"]


def _v2_pod(job: dict[str, Any]) -> dict[str, Any]:
    """The node pod spec patch of a TrainJob."""
    return _pod_spec(job)


MASTER = "spec.pytorchReplicaSpecs.Master"
POD = f"{MASTER}.template.spec"
V2_POD = (
    "spec.runtimePatches[0].trainingRuntimeSpec.template.spec.replicatedJobs[0]"
    ".template.spec.template.spec"
)

V1_MUTATIONS: list[tuple[str, Mutation, Expected]] = [
    (
        "typo-field",
        lambda j: _v1_master(j).update(restartPolicyy=_v1_master(j).pop("restartPolicy")),
        f"{MASTER}.restartPolicyy: unknown field",
    ),
    (
        "typo-in-container",
        lambda j: _v1_pod(j)["containers"][0].update(workdir="/x"),
        f"{POD}.containers[0].workdir: unknown field",
    ),
    (
        "bad-restart-policy",
        lambda j: _v1_master(j).update(restartPolicy="Sometimes"),
        f"{MASTER}.restartPolicy: 'Sometimes' is not one of Always, OnFailure, Never, ExitCode",
    ),
    (
        "bad-clean-pod-policy",
        lambda j: j["spec"]["runPolicy"].update(cleanPodPolicy="Finished"),
        "spec.runPolicy.cleanPodPolicy: 'Finished' is not one of All, Running, None",
    ),
    (
        "missing-container-name",
        lambda j: _v1_pod(j)["containers"][0].pop("name"),
        (
            f"{POD}.containers[0].name: required",
            f"{POD}.containers: must have a container named 'pytorch'",
        ),
    ),
    (
        "missing-replica-specs",
        lambda j: j["spec"].pop("pytorchReplicaSpecs"),
        "spec.pytorchReplicaSpecs: required",
    ),
    (
        "missing-mount-path",
        lambda j: _v1_pod(j)["containers"][0]["volumeMounts"][0].pop("mountPath"),
        f"{POD}.containers[0].volumeMounts[0].mountPath: required",
    ),
    (
        "replicas-as-string",
        lambda j: _v1_master(j).update(replicas="1"),
        f"{MASTER}.replicas: expected integer, got str",
    ),
    (
        "readonly-as-string",
        lambda j: _v1_pod(j)["containers"][0]["volumeMounts"][0].update(readOnly="true"),
        f"{POD}.containers[0].volumeMounts[0].readOnly: expected boolean, got str",
    ),
    (
        "backoff-limit-as-bool",
        lambda j: j["spec"]["runPolicy"].update(backoffLimit=True),
        "spec.runPolicy.backoffLimit: expected integer, got bool",
    ),
    (
        "int32-overflow",
        lambda j: j["spec"]["runPolicy"].update(backoffLimit=2**31),
        f"spec.runPolicy.backoffLimit: must be <= {2**31 - 1}, is {2**31}",
    ),
    (
        "master-replicas-2",
        lambda j: _v1_master(j).update(replicas=2),
        f"{MASTER}.replicas: must be 1",
    ),
    (
        "worker-replicas-0",
        lambda j: j["spec"]["pytorchReplicaSpecs"]["Worker"].update(replicas=0),
        "spec.pytorchReplicaSpecs.Worker.replicas: must be at least 1",
    ),
    (
        "lowercase-replica-key",
        lambda j: j["spec"]["pytorchReplicaSpecs"].update(
            worker=j["spec"]["pytorchReplicaSpecs"].pop("Worker")
        ),
        "spec.pytorchReplicaSpecs.worker: invalid key: 'worker' is not one of Master, Worker",
    ),
    (
        "no-pytorch-container",
        lambda j: _v1_pod(j)["containers"][0].update(name="main"),
        f"{POD}.containers: must have a container named 'pytorch'",
    ),
    (
        "empty-image",
        lambda j: _v1_pod(j)["containers"][0].update(image=""),
        f"{POD}.containers[0].image: must be at least 1 characters",
    ),
    (
        "bad-quantity",
        lambda j: _v1_pod(j)["containers"][0]["resources"]["requests"].update(memory="8 GB"),
        f"{POD}.containers[0].resources.requests.memory: '8 GB' is not a quantity",
    ),
    (
        "gpu-as-float",
        lambda j: _v1_pod(j)["containers"][0]["resources"]["limits"].update(
            {"nvidia.com/gpu": 2.0}
        ),
        f'{POD}.containers[0].resources.limits["nvidia.com/gpu"]: '
        "expected integer or string, got float",
    ),
    (
        "duplicate-env",
        lambda j: _v1_pod(j)["containers"][0]["env"].append({"name": "SEED", "value": "2"}),
        f"{POD}.containers[0].env[14]: duplicate (name) of item 10",
    ),
    (
        "env-value-and-value-from",
        lambda j: _v1_pod(j)["containers"][0]["env"][-1].update(value="plain"),
        f"{POD}.containers[0].env[13].valueFrom: may not be specified",
    ),
    (
        "secret-key-ref-bad-key",
        lambda j: _v1_pod(j)["containers"][0]["env"][-1]["valueFrom"]["secretKeyRef"].update(
            key="a/b"
        ),
        f"{POD}.containers[0].env[13].valueFrom.secretKeyRef.key: ",
    ),
    (
        "port-name-too-long",
        lambda j: _v1_pod(j)["containers"][0]["ports"][0].update(name="pytorchjob-port1"),
        f"{POD}.containers[0].ports[0].name: must be at most 15 characters, is 16",
    ),
    (
        "mount-without-volume",
        lambda j: _v1_pod(j)["volumes"].pop(),
        f"{POD}.containers[0].volumeMounts[3].name: no volume named 'volume-1'",
    ),
    (
        "two-volume-sources",
        lambda j: _v1_pod(j)["volumes"][1].update(persistentVolumeClaim={"claimName": "x"}),
        f"{POD}.volumes[1]: more than one volume source: emptyDir, persistentVolumeClaim",
    ),
    (
        "item-path-escapes",
        lambda j: _v1_pod(j)["volumes"][0]["configMap"]["items"][0].update(path="../etc/x"),
        f"{POD}.volumes[0].configMap.items[0].path: '../etc/x' does not match "
        r"(?!/)(?!(.*/)?\.\.(/|\Z)).+",
    ),
    (
        "label-value-too-long",
        lambda j: j["metadata"]["labels"].update({"kueue.x-k8s.io/queue-name": "q" * 64}),
        'metadata.labels["kueue.x-k8s.io/queue-name"]: must be at most 63 characters, is 64',
    ),
    (
        "bad-label-key",
        lambda j: _v1_master(j)["template"]["metadata"]["labels"].update({"bad key": "x"}),
        f"{MASTER}.template.metadata.labels[\"bad key\"]: invalid key: 'bad key' does not match",
    ),
    (
        "name-not-dns-1035",
        lambda j: j["metadata"].update(name="1-job"),
        "metadata.name: '1-job' does not match",
    ),
    (
        "unknown-top-level",
        lambda j: j.update(status={}),
        "status: unknown field",
    ),
]

V2_MUTATIONS: list[tuple[str, Mutation, Expected]] = [
    (
        "typo-in-trainer",
        lambda j: j["spec"]["trainer"].update(numNode=2),
        "spec.trainer.numNode: unknown field",
    ),
    (
        "missing-runtime-ref",
        lambda j: j["spec"].pop("runtimeRef"),
        "spec.runtimeRef: required",
    ),
    (
        "missing-runtime-name",
        lambda j: j["spec"]["runtimeRef"].pop("name"),
        "spec.runtimeRef.name: required",
    ),
    (
        "runtime-name-none",
        lambda j: j["spec"]["runtimeRef"].update(name=None),
        "spec.runtimeRef.name: expected string, got NoneType",
    ),
    (
        "bad-runtime-kind",
        lambda j: j["spec"]["runtimeRef"].update(kind="Runtime"),
        "spec.runtimeRef.kind: 'Runtime' is not one of ClusterTrainingRuntime, TrainingRuntime",
    ),
    (
        "num-proc-per-node-0",
        lambda j: j["spec"]["trainer"].update(numProcPerNode=0),
        "spec.trainer.numProcPerNode: must be >= 1, is 0",
    ),
    (
        "num-nodes-negative",
        lambda j: j["spec"]["trainer"].update(numNodes=-1),
        "spec.trainer.numNodes: must be >= 0, is -1",
    ),
    (
        "deadline-0",
        lambda j: j["spec"].update(activeDeadlineSeconds=0),
        "spec.activeDeadlineSeconds: must be >= 1, is 0",
    ),
    (
        "reserved-env",
        lambda j: j["spec"]["trainer"]["env"].append({"name": "PET_NNODES", "value": "2"}),
        "spec.trainer.env[14].name: 'PET_NNODES' is reserved",
    ),
    (
        "reserved-xgboost-env",
        lambda j: j["spec"]["trainer"]["env"].append({"name": "DMLC_NUM_WORKER", "value": "2"}),
        "spec.trainer.env[14].name: 'DMLC_NUM_WORKER' is reserved",
    ),
    (
        "env-on-node-patch",
        lambda j: _v2_pod(j)["containers"][0].update(env=[{"name": "A", "value": "1"}]),
        f"{V2_POD}.containers[0].env: not allowed on container 'node'; use spec.trainer.env",
    ),
    (
        "patch-without-manager",
        lambda j: j["spec"]["runtimePatches"][0].pop("manager"),
        "spec.runtimePatches[0].manager: required",
    ),
    (
        "manager-not-domain-prefixed",
        lambda j: j["spec"]["runtimePatches"][0].update(manager="jupyter-training"),
        "spec.runtimePatches[0].manager: 'jupyter-training' does not match",
    ),
    (
        "too-many-patches",
        lambda j: j["spec"]["runtimePatches"].extend(
            {"manager": f"example.com/m{i}"} for i in range(16)
        ),
        "spec.runtimePatches: must have at most 16 items, has 17",
    ),
    (
        "bad-managed-by",
        lambda j: j["spec"].update(managedBy="me"),
        "spec.managedBy: 'me' is not one of trainer.kubeflow.org/trainjob-controller, "
        "kueue.x-k8s.io/multikueue",
    ),
    (
        "replicated-job-without-name",
        lambda j: j["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
            "replicatedJobs"
        ][0].pop("name"),
        "spec.runtimePatches[0].trainingRuntimeSpec.template.spec.replicatedJobs[0].name: required",
    ),
    (
        "image-too-long",
        lambda j: j["spec"]["trainer"].update(image="a" * 501),
        "spec.trainer.image: must be at most 500 characters, is 501",
    ),
    (
        "name-with-capitals",
        lambda j: j["metadata"].update(name="MyJob"),
        "metadata.name: 'MyJob' does not match",
    ),
    (
        "name-too-long",
        lambda j: j["metadata"].update(name="a" * 64),
        "metadata.name: must be at most 63 characters, is 64",
    ),
    (
        "two-patch-mounts-of-one-volume",
        lambda j: _v2_pod(j)["containers"][0]["volumeMounts"].append(
            {"name": "workspace", "mountPath": "/elsewhere"}
        ),
        f"{V2_POD}.containers[0].volumeMounts[4]: duplicate (name) of item 1",
    ),
    (
        "volume-name-not-dns-label",
        lambda j: _v2_pod(j)["volumes"][0].update(name="Jupyter_Training"),
        f"{V2_POD}.volumes[0].name: 'Jupyter_Training' does not match",
    ),
]

CONFIGMAP_MUTATIONS: list[tuple[str, Mutation, Expected]] = [
    (
        "key-with-slash",
        lambda c: c["data"].update({"jupyter_training/x.py": ""}),
        "data[\"jupyter_training/x.py\"]: invalid key: 'jupyter_training/x.py' does not match",
    ),
    (
        "key-dot-dot",
        lambda c: c["data"].update({"..data": ""}),
        "data[\"..data\"]: invalid key: '..data' does not match",
    ),
    (
        "not-base64",
        lambda c: c["binaryData"].update({"payload.bin": "not base64!"}),
        'binaryData["payload.bin"]: is not base64',
    ),
    (
        "key-in-both",
        lambda c: c["data"].update({"payload.bin": "x"}),
        'binaryData["payload.bin"]: key is also in data',
    ),
    (
        "over-one-mib",
        lambda c: c["binaryData"].update(big=base64.b64encode(b"\0" * (1024 * 1024)).decode()),
        "<root>: data and binaryData hold",
    ),
    (
        "data-value-not-string",
        lambda c: c["data"].update(n=1),
        "data.n: expected string, got int",
    ),
]


def _as_sent(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as the API server receives it: JSON, so no object is shared by two fields."""
    return json.loads(json.dumps(manifest))


def _assert_errors(errors: list[str], expected: str | tuple[str, ...]) -> None:
    """``errors`` are exactly the expected ones, each given by its start."""
    wanted = (expected,) if isinstance(expected, str) else expected
    assert len(errors) == len(wanted), errors
    for error, start in zip(errors, wanted, strict=True):
        assert error.startswith(start), errors


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in V1_MUTATIONS],
)
def test_validator_catches_v1_errors(mutate: Mutation, expected: Expected) -> None:
    """Each broken PyTorchJob gives exactly the expected errors."""
    job = _as_sent(manifests.job_manifest(Case("pytorch", "v1", 3, 2, True).job()))
    assert validate_manifest(job) == []
    mutate(job)
    _assert_errors(validate_manifest(job), expected)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in V2_MUTATIONS],
)
def test_validator_catches_v2_errors(mutate: Mutation, expected: Expected) -> None:
    """Each broken TrainJob gives exactly the expected errors."""
    job = _as_sent(manifests.job_manifest(Case("pytorch", "v2", 3, 2, True).job()))
    assert validate_manifest(job) == []
    mutate(job)
    _assert_errors(validate_manifest(job), expected)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in CONFIGMAP_MUTATIONS],
)
def test_validator_catches_configmap_errors(mutate: Mutation, expected: Expected) -> None:
    """Each broken ConfigMap gives exactly the expected errors."""
    configmap = _as_sent(manifests.configmap(Case("pytorch", "v1", 3, 2, True).job()))
    assert validate_manifest(configmap) == []
    mutate(configmap)
    _assert_errors(validate_manifest(configmap), expected)


def test_xgboost_needs_a_master() -> None:
    """The XGBoost webhook rule: a Master replica is required."""
    job = _as_sent(manifests.job_manifest(Case("xgboost", "v1", 3, 0, False).job()))
    replicas = job["spec"]["xgbReplicaSpecs"]
    replicas["Worker"]["replicas"] = 3
    del replicas["Master"]
    assert validate_manifest(job) == ["spec.xgbReplicaSpecs.Master: required"]


def test_validator_primitives() -> None:
    """Types, required, enum, length, uniqueness and unknown fields, with paths."""
    schema = obj(
        {
            "n": int32(minimum=0),
            "flag": boolean(),
            "tags": amap(string(max_length=3)),
            "items": arr(obj({"k": string(enum=("a", "b"))}, required=("k",)), unique=("k",)),
        },
        required=("n",),
    )
    assert validate({"n": 0, "flag": False, "tags": {"a.b/c": "xyz"}, "items": []}, schema) == []
    assert validate(
        {"flag": 1, "tags": {"a.b/c": "long"}, "items": [{"k": "c"}, {}, {"k": "c"}], "x": 1},
        schema,
    ) == [
        "n: required",
        "flag: expected boolean, got int",
        'tags["a.b/c"]: must be at most 3 characters, is 4',
        "items[0].k: 'c' is not one of a, b",
        "items[1].k: required",
        "items[2].k: 'c' is not one of a, b",
        "items[2]: duplicate (k) of item 0",
        "x: unknown field",
    ]
    assert validate([], schema) == ["<root>: expected object, got list"]


def test_model_is_not_vacuous() -> None:
    """Spot checks that the model describes the fields the tests rely on."""
    spec = PYTORCH_JOB["properties"]["spec"]
    assert spec["required"] == ("pytorchReplicaSpecs",)
    replica = spec["properties"]["pytorchReplicaSpecs"]["values"]
    assert set(replica["properties"]) == {"replicas", "restartPolicy", "template"}
    broken = _as_sent(manifests.job_manifest(Case("pytorch", "v1", 2, 0, False).job()))
    broken["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"] = {}
    assert validate_manifest(broken) == [
        f"{POD}.containers: required",
        f"{MASTER}.template.spec.containers: must have a container named 'pytorch'",
    ]


# -- elastic PyTorchJob: spec.elasticPolicy (release-1.9) --------------------------------------

#: ``spec.elasticPolicy`` of kubeflow.org_pytorchjobs.yaml (release-1.9), every field but
#: ``metrics`` (an HPA's MetricSpec list, which we never send). The CRD gives rdzvBackend no
#: enum; the Go type RDZVBackend (pkg/apis/kubeflow.org/v1/pytorch_types.go) has these.
ELASTIC_POLICY = obj(
    {
        "minReplicas": int32(),
        "maxReplicas": int32(),
        "rdzvBackend": string(enum=("c10d", "etcd", "etcd-v2")),
        "rdzvPort": int32(),
        "rdzvHost": string(),
        "rdzvId": string(),
        "rdzvConf": arr(obj({"key": string(), "value": string()})),
        "standalone": boolean(),
        "nProcPerNode": int32(),
        "maxRestarts": int32(),
    }
)


def _elastic_rules(spec: Any) -> list[tuple[str, str]]:
    """pkg/webhooks/pytorch/pytorchjob_webhook.go validateSpec, and the CRD's description of
    maxReplicas ("cannot be smaller than MinReplicas")."""
    policy = spec.get("elasticPolicy")
    if not isinstance(policy, dict):
        return []
    problems = []
    if "Worker" not in (spec.get("pytorchReplicaSpecs") or {}):
        problems.append((".pytorchReplicaSpecs.Worker", "must be configured with elasticPolicy"))
    if "nProcPerNode" in policy and "nprocPerNode" in spec:
        problems.append((".elasticPolicy.nProcPerNode", "must not be used with nprocPerNode"))
    low, high = policy.get("minReplicas"), policy.get("maxReplicas")
    if isinstance(low, int) and isinstance(high, int) and high < low:
        problems.append((".elasticPolicy.maxReplicas", "cannot be smaller than minReplicas"))
    return problems


def _with_elastic_policy(schema: dict[str, Any]) -> dict[str, Any]:
    """The PyTorchJob model with ``spec.elasticPolicy`` and its webhook rules."""
    model = {**schema, "properties": dict(schema["properties"])}
    spec = model["properties"]["spec"]
    model["properties"]["spec"] = {
        **spec,
        "properties": {**spec["properties"], "elasticPolicy": ELASTIC_POLICY},
        "checks": (*spec["checks"], _elastic_rules),
    }
    return model


ELASTIC_PYTORCH_JOB = _with_elastic_policy(PYTORCH_JOB)


def _elastic_job(workers: str = "1:4", *, full: bool = True, gpus: int = 2) -> dict[str, Any]:
    case = Case("pytorch", "v1", 4, gpus, full)
    spec = case.spec().replace(workers=workers, max_restarts=3)
    job = case.job(spec=spec, target=target_for("pytorch", "v1", elastic=True))
    return _as_sent(manifests.job_manifest(job))


@pytest.mark.parametrize("full", [False, True], ids=["bare", "full"])
@pytest.mark.parametrize("workers", ["1:4", "2:2", "3:8"])
def test_elastic_pytorchjob_validates(workers: str, full: bool) -> None:
    """``--workers MIN:MAX``: Worker replicas only (MAX of them), an elasticPolicy the
    release-1.9 CRD and webhook accept, torchrun as the command."""
    low, high = (int(n) for n in workers.split(":"))
    job = _elastic_job(workers, full=full)
    assert validate(job, ELASTIC_PYTORCH_JOB) == []
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert list(replicas) == ["Worker"] and replicas["Worker"]["replicas"] == high
    assert job["spec"]["elasticPolicy"] == {
        "minReplicas": low,
        "maxReplicas": high,
        "rdzvBackend": "c10d",
        "rdzvId": JOB_ID,
        "maxRestarts": 3,
    }
    assert job["spec"]["nprocPerNode"] == "1"  # not elasticPolicy.nProcPerNode (deprecated)
    container = replicas["Worker"]["template"]["spec"]["containers"][0]
    assert container["command"] == [
        "python",
        "-m",
        "torch.distributed.run",
        "-m",
        "jupyter_training.runtime.node",
        f"{manifests.MOUNT}/{manifests.PAYLOAD_KEY}",
    ]
    assert container["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456}]
    if full:  # a gang of at least MIN pods is enough to start
        assert job["spec"]["runPolicy"]["schedulingPolicy"]["minAvailable"] == low


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda j: j["spec"]["elasticPolicy"].update(rdzvBackend="zookeeper"),
            "spec.elasticPolicy.rdzvBackend: 'zookeeper' is not one of c10d, etcd, etcd-v2",
            id="rdzv-backend",
        ),
        pytest.param(
            lambda j: j["spec"]["elasticPolicy"].update(nProcPerNode=2),
            "spec.elasticPolicy.nProcPerNode: must not be used with nprocPerNode",
            id="nproc-twice",
        ),
        pytest.param(
            lambda j: j["spec"]["elasticPolicy"].update(minReplicas=5),
            "spec.elasticPolicy.maxReplicas: cannot be smaller than minReplicas",
            id="min-over-max",
        ),
        pytest.param(
            lambda j: j["spec"].update(
                pytorchReplicaSpecs={"Master": j["spec"]["pytorchReplicaSpecs"]["Worker"]}
            ),
            (
                "spec.pytorchReplicaSpecs.Master.replicas: must be 1",
                "spec.pytorchReplicaSpecs.Worker: must be configured with elasticPolicy",
            ),
            id="no-worker",
        ),
        pytest.param(
            lambda j: j["spec"]["elasticPolicy"].update(rdzvPort="29400"),
            "spec.elasticPolicy.rdzvPort: expected integer",
            id="port-type",
        ),
    ],
)
def test_validator_catches_elastic_errors(mutate: Mutation, expected: Expected) -> None:
    """Each broken elastic PyTorchJob gives exactly the expected errors."""
    job = _elastic_job()
    mutate(job)
    _assert_errors(validate(job, ELASTIC_PYTORCH_JOB), expected)


@pytest.mark.parametrize("api", ["v1", "v2"])
@pytest.mark.parametrize("checkpoint", ["ckpt:/ckpt", "work:/ckpt", "work:/mnt/work"])
def test_checkpoint_claims_validate(api: str, checkpoint: str) -> None:
    """``--checkpoint CLAIM:PATH`` (its own claim, a --volume's claim elsewhere, a --volume
    itself) renders valid pods: one mount per path, one mount per volume in a patch."""
    case = Case("pytorch", api, 2, 0, True)
    spec = case.spec().replace(checkpoint=checkpoint)
    for manifest in manifests.render(case.job(spec=spec)):
        assert validate_manifest(manifest) == [], manifest["kind"]
    env = _env(_container(manifests.job_manifest(case.job(spec=spec))))
    path = checkpoint.split(":", 1)[1]
    assert env["JUPYTER_TRAINING_CHECKPOINT_DIR"] == (
        f"{path}/jupyter-training/checkpoints/{JOB_ID}"
    )
