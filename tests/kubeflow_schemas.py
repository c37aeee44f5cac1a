"""A hand-written model of the Kubernetes schemas our manifests must satisfy, and a validator.

Sources, read field by field (CRD paths below are given from ``openAPIV3Schema.properties``):

* ``kubeflow.org/v1`` PyTorchJob and XGBoostJob: kubeflow/trainer ``release-1.9``,
  ``manifests/base/crds/kubeflow.org_{pytorchjobs,xgboostjobs}.yaml``. Both share one ReplicaSpec
  and one RunPolicy schema. The CRDs carry no ``enum``; the allowed values below come from the Go
  types (``pkg/apis/kubeflow.org/v1/common_types.go``) and the webhooks
  (``pkg/webhooks/{pytorch,xgboost}/*_webhook.go``), and say so where used.
* ``trainer.kubeflow.org/v1alpha1`` TrainJob: kubeflow/trainer ``master``,
  ``manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml`` (``runtimePatches`` API, v2.2+),
  plus the plugin webhooks (``pkg/runtime/framework/plugins/{torch,xgboost,jobset}``).
* What the API server checks on every object or on the pods that the operators create from our
  templates: ObjectMeta (names, label and annotation keys and values), Pod (container, volume and
  port names, one source per volume, mounts naming a volume) and ConfigMap (key format, 1 MiB).

The model is a strict *subset*: at every object level it describes, a field it does not list is
an error. A structural CRD schema would silently prune such a field, so a typo in the renderer
would vanish without a trace; here it fails the tests. When the renderer starts to emit a new
field, add it here after checking it in the CRD.

A schema is a plain dict with a ``type`` of ``object``, ``map``, ``array``, ``string``,
``integer``, ``boolean``, ``quantity`` (int-or-string resource quantity) or ``any``; build them
with the small constructors below. ``validate`` returns error strings such as
``spec.pytorchReplicaSpecs.Master.template.spec.containers[0].name: required``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

Schema = dict[str, Any]
#: A cross-field rule: value -> [(path suffix such as ".name" or "[0]", message)].
Check = Callable[[Any], list[tuple[str, str]]]

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
MIB = 1024 * 1024

# -- name formats (k8s.io/apimachinery/pkg/util/validation) -----------------------------------

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = rf"{DNS1123_LABEL}(\.{DNS1123_LABEL})*"
_NAME_PART = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
#: Label/annotation keys and resource names: an optional DNS subdomain prefix (<= 253) and "/",
#: then a name of at most 63 characters.
QUALIFIED_NAME = rf"((?=[^/]{{1,253}}/){DNS1123_SUBDOMAIN}/)?(?=[^/]{{1,63}}\Z){_NAME_PART}"
LABEL_VALUE = rf"({_NAME_PART})?"
#: IANA service name (container port names): <= 15, lowercase, a letter somewhere, no "--".
PORT_NAME = r"(?=.*[a-z])(?!.*--)[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#: ConfigMap data keys: [-._a-zA-Z0-9]+, and neither ".", "..", nor starting with "..".
CONFIGMAP_KEY = r"(?!\.\.)(?!\.\Z)[-._a-zA-Z0-9]+"
#: A relative file path without ".." segments (configMap items[].path, pod validation).
RELATIVE_PATH = r"(?!/)(?!(.*/)?\.\.(/|\Z)).+"
#: validation.IsDomainPrefixedPath: "<DNS subdomain>/<RFC 3986 path characters>".
DOMAIN_PREFIXED_PATH = rf"{DNS1123_SUBDOMAIN}/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"
#: resource.Quantity, same language as the CRDs' pattern on limits/requests values.
QUANTITY_PATTERN = (
    r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
    r"(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+))?"
)


# -- constructors --------------------------------------------------------------------------


def obj(
    properties: dict[str, Schema],
    *,
    required: Iterable[str] = (),
    checks: Iterable[Check] = (),
) -> Schema:
    """An object with exactly these fields (others are errors)."""
    return {
        "type": "object",
        "properties": properties,
        "required": tuple(required),
        "checks": tuple(checks),
    }


def amap(values: Schema, *, keys: Schema | None = None, checks: Iterable[Check] = ()) -> Schema:
    """A map (``additionalProperties``) with free keys, checked by ``keys`` if given."""
    return {"type": "map", "values": values, "keys": keys, "checks": tuple(checks)}


def arr(
    items: Schema,
    *,
    unique: Iterable[str] = (),
    max_items: int | None = None,
    min_items: int = 0,
) -> Schema:
    """A list; ``unique`` are its ``x-kubernetes-list-map-keys`` (no two items may share them)."""
    return {
        "type": "array",
        "items": items,
        "unique": tuple(unique),
        "max_items": max_items,
        "min_items": min_items,
    }


def string(
    *,
    enum: Iterable[str] | None = None,
    pattern: str | None = None,
    min_length: int = 0,
    max_length: int | None = None,
    not_in: Iterable[str] = (),
    byte: bool = False,
    default: str | None = None,
) -> Schema:
    """A string; lengths count UTF-8 bytes like Go's ``len``; ``byte``: base64 (format: byte)."""
    return {
        "type": "string",
        "enum": None if enum is None else tuple(enum),
        "pattern": None if pattern is None else re.compile(pattern),
        "min_length": min_length,
        "max_length": max_length,
        "not_in": frozenset(not_in),
        "byte": byte,
        "default": default,
    }


def integer(
    minimum: int | None = None, maximum: int | None = None, *, bits: int | None = None
) -> Schema:
    """An integer (never a bool); ``bits`` 32 or 64 adds the range of ``format: int32/int64``."""
    low, high = {None: (None, None), 32: INT32, 64: INT64}[bits]
    return {
        "type": "integer",
        "minimum": low if minimum is None else minimum,
        "maximum": high if maximum is None else maximum,
    }


def int32(minimum: int | None = None, maximum: int | None = None) -> Schema:
    """``type: integer, format: int32``."""
    return integer(minimum, maximum, bits=32)


def int64(minimum: int | None = None) -> Schema:
    """``type: integer, format: int64``."""
    return integer(minimum, bits=64)


def boolean() -> Schema:
    """``type: boolean``."""
    return {"type": "boolean"}


QUANTITY: Schema = {"type": "quantity"}
ANY: Schema = {"type": "any"}

# -- cross-field rules -----------------------------------------------------------------------


def _items(value: Any, field: str) -> list[Any]:
    """The list in ``value[field]``, or [] when absent or not a list."""
    items = value.get(field) if isinstance(value, dict) else None
    return items if isinstance(items, list) else []


def _one_volume_source(volume: Any) -> list[tuple[str, str]]:
    """Pod validation: a volume has exactly one source (configMap, emptyDir, ...)."""
    sources = [key for key in volume if key != "name"]
    if len(sources) == 1:
        return []
    if not sources:
        return [("", "must specify a volume source")]
    return [("", f"more than one volume source: {', '.join(sorted(sources))}")]


def _mounts_name_volumes(pod_spec: Any) -> list[tuple[str, str]]:
    """Pod validation: every volumeMounts[].name is the name of one of the pod's volumes."""
    volumes = {v.get("name") for v in _items(pod_spec, "volumes") if isinstance(v, dict)}
    problems = []
    for c_index, container in enumerate(_items(pod_spec, "containers")):
        for m_index, mount in enumerate(_items(container, "volumeMounts")):
            if isinstance(mount, dict) and "name" in mount and mount["name"] not in volumes:
                problems.append(
                    (
                        f".containers[{c_index}].volumeMounts[{m_index}].name",
                        f"no volume named {mount['name']!r}",
                    )
                )
    return problems


def _annotations_size(annotations: Any) -> list[tuple[str, str]]:
    """ObjectMeta validation: keys plus values of all annotations total at most 256 KiB."""
    total = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if total > 256 * 1024:
        return [("", f"annotations total {total} bytes, more than {256 * 1024}")]
    return []


def _configmap_rules(configmap: Any) -> list[tuple[str, str]]:
    """ConfigMap validation: a key in data or binaryData, not both; at most 1 MiB of values."""
    data = configmap.get("data") if isinstance(configmap.get("data"), dict) else {}
    binary = configmap.get("binaryData") if isinstance(configmap.get("binaryData"), dict) else {}
    problems = [
        (f".binaryData{_key_suffix(key)}", "key is also in data") for key in set(data) & set(binary)
    ]
    total = sum(len(str(v).encode()) for v in data.values())
    for value in binary.values():
        with contextlib.suppress(binascii.Error, TypeError, ValueError):  # reported elsewhere
            total += len(base64.b64decode(value, validate=True))
    if total > MIB:
        problems.append(("", f"data and binaryData hold {total} bytes, more than {MIB}"))
    return problems


def _v1_replicas(container: str, *, master_required: bool, worker_min: int | None) -> Check:
    """The v1 webhook's replica rules: Master has 1 replica; a container named ``container``."""

    def check(replica_specs: Any) -> list[tuple[str, str]]:
        """Errors of one replica map, relative to it."""
        problems = []
        if master_required and "Master" not in replica_specs:
            problems.append((".Master", "required"))
        for role, replica in replica_specs.items():
            if not isinstance(replica, dict):
                continue
            count = replica.get("replicas", 1)  # the defaulter sets 1
            if not isinstance(count, int) or isinstance(count, bool):
                count = None  # reported by the schema
            if role == "Master" and count not in (1, None):
                problems.append((".Master.replicas", "must be 1"))
            if role == "Worker" and None not in (worker_min, count) and count < worker_min:
                problems.append((".Worker.replicas", f"must be at least {worker_min}"))
            template = replica.get("template")
            spec = template.get("spec") if isinstance(template, dict) else None
            names = [c.get("name") for c in _items(spec, "containers") if isinstance(c, dict)]
            if container not in names:
                problems.append(
                    (
                        f"{_key_suffix(role)}.template.spec.containers",
                        f"must have a container named {container!r}",
                    )
                )
        return problems

    return check


#: Containers whose env a runtime patch may not set (jobset plugin Validate, master).
_NO_ENV_PATCH = ("node", "dataset-initializer", "model-initializer")


def _patch_container_env(container: Any) -> list[tuple[str, str]]:
    """jobset plugin webhook: a runtime patch may not set env on the node/initializers."""
    if container.get("name") in _NO_ENV_PATCH and container.get("env"):
        return [(".env", f"not allowed on container {container['name']!r}; use spec.trainer.env")]
    return []


# -- shared pieces -----------------------------------------------------------------------------

LABELS = amap(
    string(pattern=LABEL_VALUE, max_length=63), keys=string(pattern=QUALIFIED_NAME)
)  # ObjectMeta validation (pods are refused if their template's labels are not valid)
ANNOTATIONS = amap(string(), keys=string(pattern=QUALIFIED_NAME), checks=(_annotations_size,))
NODE_SELECTOR = LABELS  # CRD: map of strings (atomic); pod validation: label keys and values

OWNER_REFERENCE = obj(
    {
        "apiVersion": string(min_length=1),
        "kind": string(min_length=1),
        "name": string(min_length=1),
        "uid": string(min_length=1),
        "controller": boolean(),
        "blockOwnerDeletion": boolean(),
    },
    required=("apiVersion", "kind", "name", "uid"),
)


def object_meta(name_pattern: str, name_max: int) -> Schema:
    """Top-level ``metadata`` of an object we create (ObjectMeta validation)."""
    return obj(
        {
            "name": string(pattern=name_pattern, min_length=1, max_length=name_max),
            "namespace": string(pattern=DNS1123_LABEL, max_length=63),
            "labels": LABELS,
            "annotations": ANNOTATIONS,
            "ownerReferences": arr(OWNER_REFERENCE),
        },
        required=("name",),
    )


#: Embedded template metadata: the CRDs keep only these five fields (``...template.metadata``).
TEMPLATE_METADATA = obj(
    {
        "labels": LABELS,
        "annotations": ANNOTATIONS,
        "name": string(),
        "namespace": string(),
        "finalizers": arr(string()),
    }
)


def _value_or_value_from(var: Any) -> list[tuple[str, str]]:
    """core/v1 EnvVar validation: ``value`` and ``valueFrom`` exclude each other."""
    if isinstance(var, dict) and var.get("value") and "valueFrom" in var:
        return [(".valueFrom", "may not be specified when `value` is not empty")]
    return []


#: EnvVarSource, as far as we use it: a key of a Secret in the pod's namespace.
ENV_VAR_SOURCE = obj(
    {
        "secretKeyRef": obj(
            {
                "name": string(pattern=DNS1123_SUBDOMAIN, max_length=253),
                "key": string(pattern=r"[-._a-zA-Z0-9]+", max_length=253),
                "optional": boolean(),
            },
            required=("key",),
        )
    },
    required=("secretKeyRef",),
)


def env_var(name: Schema) -> Schema:
    """A core/v1 EnvVar whose name must satisfy ``name``."""
    return obj(
        {"name": name, "value": string(), "valueFrom": ENV_VAR_SOURCE},
        required=("name",),
        checks=(_value_or_value_from,),
    )


ENV_VAR = env_var(string(min_length=1))
VOLUME_MOUNT = obj(
    {
        "name": string(min_length=1),
        "mountPath": string(min_length=1),
        "readOnly": boolean(),
        "subPath": string(),
    },
    required=("name", "mountPath"),  # containers[].volumeMounts[].required
)
RESOURCES = obj(
    {  # core/v1 ResourceRequirements: limits/requests values are int-or-string quantities
        "limits": amap(QUANTITY, keys=string(pattern=QUALIFIED_NAME)),
        "requests": amap(QUANTITY, keys=string(pattern=QUALIFIED_NAME)),
    }
)
PORT = obj(
    {
        "containerPort": int32(1, 65535),  # CRD int32; pod validation 1..65535
        "name": string(pattern=PORT_NAME, max_length=15),  # pod validation: IANA_SVC_NAME
        "protocol": string(enum=("TCP", "UDP", "SCTP"), default="TCP"),
    },
    required=("containerPort",),  # ports[].required; list-map keys containerPort+protocol
)
MODE = integer(0, 0o777)  # CRD int32; pod validation: 0..0777
VOLUME = obj(
    {
        "name": string(pattern=DNS1123_LABEL, max_length=63),  # pod validation: DNS-1123 label
        "configMap": obj(
            {
                "name": string(),
                "items": arr(
                    obj(
                        {
                            "key": string(min_length=1),
                            "path": string(pattern=RELATIVE_PATH),
                            "mode": MODE,
                        },
                        required=("key", "path"),  # volumes[].configMap.items[].required
                    )
                ),
                "defaultMode": MODE,
                "optional": boolean(),
            }
        ),
        "emptyDir": obj({"medium": string(), "sizeLimit": QUANTITY}),
        "persistentVolumeClaim": obj(
            {"claimName": string(min_length=1), "readOnly": boolean()},
            required=("claimName",),
        ),
    },
    required=("name",),
    checks=(_one_volume_source,),
)

# -- kubeflow.org/v1: PyTorchJob, XGBoostJob (release-1.9) ------------------------------------

#: ReplicaSpec.restartPolicy (Go type RestartPolicy; the CRD field is a bare string).
RESTART_POLICIES = ("Always", "OnFailure", "Never", "ExitCode")
#: RunPolicy.cleanPodPolicy (Go type CleanPodPolicy; bare string in the CRD).
CLEAN_POD_POLICIES = ("All", "Running", "None")
#: RunPolicy.managedBy: the webhook (pkg/common/util/webhooks.go) accepts only these.
V1_MANAGERS = ("kubeflow.org/training-operator", "kueue.x-k8s.io/multikueue")

V1_CONTAINER = obj(
    {
        "name": string(pattern=DNS1123_LABEL, max_length=63),
        "image": string(min_length=1),  # webhook: "image ... must be required"
        "command": arr(string()),
        "args": arr(string()),
        "workingDir": string(),
        "env": arr(ENV_VAR, unique=("name",)),
        "ports": arr(PORT, unique=("containerPort", "protocol")),
        "resources": RESOURCES,
        "volumeMounts": arr(VOLUME_MOUNT, unique=("mountPath",)),
    },
    required=("name", "image"),  # CRD: containers[].required [name]; image: webhook
)
V1_POD_SPEC = obj(
    {
        "containers": arr(V1_CONTAINER, unique=("name",), min_items=1),
        "volumes": arr(VOLUME, unique=("name",)),
        "nodeSelector": NODE_SELECTOR,
    },
    required=("containers",),  # template.spec.required
    checks=(_mounts_name_volumes,),
)
REPLICA_SPEC = obj(
    {
        "replicas": int32(),
        "restartPolicy": string(enum=RESTART_POLICIES),
        "template": obj({"metadata": TEMPLATE_METADATA, "spec": V1_POD_SPEC}),
    }
)
RUN_POLICY = obj(
    {
        "cleanPodPolicy": string(enum=CLEAN_POD_POLICIES),
        "ttlSecondsAfterFinished": int32(),
        "activeDeadlineSeconds": int64(),
        "backoffLimit": int32(),
        "schedulingPolicy": obj(
            {
                "minAvailable": int32(),
                "queue": string(),
                "minResources": amap(QUANTITY),
                "priorityClass": string(),
                "scheduleTimeoutSeconds": int32(),
            }
        ),
        "suspend": boolean(),
        "managedBy": string(enum=V1_MANAGERS),
    }
)
#: Replica map keys: the webhooks accept Master and Worker only.
_REPLICA_KEYS = string(enum=("Master", "Worker"))


def _v1_job(
    kind: str,
    replicas_field: str,
    spec_extra: dict[str, Schema],
    check: Check,
    keys: Schema = _REPLICA_KEYS,
) -> Schema:
    """A v1 job (PyTorchJob, XGBoostJob, JAXJob, TFJob): apiVersion, kind, metadata, spec."""
    return obj(
        {
            "apiVersion": string(enum=("kubeflow.org/v1",)),
            "kind": string(enum=(kind,)),
            # webhook: the job name is a DNS-1035 label
            "metadata": object_meta(DNS1035_LABEL, 63),
            "spec": obj(
                {
                    replicas_field: amap(REPLICA_SPEC, keys=keys, checks=(check,)),
                    "runPolicy": RUN_POLICY,
                    **spec_extra,
                },
                required=(replicas_field,),  # spec.required
            ),
        },
        required=("apiVersion", "kind", "metadata", "spec"),
    )


PYTORCH_JOB = _v1_job(
    "PyTorchJob",
    "pytorchReplicaSpecs",
    # spec.nprocPerNode: a string; Go docs: auto, cpu, gpu or an integer
    {"nprocPerNode": string(pattern=r"auto|cpu|gpu|[1-9][0-9]*")},
    _v1_replicas("pytorch", master_required=False, worker_min=1),
)
XGBOOST_JOB = _v1_job(
    "XGBoostJob",
    "xgbReplicaSpecs",
    {},
    _v1_replicas("xgboost", master_required=True, worker_min=None),
)
# kubeflow.org_jaxjobs.yaml: spec {jaxReplicaSpecs (required), runPolicy}; the JAX webhook
# (pkg/webhooks/jax) knows the Worker replica type only and wants a container named jax.
JAX_JOB = _v1_job(
    "JAXJob",
    "jaxReplicaSpecs",
    {},
    _v1_replicas("jax", master_required=False, worker_min=1),
    keys=string(enum=("Worker",)),
)
# kubeflow.org_tfjobs.yaml: spec {tfReplicaSpecs (required), runPolicy, successPolicy,
# enableDynamicWorker}; replica types PS, Worker, Chief, Master, Evaluator; container tensorflow.
TF_JOB = _v1_job(
    "TFJob",
    "tfReplicaSpecs",
    {"successPolicy": string(enum=("", "AllWorkers")), "enableDynamicWorker": boolean()},
    _v1_replicas("tensorflow", master_required=False, worker_min=None),
    keys=string(enum=("PS", "Worker", "Chief", "Master", "Evaluator")),
)

# -- trainer.kubeflow.org/v1alpha1: TrainJob (master) -----------------------------------------

#: Env names the Torch and XGBoost plugin webhooks refuse in spec.trainer.env.
TRAINER_RESERVED_ENV = (
    "PET_NNODES",
    "PET_NPROC_PER_NODE",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
    "DMLC_TRACKER_URI",
    "DMLC_TRACKER_PORT",
    "DMLC_TASK_ID",
    "DMLC_NUM_WORKER",
)
#: spec.managedBy CEL: self in [...]
V2_MANAGERS = ("trainer.kubeflow.org/trainjob-controller", "kueue.x-k8s.io/multikueue")

TRAINER = obj(
    {
        "image": string(max_length=500),
        "command": arr(string(max_length=MIB), max_items=128),
        "args": arr(string(max_length=MIB), max_items=128),
        "env": arr(
            env_var(string(min_length=1, not_in=TRAINER_RESERVED_ENV)),
            unique=("name",),
            max_items=128,
        ),
        "numNodes": int32(minimum=0),
        "numProcPerNode": int32(minimum=1),  # CEL: self >= 1
        "resourcesPerNode": RESOURCES,
    }
)
PATCH_CONTAINER = obj(
    {
        "name": string(min_length=1, max_length=253),
        "env": arr(ENV_VAR, unique=("name",), max_items=128),
        # keyed by name here, not by mountPath as in a Pod: one mount per volume
        "volumeMounts": arr(VOLUME_MOUNT, unique=("name",), max_items=128),
    },
    required=("name",),
    checks=(_patch_container_env,),
)
#: ...replicatedJobs[].template.spec.template.spec (PodSpecPatch): the fields we use.
PATCH_POD_SPEC = obj(
    {
        "containers": arr(PATCH_CONTAINER, unique=("name",), max_items=64),
        "initContainers": arr(PATCH_CONTAINER, unique=("name",), max_items=64),
        "volumes": arr(VOLUME, unique=("name",), max_items=128),
        "nodeSelector": NODE_SELECTOR,
        "serviceAccountName": string(max_length=253),
    }
)
REPLICATED_JOB_PATCH = obj(
    {
        "name": string(min_length=1, max_length=253),
        "template": obj(
            {
                "metadata": TEMPLATE_METADATA,
                "spec": obj(
                    {"template": obj({"metadata": TEMPLATE_METADATA, "spec": PATCH_POD_SPEC})}
                ),
            }
        ),
    },
    required=("name",),
)
RUNTIME_PATCH = obj(
    {
        # webhook (jobset plugin): validation.IsDomainPrefixedPath
        "manager": string(min_length=1, max_length=253, pattern=DOMAIN_PREFIXED_PATH),
        "time": string(),  # stamped by the webhook
        "trainingRuntimeSpec": obj(
            {
                "template": obj(
                    {
                        "metadata": TEMPLATE_METADATA,
                        "spec": obj(
                            {
                                "replicatedJobs": arr(
                                    REPLICATED_JOB_PATCH, unique=("name",), max_items=100
                                )
                            }
                        ),
                    }
                )
            }
        ),
    },
    required=("manager",),
)
TRAIN_JOB = obj(
    {
        "apiVersion": string(enum=("trainer.kubeflow.org/v1alpha1",)),
        "kind": string(enum=("TrainJob",)),
        # root CEL: metadata.name matches ^[a-z]([-a-z0-9]*[a-z0-9])?$ and size <= 63
        "metadata": object_meta(DNS1035_LABEL, 63),
        "spec": obj(
            {
                "runtimeRef": obj(
                    {
                        "name": string(min_length=1, max_length=253),
                        # the CRD only caps (and defaults) these; the enums are the values the
                        # controller can resolve
                        "apiGroup": string(enum=("trainer.kubeflow.org",), max_length=253),
                        "kind": string(
                            enum=("ClusterTrainingRuntime", "TrainingRuntime"), max_length=253
                        ),
                    },
                    required=("name",),  # spec.runtimeRef.required
                ),
                "trainer": TRAINER,
                "activeDeadlineSeconds": int64(minimum=1),
                "suspend": boolean(),
                "managedBy": string(enum=V2_MANAGERS, max_length=253),
                "runtimePatches": arr(RUNTIME_PATCH, unique=("manager",), max_items=16),
            },
            required=("runtimeRef",),  # spec.required
        ),
    },
    required=("apiVersion", "kind", "metadata", "spec"),
)

# -- core/v1 ConfigMap ---------------------------------------------------------------------------

_CONFIGMAP_KEYS = string(pattern=CONFIGMAP_KEY, max_length=253)
CONFIG_MAP = obj(
    {
        "apiVersion": string(enum=("v1",)),
        "kind": string(enum=("ConfigMap",)),
        "metadata": object_meta(DNS1123_SUBDOMAIN, 253),
        "data": amap(string(), keys=_CONFIGMAP_KEYS),
        "binaryData": amap(string(byte=True), keys=_CONFIGMAP_KEYS),
        "immutable": boolean(),
    },
    required=("apiVersion", "kind", "metadata"),
    checks=(_configmap_rules,),
)

# -- core/v1 Secret ------------------------------------------------------------------------------

SECRET = obj(
    {
        "apiVersion": string(enum=("v1",)),
        "kind": string(enum=("Secret",)),
        "metadata": object_meta(DNS1123_SUBDOMAIN, 253),
        "type": string(enum=("Opaque",)),
        "data": amap(string(byte=True), keys=_CONFIGMAP_KEYS),  # same key rule as ConfigMaps
        "stringData": amap(string(), keys=_CONFIGMAP_KEYS),
        "immutable": boolean(),
    },
    required=("apiVersion", "kind", "metadata"),
)

SCHEMAS: dict[str, Schema] = {
    "PyTorchJob": PYTORCH_JOB,
    "XGBoostJob": XGBOOST_JOB,
    "JAXJob": JAX_JOB,
    "TFJob": TF_JOB,
    "TrainJob": TRAIN_JOB,
    "ConfigMap": CONFIG_MAP,
    "Secret": SECRET,
}


def schema_for(manifest: dict[str, Any]) -> Schema:
    """The schema of a manifest, by its ``kind``."""
    return SCHEMAS[manifest["kind"]]


# -- validator -----------------------------------------------------------------------------------


def validate(value: Any, schema: Schema, path: str = "") -> list[str]:
    """Every violation of ``schema`` by ``value``, as ``"<path>: <message>"`` strings."""
    errors: list[str] = []
    _walk(value, schema, path, errors)
    return errors


def validate_manifest(manifest: dict[str, Any]) -> list[str]:
    """``validate`` against the schema for the manifest's kind."""
    return validate(manifest, schema_for(manifest))


def _walk(value: Any, schema: Schema, path: str, errors: list[str]) -> None:
    """Check ``value`` against ``schema`` (type, then the schema's cross-field checks)."""
    kind = schema["type"]
    if kind == "any":
        return
    if not _WALKERS[kind](value, schema, path, errors):
        return
    for check in schema.get("checks", ()):
        for suffix, message in check(value):
            _error(errors, path + suffix if path else suffix.removeprefix("."), message)


def _walk_object(value: Any, schema: Schema, path: str, errors: list[str]) -> bool:
    """A fixed-field object: required fields present, no unknown fields."""
    if not _is_type(value, dict, "object", path, errors):
        return False
    properties = schema["properties"]
    for name in schema["required"]:
        if name not in value:
            _error(errors, _child(path, name), "required")
    for name, item in value.items():
        if name not in properties:
            _error(errors, _child(path, name), "unknown field")
        else:
            _walk(item, properties[name], _child(path, name), errors)
    return True


def _walk_map(value: Any, schema: Schema, path: str, errors: list[str]) -> bool:
    """A map: every key checked by the key schema, every value by the value schema."""
    if not _is_type(value, dict, "object", path, errors):
        return False
    for key, item in value.items():
        child = _child(path, key)
        if schema["keys"] is not None:
            for message in _string_problems(key, schema["keys"]):
                _error(errors, child, f"invalid key: {message}")
        _walk(item, schema["values"], child, errors)
    return True


def _walk_array(value: Any, schema: Schema, path: str, errors: list[str]) -> bool:
    """A list: item count, every item, and uniqueness of the list-map keys."""
    if not _is_type(value, list, "array", path, errors):
        return False
    if len(value) < schema["min_items"]:
        _error(errors, path, f"must have at least {schema['min_items']} items")
    if schema["max_items"] is not None and len(value) > schema["max_items"]:
        _error(errors, path, f"must have at most {schema['max_items']} items, has {len(value)}")
    seen: dict[tuple[Any, ...], int] = {}
    properties = schema["items"].get("properties", {})
    for index, item in enumerate(value):
        _walk(item, schema["items"], f"{path}[{index}]", errors)
        if schema["unique"] and isinstance(item, dict):
            key = tuple(
                json.dumps(item.get(name, (properties.get(name) or {}).get("default")))
                for name in schema["unique"]
            )
            if key in seen:
                names = ", ".join(schema["unique"])
                _error(errors, f"{path}[{index}]", f"duplicate ({names}) of item {seen[key]}")
            seen.setdefault(key, index)
    return True


def _walk_string(value: Any, schema: Schema, path: str, errors: list[str]) -> bool:
    """A string and its enum, length, pattern and format rules."""
    if not _is_type(value, str, "string", path, errors):
        return False
    for message in _string_problems(value, schema):
        _error(errors, path, message)
    return True


def _string_problems(value: Any, schema: Schema) -> list[str]:
    """What is wrong with string ``value`` under a string schema (no path)."""
    if not isinstance(value, str):
        return [f"expected string, got {type(value).__name__}"]
    problems = []
    size = len(value.encode())
    if schema["enum"] is not None and value not in schema["enum"]:
        problems.append(f"{value!r} is not one of {', '.join(schema['enum'])}")
    if value in schema["not_in"]:
        problems.append(f"{value!r} is reserved")
    if size < schema["min_length"]:
        problems.append(f"must be at least {schema['min_length']} characters")
    if schema["max_length"] is not None and size > schema["max_length"]:
        problems.append(f"must be at most {schema['max_length']} characters, is {size}")
    if schema["pattern"] is not None and not schema["pattern"].fullmatch(value):
        problems.append(f"{_short(value)} does not match {schema['pattern'].pattern}")
    if schema["byte"]:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            problems.append("is not base64")
    return problems


def _walk_integer(value: Any, schema: Schema, path: str, errors: list[str]) -> bool:
    """An integer within bounds; a bool is not one (unlike in Python)."""
    if isinstance(value, bool) or not isinstance(value, int):
        _error(errors, path, f"expected integer, got {type(value).__name__}")
        return False
    if schema["minimum"] is not None and value < schema["minimum"]:
        _error(errors, path, f"must be >= {schema['minimum']}, is {value}")
    if schema["maximum"] is not None and value > schema["maximum"]:
        _error(errors, path, f"must be <= {schema['maximum']}, is {value}")
    return True


def _walk_boolean(value: Any, schema: Schema, path: str, errors: list[str]) -> bool:
    """A JSON boolean."""
    return _is_type(value, bool, "boolean", path, errors)


_QUANTITY = re.compile(QUANTITY_PATTERN)


def _walk_quantity(value: Any, schema: Schema, path: str, errors: list[str]) -> bool:
    """An int-or-string resource quantity (the CRDs' limits/requests values)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    if not isinstance(value, str):
        _error(errors, path, f"expected integer or string, got {type(value).__name__}")
        return False
    if not _QUANTITY.fullmatch(value):
        _error(errors, path, f"{_short(value)} is not a quantity")
    return True


_WALKERS: dict[str, Callable[[Any, Schema, str, list[str]], bool]] = {
    "object": _walk_object,
    "map": _walk_map,
    "array": _walk_array,
    "string": _walk_string,
    "integer": _walk_integer,
    "boolean": _walk_boolean,
    "quantity": _walk_quantity,
}


def _is_type(value: Any, kind: type, name: str, path: str, errors: list[str]) -> bool:
    """True if ``value`` is a ``kind``; otherwise records a type error."""
    if isinstance(value, kind):
        return True
    _error(errors, path, f"expected {name}, got {type(value).__name__}")
    return False


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _key_suffix(key: str) -> str:
    """The path suffix for a map key: ``.key`` or ``["key.with/dots"]``."""
    return f".{key}" if _PLAIN_KEY.fullmatch(key) else f"[{json.dumps(key)}]"


def _child(path: str, key: Any) -> str:
    """The path of ``key`` under ``path``."""
    suffix = _key_suffix(str(key))
    return suffix[1:] if not path and suffix.startswith(".") else path + suffix


def _error(errors: list[str], path: str, message: str) -> None:
    """Record ``message`` at ``path`` (``<root>`` for the object itself)."""
    errors.append(f"{path or '<root>'}: {message}")


def _short(value: str) -> str:
    """``value`` quoted, shortened for messages."""
    return repr(value if len(value) <= 40 else value[:37] + "...")
