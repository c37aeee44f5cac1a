"""The Kubernetes backend: the same cell as a Kubeflow PyTorchJob, XGBoostJob or TrainJob.

Submission creates the payload ConfigMap (and the ``--secret-env`` Secret), then
the job, then makes the job their owner; if the job cannot be created they are
removed, so a failure leaves nothing half-created. Status and logs come from watches
(:mod:`.watch`), and the store keeps each job's history after the cluster
object is gone.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ...events import (
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    STOP_PHASES,
    TERMINAL_PHASES,
    Event,
    output_events,
    phase_event,
)
from ...runtime import records
from ...runtime.payload import Payload
from ...settings import TrainingSettings
from ...spec import JobSpec, SpecError, parse_volume
from ...store import JobNotFound, JobRecord, JobStore, new_job_id, pending_record
from .cluster import Cluster, ClusterError, load_api_client
from .manifests import (
    JobObjects,
    artifacts_location,
    check_checkpoint_mount,
    checkpoint_location,
    configmap_name,
    owner_reference,
    render,
    runtime_files,
    secret_name,
)
from .pods import describe_failure, pod_view
from .targets import Target, job_phase, target_of
from .watch import JobWatch

_DNS1035 = "abcdefghijklmnopqrstuvwxyz"


class KubernetesBackend:
    """Runs jobs through the Kubeflow Training Operator (v1) or Trainer (v2)."""

    name = "kubernetes"

    def __init__(self, store: JobStore, settings: TrainingSettings) -> None:
        self.store = store
        self.settings = settings
        self._clusters: dict[str | None, Cluster] = {}

    # -- connection and resolution ----------------------------------------------------------

    def cluster(self, context: str | None = None) -> Cluster:
        """The (cached) connection for kubeconfig ``context``."""
        context = context or self.settings.context
        if context not in self._clusters:
            api_client, namespace = load_api_client(self.settings.kubeconfig, context)
            self._clusters[context] = Cluster(
                api_client, self.settings.namespace or namespace, self.settings.request_timeout
            )
        return self._clusters[context]

    def check(self, spec: JobSpec) -> None:
        """Refuse what no Kubeflow job can express, before contacting the cluster."""
        name = spec.name
        if name is not None and name[0] not in _DNS1035:
            raise SpecError(
                "--name",
                f"{name!r} must start with a letter on Kubernetes "
                "(Kubeflow job names are DNS-1035 labels)",
            )
        if spec.kubernetes.api == "v2" and spec.min_workers is not None:
            raise SpecError(
                "--workers",
                f"{spec.min_workers}:{spec.workers} (elastic) with --api v2: upstream TrainJob "
                "elastic training is not implemented yet (kubeflow/trainer); use --api v1 "
                "(a PyTorchJob with an elasticPolicy) or a fixed --workers N",
            )
        check_checkpoint_mount(spec)
        if spec.kubernetes.api == "v2" and spec.max_restarts:
            raise SpecError(
                "--max-restarts",
                "TrainJob (--api v2) has no restart limit of its "
                "own; set it in the runtime's failure policy, or use --api v1",
            )
        refusal = spec.framework_descriptor.check(
            nproc_per_worker=spec.nproc_per_worker, gpus=spec.gpus, api=spec.kubernetes.api
        )
        if refusal is not None:
            raise SpecError(*refusal)

    def resolve(self, spec: JobSpec, cluster: Cluster | None) -> JobSpec:
        """The spec with api, namespace, image and runtime filled in from config and cluster."""
        api = spec.kubernetes.api
        if api == "auto" and spec.framework_descriptor.v2_runtime is None:
            api = "v1"  # no TrainJob runtime for this framework: its v1 kind is the only way
        if api == "auto" and spec.min_workers is not None:
            api = "v1"  # elastic: a PyTorchJob's elasticPolicy (TrainJob has none yet)
            if cluster is not None:
                try:
                    cluster.choose_api(api)
                except ClusterError as err:
                    raise ClusterError(
                        f"--workers {spec.min_workers}:{spec.workers} (elastic) runs as a "
                        f"PyTorchJob with an elasticPolicy (upstream TrainJob elastic training "
                        f"is not implemented yet): {err}"
                    ) from None
        if api == "auto":
            api = cluster.choose_api("auto") if cluster is not None else "v1"
        elif cluster is not None:
            cluster.choose_api(api)
        image = spec.kubernetes.image or self.settings.image_for(spec.framework)
        runtime = spec.kubernetes.runtime if api == "v2" else None
        if api == "v2" and runtime is None:
            runtime = self.settings.runtime_for(spec.framework)
        namespace = (
            spec.kubernetes.namespace
            or (cluster.default_namespace if cluster is not None else self.settings.namespace)
            or "default"
        )
        resolved = spec.replace(api=api, image=image, runtime=runtime, namespace=namespace)
        self.check(resolved)
        self.check_allowed(resolved)
        return resolved

    def check_allowed(self, spec: JobSpec) -> None:
        """The installation's allow-lists, applied to the resolved namespace and image."""
        namespaces = self.settings.allowed_namespaces
        if namespaces and spec.kubernetes.namespace not in namespaces:
            raise SpecError(
                "--namespace",
                f"{spec.kubernetes.namespace!r} is not allowed here; use one of "
                f"{', '.join(namespaces)} (c.TrainingApp.allowed_namespaces)",
            )
        prefixes = self.settings.allowed_images
        if prefixes and not (spec.kubernetes.image or "").startswith(tuple(prefixes)):
            raise SpecError(
                "--image",
                f"{spec.kubernetes.image!r} is not allowed here; images must start "
                f"with {', '.join(prefixes)} (c.TrainingApp.allowed_images)",
            )

    def objects(
        self,
        spec: JobSpec,
        payload: Payload,
        job_id: str,
        notebook: str | None,
        secrets: Mapping[str, str] | None = None,
    ) -> JobObjects:
        """Everything to create for a resolved ``spec``; the payload in a ConfigMap or volume."""
        data = payload.to_bytes()
        runtime_size = sum(len(text) for text in runtime_files().values())
        payload_path = None
        if len(data) + runtime_size > self.settings.configmap_max_bytes:
            payload_path = self._payload_on_volume(spec, data, job_id)
        target = target_of(spec)
        extra = {"payload_path": payload_path} if payload_path else {}
        return JobObjects(
            job_id=job_id,
            name=spec.name or f"job-{job_id}",
            namespace=spec.kubernetes.namespace or "default",
            spec=spec,
            target=target,
            image=spec.kubernetes.image or "",
            payload=None if payload_path else data,
            runtime=spec.kubernetes.runtime,
            notebook=notebook,
            gpu_resource_name=self.settings.gpu_resource_name,
            ttl_seconds_after_finished=self.settings.ttl_seconds_after_finished,
            clean_pod_policy=self.settings.clean_pod_policy,
            result_limit=self.settings.max_result_bytes,
            secrets=secrets,
            **extra,
        )

    def _resumed_under_new_name(self, job: JobObjects) -> JobObjects:
        """A resumed job named after its parent (``%train_resume``), whose failed job object
        still exists (until its TTL), runs as ``<name>-<its id>``: Kubeflow job names are
        unique in a namespace. Any other name clash stands (the caller refuses it)."""
        parent_id = job.spec.parent
        if parent_id is None:
            return job
        try:
            parent = self.store.get(parent_id)
        except JobNotFound:  # not in this store: no name to derive from
            return job
        if job.name != parent.name:
            return job
        base = job.name.removesuffix(f"-{parent_id}")  # a chain: mnist-<id2> -> mnist-<id3>
        if base == "job":
            name = f"job-{job.job_id}"
        else:
            name = f"{base[: 62 - len(job.job_id)].rstrip('-')}-{job.job_id}"
        spec = job.spec.replace(name=name)
        return dataclasses.replace(job, name=name, spec=spec)

    def _payload_on_volume(self, spec: JobSpec, data: bytes, job_id: str) -> str:
        size = f"{len(data) / 1e6:.1f} MB"
        limit = f"{self.settings.configmap_max_bytes / 1e6:.1f} MB"
        if not spec.kubernetes.volumes:
            raise ClusterError(
                f"the cell's payload is {size}, more than a ConfigMap can carry ({limit}): ship "
                "it through a volume with --volume CLAIM:/PATH (a PersistentVolumeClaim this "
                "notebook also mounts at PATH), or load the large data inside the cell"
            )
        claim, mount = parse_volume(spec.kubernetes.volumes[0])
        if not Path(mount).is_dir():
            raise ClusterError(
                f"--volume {claim}:{mount}: {mount} is not mounted in this notebook server, so "
                f"the {size} payload cannot be written there; mount the claim here at the same path"
            )
        directory = Path(mount) / ".jupyter-training" / job_id
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / "payload.bin"
        path.write_bytes(data)
        path.chmod(0o600)
        return str(path)

    # -- submission -------------------------------------------------------------------------

    def submit(
        self,
        spec: JobSpec,
        payload: Payload,
        *,
        cell: str,
        notebook: str | None = None,
        workdir: str | None = None,
        job_id: str | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> JobRecord:
        """Create the ConfigMap (and Secret) and the job; record it; roll back on failure."""
        self.check(spec)
        job_id = job_id or new_job_id()
        cluster = self.cluster(spec.kubernetes.context)
        spec = self.resolve(spec, cluster)
        if spec.kubernetes.api == "v2":
            cluster.check_runtime(spec.kubernetes.runtime or "")
        job = self.objects(spec, payload, job_id, notebook, secrets or {})
        if cluster.get_job(job.target, job.namespace, job.name) is not None:
            job = self._resumed_under_new_name(job)
            spec = job.spec
        if cluster.get_job(job.target, job.namespace, job.name) is not None:
            raise ClusterError(
                f"--name: a {job.target.kind} named {job.name!r} already exists in namespace "
                f"{job.namespace}; choose another --name or delete the old job"
            )
        *owned, job_body = render(job)  # the ConfigMap (and Secret), then the job
        made: list[dict[str, Any]] = []
        try:
            for body in owned:
                cluster.create_object(body)
                made.append(body)
            created = cluster.create_job(job.target, job_body)
        except ClusterError:
            for body in made:
                cluster.delete_object(body["kind"], job.namespace, body["metadata"]["name"])
            raise
        if created and (created.get("metadata") or {}).get("uid"):
            owner = owner_reference(created)
            for body in owned:
                cluster.set_owner(body["kind"], job.namespace, body["metadata"]["name"], owner)
        location = artifacts_location(job)
        context = {
            "cluster": spec.kubernetes.context or self.settings.context or "default",
            "namespace": job.namespace,
        }
        checkpoints = checkpoint_location(job)
        if checkpoints is not None:
            context["checkpoint_dir"] = f"pvc://{checkpoints[0]}{checkpoints[1]}"
        record = pending_record(
            job_id,
            spec,
            cell,
            notebook=notebook,
            workdir=workdir,
            artifacts=f"pvc://{location[0]}{location[1]}" if location else None,
            context=context,
        )
        record.name = job.name
        record.message = f"{job.target.kind} {job.namespace}/{job.name} created"
        return self.store.add(record)

    def dry_run(self, spec: JobSpec, payload: Payload, *, notebook: str | None = None) -> str:
        """The YAML of every object the job would create; nothing is created.

        Like ``kubectl --dry-run=client``: the cluster is asked only which API
        it serves (``--api auto``), and v1 is assumed when it cannot be reached.
        """
        self.check(spec)
        note = ""
        try:
            cluster: Cluster | None = self.cluster(spec.kubernetes.context)
            resolved = self.resolve(spec, cluster)
        except ClusterError as err:
            if spec.kubernetes.api == "auto":
                note = f"# cluster not consulted ({err}); assuming --api v1\n"
            resolved = self.resolve(spec, None)
        job = self.objects(resolved, payload, new_job_id(), notebook)  # secrets: placeholders
        return note + yaml.safe_dump_all(render(job), sort_keys=False)

    # -- status, events, logs, cancel ----------------------------------------------------------

    def _where(self, record: JobRecord) -> tuple[Cluster, Target, str]:
        spec = record.spec
        cluster = self.cluster(spec.kubernetes.context)
        return cluster, target_of(spec), spec.kubernetes.namespace

    def get(self, job_id: str) -> JobRecord:
        """The job's record, refreshed from the cluster while it is unfinished."""
        record = self.store.get(job_id)
        if record.is_terminal:
            return record
        try:
            cluster, target, namespace = self._where(record)
            job = cluster.get_job(target, namespace, record.name)
            if job is None:
                self._record_phase(
                    record,
                    FAILED,
                    "the job no longer exists in the cluster",
                    {"reason": "the job no longer exists in the cluster"},
                )
                return self.store.get(record.id)
            phase, message = job_phase(target, job)
            pods = cluster.list_pods(target, namespace, record.name)
            if phase is None:
                started = any(pod_view(target, p).started for p in pods)
                phase = RUNNING if started else PENDING
            failure = None
            if phase == FAILED:
                failure = self._failure_from_cluster(cluster, target, namespace, pods, message)
                message = failure["reason"]
            self._record_phase(record, phase, message, failure)
        except ClusterError:
            return record  # unreachable now: the last known state stands
        return self.store.get(record.id)

    def _failure_from_cluster(
        self,
        cluster: Cluster,
        target: Target,
        namespace: str,
        pods: list[dict[str, Any]],
        message: str,
    ) -> dict[str, Any]:
        views = [pod_view(target, p) for p in pods]
        errors: dict[int, dict[str, Any]] = {}
        tails: dict[int, list[str]] = {}
        for view in views:
            if view.rank is None or view.exit_code in (None, 0):
                continue
            lines = []
            for line in cluster.read_log_tail(namespace, view.name, view.container).split("\n"):
                text, record = records.split(line)
                if record is not None and record.get("type") == "error":
                    errors[view.rank] = record
                if text:
                    lines.append(text)
            tails[view.rank] = lines[-20:]
        return describe_failure(views, errors, tails, message)

    def _record_phase(
        self, record: JobRecord, phase: str, message: str, failure: dict[str, Any] | None = None
    ) -> None:
        fields: dict[str, Any] = {"message": message}
        if phase == RUNNING and record.started is None:
            fields["started"] = time.time()
        if phase in TERMINAL_PHASES:
            fields["finished"] = time.time()
            fields["started"] = record.started or fields["finished"]
        if failure is not None:
            fields["failure"] = failure
        if phase != record.phase or message != record.message:
            self.store.set_phase(record.id, phase, **fields)

    def describe(self) -> dict[str, Any]:
        """The default namespace, the Kubeflow APIs served, the namespaces and allocatable GPUs.

        ``available`` is False, with the ``error``, when the cluster cannot be reached.
        """
        info: dict[str, Any] = {"available": False, "apis": [], "namespace": None}
        try:
            cluster = self.cluster()
            info.update(
                available=True,
                namespace=cluster.default_namespace,
                apis=sorted(cluster.available_apis()),
                namespaces=cluster.namespaces(),
                gpus=cluster.allocatable(self.settings.gpu_resource_name),
            )
        except Exception as err:  # report why, never fail the form
            info["error"] = str(err)
        return info

    def list(self, *, limit: int = 50) -> list[JobRecord]:
        return self.store.list(limit=limit, backend=self.name)

    def events(
        self, job_id: str, *, follow: bool = True, stop: threading.Event | None = None
    ) -> Iterator[Event]:
        """Live events through watches; for a finished job, the logs its pods still hold."""
        record = self.store.get(job_id)
        if record.is_terminal or not follow:
            yield from self._snapshot(record)
            return
        cluster, target, namespace = self._where(record)
        watch = JobWatch(cluster, target, namespace, record.name, record.id)
        watch.stopped_as = lambda: self._stopped_as(record.id)
        if stop is not None:
            watch.outer_stop = stop
        watch.start()
        try:
            for event in watch:
                if event.kind == "phase":
                    current = self.store.get(record.id)
                    self._record_phase(
                        current,
                        event.data["phase"],
                        event.data.get("message", ""),
                        event.data.get("failure"),
                    )
                yield event
        finally:
            watch.stop()

    def _stopped_as(self, job_id: str) -> tuple[str, str] | None:
        """How a stop ended the job (phase, message), if one did."""
        current = self.store.get(job_id)
        return (current.phase, current.message) if current.phase in STOP_PHASES else None

    def _snapshot(self, record: JobRecord) -> Iterator[Event]:
        try:
            cluster, target, namespace = self._where(record)
            pods = sorted(
                cluster.list_pods(target, namespace, record.name),
                key=lambda p: target.rank_of(p) or 0,
            )
            for pod in pods:
                view = pod_view(target, pod)
                if view.rank is None or not view.started:
                    continue
                text = cluster.read_log_tail(namespace, view.name, view.container, lines=100_000)
                for line in text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"):
                    if line:
                        yield from output_events(record.id, view.rank, line)
        except ClusterError:
            pass
        if record.is_terminal:
            yield phase_event(record.id, record.phase, record.message)

    def cancel(self, job_id: str, *, phase: str = CANCELLED, message: str = "") -> JobRecord:
        """Delete the job (foreground propagation) and its ConfigMap; history stays. The
        record ends in ``phase`` (Cancelled, or Pruned for a sweep's pruner)."""
        if phase not in STOP_PHASES:
            raise ValueError(f"a stop ends a job as {' or '.join(STOP_PHASES)}, not {phase!r}")
        record = self.store.get(job_id)
        if record.is_terminal:
            return record
        cluster, target, namespace = self._where(record)
        cluster.delete_job(target, namespace, record.name)
        cluster.delete_object("ConfigMap", namespace, configmap_name(record.name))
        if "" in record.spec.secret_env.values():  # our Secret, not the user's
            cluster.delete_object("Secret", namespace, secret_name(record.name))
        self.store.set_phase(
            record.id, phase, message=message or STOP_PHASES[phase], finished=time.time()
        )
        return self.store.get(record.id)
