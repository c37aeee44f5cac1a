"""The Kubeflow job kinds we create, and how their pods map to ranks and phases.

Pure data and functions over plain dicts (no Kubernetes client import), shared
by manifest rendering, the watcher and the tests.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ... import frameworks
from ...events import FAILED, PENDING, RESTARTING, RUNNING, SUCCEEDED
from ...spec import JobSpec

V1_GROUP, V1_VERSION = "kubeflow.org", "v1"
V2_GROUP, V2_VERSION = "trainer.kubeflow.org", "v1alpha1"
MANAGED_BY = "jupyter-training"
LABEL_JOB_ID = "jupyter-training.io/job-id"
LABEL_NOTEBOOK = "jupyter-training.io/notebook"
LABEL_SWEEP = "jupyter-training.io/sweep"
ANNOTATION_NOTEBOOK = "jupyter-training.io/notebook-path"


@dataclasses.dataclass(frozen=True)
class Target:
    """One Kubeflow job kind: where it lives in the API and what its pods look like."""

    api: str
    kind: str
    group: str
    version: str
    plural: str
    container: str
    port: int
    port_name: str | None
    #: v1: the replica type holding rank 0 (then Worker i is rank i+1), or None when
    #: every replica is a Worker and Worker i is rank i. v2 jobs have none.
    master: str | None = None
    #: v1: the key of the replica specs in the job's spec (``pytorchReplicaSpecs``, ...).
    replica_key: str | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def pod_selector(self, name: str) -> str:
        """Label selector of this job's worker pods."""
        if self.api == "v1":
            return f"training.kubeflow.org/job-name={name}"
        return f"jobset.sigs.k8s.io/jobset-name={name},jobset.sigs.k8s.io/replicatedjob-name=node"

    def owns_pod(self, name: str, pod: dict[str, Any]) -> bool:
        """True if ``pod`` is a worker of job ``name`` (client-side selector check)."""
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if self.api == "v1":
            return labels.get("training.kubeflow.org/job-name") == name
        return (
            labels.get("jobset.sigs.k8s.io/jobset-name") == name
            and labels.get("jobset.sigs.k8s.io/replicatedjob-name") == "node"
        )

    def rank_of(self, pod: dict[str, Any]) -> int | None:
        """The rank of a worker pod: v1 Master is 0 and Worker i is i+1; v2 the completion index."""
        metadata = pod.get("metadata") or {}
        labels = metadata.get("labels") or {}
        if self.api == "v1":
            kind = labels.get("training.kubeflow.org/replica-type", "").lower()
            index = labels.get("training.kubeflow.org/replica-index")
            if index is None or not index.isdigit():
                return None
            if self.master is None:
                return int(index)
            return int(index) + (0 if kind == self.master.lower() else 1)
        index = labels.get("batch.kubernetes.io/job-completion-index") or (
            metadata.get("annotations") or {}
        ).get("batch.kubernetes.io/job-completion-index")
        return int(index) if index is not None and index.isdigit() else None


TRAIN_JOB = Target("v2", "TrainJob", V2_GROUP, V2_VERSION, "trainjobs", "node", 29500, None)


def target_for(framework: str, api: str, *, elastic: bool = False) -> Target:
    """The job kind for ``framework`` on Kubeflow ``api`` (v1: the framework's own kind).

    ``elastic`` (``--workers MIN:MAX``, a PyTorchJob with an ``elasticPolicy``): Worker
    replicas only, as the operator expects; the rendezvous, not the pod, decides each rank.
    """
    if api == "v2":
        return TRAIN_JOB
    kind = frameworks.get(framework).kubeflow
    if kind is None:
        raise ValueError(f"--framework {framework} has no Kubeflow v1 job kind; use --api v2")
    return Target(
        "v1",
        kind.kind,
        V1_GROUP,
        V1_VERSION,
        kind.plural,
        kind.container,
        kind.port,
        kind.port_name,
        master=None if elastic else kind.master,
        replica_key=kind.replica_key,
    )


def target_of(spec: JobSpec) -> Target:
    """The job kind a resolved ``spec`` runs as."""
    return target_for(spec.framework, spec.kubernetes.api, elastic=spec.min_workers is not None)


def job_phase(target: Target, job: dict[str, Any]) -> tuple[str | None, str]:
    """(phase, message) from the job's status conditions; phase None if undecided.

    v1: the latest true condition of Created/Running/Restarting/Succeeded/Failed.
    v2: Complete or Failed; a TrainJob has no Running condition, so it is
    decided from its pods (None here).
    """
    conditions = [
        c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"
    ]
    by_type = {c.get("type"): c for c in conditions}
    for kind, phase in (("Failed", FAILED), ("Succeeded", SUCCEEDED), ("Complete", SUCCEEDED)):
        if kind in by_type:
            return phase, by_type[kind].get("message") or by_type[kind].get("reason") or ""
    if target.api == "v2":
        if "Suspended" in by_type:
            return PENDING, by_type["Suspended"].get("message") or "suspended"
        return None, ""
    latest = conditions[-1] if conditions else None
    mapping = {
        "Created": PENDING,
        "Suspended": PENDING,
        "Running": RUNNING,
        "Restarting": RESTARTING,
    }
    if latest is None or latest.get("type") not in mapping:
        return PENDING, ""
    return mapping[latest["type"]], latest.get("message") or ""
