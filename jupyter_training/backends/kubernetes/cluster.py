"""Connection to the Kubernetes API: config loading, discovery, clear errors.

The only place (with its siblings in this package) that imports the official
``kubernetes`` client. Every API failure becomes a :class:`ClusterError` whose
message says what was being done, what the server said and what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from ..base import SubmitError
from .targets import V1_GROUP, V1_VERSION, V2_GROUP, V2_VERSION, Target

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DOCS = "docs/kubernetes.md"
#: The objects a job owns besides itself, and their CoreV1Api method suffixes.
_CORE_KINDS = {"ConfigMap": "config_map", "Secret": "secret"}
INSTALL_V1 = (
    "install the Kubeflow Training Operator v1: kubectl apply --server-side -k "
    '"github.com/kubeflow/trainer.git/manifests/overlays/standalone?ref=v1.9.2"'
)
INSTALL_V2 = (
    "install Kubeflow Trainer v2: kubectl apply --server-side -k "
    '"github.com/kubeflow/trainer.git/manifests/overlays/manager?ref=master" and its runtimes '
    '(-k "github.com/kubeflow/trainer.git/manifests/overlays/runtimes?ref=master")'
)


class ClusterError(SubmitError):
    """The cluster refused, was unreachable, or lacks what the job needs.

    ``status`` is the HTTP status of an API error (None for other failures).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def load_api_client(
    kubeconfig: str | None, context: str | None, *, request_retries: int = 1
) -> tuple[client.ApiClient, str]:
    """An API client and the default namespace, from kubeconfig or the pod's service account.

    An explicit kubeconfig or context wins; otherwise a pod's service account
    is used when running in a cluster, else ``$KUBECONFIG`` / ``~/.kube/config``.
    """
    configuration = client.Configuration()
    # Read $KUBECONFIG now: the client only reads it once, when first imported.
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
    in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ and not (kubeconfig or context)
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=configuration)
            namespace = _service_account_namespace()
        else:
            config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
            namespace = _context_namespace(kubeconfig, context)
    except (ConfigException, OSError, TypeError, ValueError) as err:
        where = "the pod's service account" if in_cluster else (kubeconfig or "your kubeconfig")
        raise ClusterError(
            f"no usable Kubernetes configuration in {where}"
            + (f" for context {context!r}" if context else "")
            + f": {err}. Set KUBECONFIG or c.TrainingApp.kubeconfig, or pick a context with "
            "--context (see `kubectl config get-contexts`)"
        ) from None
    configuration.retries = request_retries
    return client.ApiClient(configuration), namespace


def _service_account_namespace() -> str:
    try:
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or "default"
    except OSError:
        return "default"


def _context_namespace(kubeconfig: str | None, context: str | None) -> str:
    contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    return ((chosen or {}).get("context") or {}).get("namespace") or "default"


@contextlib.contextmanager
def translate_errors(action: str, host: str = "") -> Iterator[None]:
    """Turn API and connection failures during ``action`` into one clear ClusterError."""
    try:
        yield
    except ApiException as err:
        raise ClusterError(describe_api_error(err, action), err.status) from None
    except (urllib3.exceptions.HTTPError, OSError) as err:
        raise ClusterError(
            f"cannot reach the Kubernetes API{f' at {host}' if host else ''} while {action}: "
            f"{_short(err)}. Check the cluster is up and your kubeconfig or --context"
        ) from None


def describe_api_error(err: ApiException, action: str) -> str:
    """A one-line account of an API error with what to do about it."""
    message = server_message(err)
    if err.status == 401:
        return (
            f"Kubernetes rejected our credentials (401 Unauthorized) while {action}: "
            f"{message}. Refresh your kubeconfig credentials or service-account token"
        )
    if err.status == 403:
        return (
            f"Kubernetes forbids {action} (403 Forbidden): {message}. Give the notebook's "
            f"service account the Role in {DOCS} (section RBAC)"
        )
    return f"Kubernetes API error {err.status} ({err.reason}) while {action}: {message}"


def server_message(err: ApiException) -> str:
    """The ``message`` of the server's Status body, or the raw reason."""
    try:
        return json.loads(err.body or "{}").get("message") or str(err.reason)
    except (ValueError, AttributeError):
        return str(err.reason)


def _short(err: BaseException) -> str:
    text = str(err)
    return text if len(text) < 300 else text[:300] + "..."


class Cluster:
    """One connection to a cluster, with the calls the backend needs."""

    def __init__(self, api_client: client.ApiClient, namespace: str, timeout: float) -> None:
        self.api_client = api_client
        self.default_namespace = namespace
        self.timeout = timeout
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    @property
    def host(self) -> str:
        return self.api_client.configuration.host

    def errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        return translate_errors(action, self.host)

    def available_apis(self) -> set[str]:
        """Which Kubeflow APIs the cluster serves: {"v1", "v2"} or a subset."""
        found = set()
        for api, group, version, plural in (
            ("v1", V1_GROUP, V1_VERSION, "pytorchjobs"),
            ("v2", V2_GROUP, V2_VERSION, "trainjobs"),
        ):
            try:
                with self.errors(f"discovering {group}/{version}"):
                    resources = self.custom.get_api_resources(
                        group, version, _request_timeout=self.timeout
                    )
            except ClusterError as err:
                if err.status == 404:
                    continue
                raise
            names = {r.name for r in (resources.resources if resources else [])}
            if plural in names:
                found.add(api)
        return found

    def choose_api(self, requested: str) -> str:
        """Resolve ``--api auto|v1|v2`` against the cluster's discovery."""
        available = self.available_apis()
        if requested == "auto":
            if "v2" in available:
                return "v2"
            if "v1" in available:
                return "v1"
            raise ClusterError(
                f"the cluster at {self.host} serves neither PyTorchJob/XGBoostJob "
                f"(kubeflow.org/v1) nor TrainJob (trainer.kubeflow.org/v1alpha1): "
                f"{INSTALL_V1}; or {INSTALL_V2}"
            )
        if requested not in available:
            if requested == "v1":
                missing, install = "PyTorchJob/XGBoostJob CRDs (kubeflow.org/v1)", INSTALL_V1
            else:
                missing, install = "TrainJob CRD (trainer.kubeflow.org/v1alpha1)", INSTALL_V2
            raise ClusterError(f"--api {requested}: the cluster has no {missing}; {install}")
        return requested

    def check_runtime(self, name: str) -> None:
        """Fail clearly when the ClusterTrainingRuntime ``name`` does not exist."""
        try:
            with self.errors(f"reading ClusterTrainingRuntime {name}"):
                self.custom.get_cluster_custom_object(
                    V2_GROUP,
                    V2_VERSION,
                    "clustertrainingruntimes",
                    name,
                    _request_timeout=self.timeout,
                )
        except ClusterError as err:
            if err.status != 404:
                raise
            known = self.runtime_names()
            raise ClusterError(
                f"--runtime: the cluster has no ClusterTrainingRuntime {name!r}"
                + (f"; it has {', '.join(known)}" if known else "; install the default runtimes")
            ) from None

    def runtime_names(self) -> list[str]:
        with self.errors("listing ClusterTrainingRuntimes"):
            listing = self.custom.list_cluster_custom_object(
                V2_GROUP, V2_VERSION, "clustertrainingruntimes", _request_timeout=self.timeout
            )
        return sorted(item["metadata"]["name"] for item in listing.get("items", []))

    def namespaces(self) -> list[str] | None:
        """Namespaces this user may list (None when listing them is not allowed)."""
        try:
            listing = self.core.list_namespace(_request_timeout=self.timeout)
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return None
        return sorted(ns.metadata.name for ns in listing.items)

    def allocatable(self, resource: str) -> int | None:
        """Total allocatable ``resource`` (e.g. nvidia.com/gpu) over the nodes (None if hidden)."""
        try:
            listing = self.core.list_node(_request_timeout=self.timeout)
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return None
        total = 0
        for node in listing.items:
            value = ((node.status and node.status.allocatable) or {}).get(resource, "0")
            total += int(value) if str(value).isdigit() else 0
        return total

    def create_object(self, body: dict[str, Any]) -> None:
        """Create a job's ConfigMap or Secret (a Secret's values are never logged or returned)."""
        kind, ns, name = body["kind"], body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            with self.errors(f"creating {kind} {name} in namespace {ns}"):
                self._core_call("create", kind)(ns, body, _request_timeout=self.timeout)
        except ClusterError as err:
            if err.status == 409:
                raise ClusterError(
                    f"--name: {kind} {name} already exists in namespace {ns} (left by an "
                    "earlier job of that name?); choose another --name or delete it",
                    409,
                ) from None
            raise

    def set_owner(self, kind: str, ns: str, name: str, owner: dict[str, Any]) -> None:
        """Make ``owner`` (the created job) the owner of a ConfigMap or Secret."""
        patch = {"metadata": {"ownerReferences": [owner]}}
        with self.errors(f"setting the owner of {kind} {name}"):
            self._core_call("patch", kind)(name, ns, patch, _request_timeout=self.timeout)

    def delete_object(self, kind: str, ns: str, name: str) -> None:
        """Delete a ConfigMap or Secret; one already gone (owner GC) is fine."""
        with contextlib.suppress(ApiException):
            self._core_call("delete", kind)(name, ns, _request_timeout=self.timeout)

    def _core_call(self, verb: str, kind: str) -> Any:
        return getattr(self.core, f"{verb}_namespaced_{_CORE_KINDS[kind]}")

    def create_job(self, target: Target, body: dict[str, Any]) -> dict[str, Any]:
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            with self.errors(f"creating {target.kind} {name} in namespace {ns}"):
                return self.custom.create_namespaced_custom_object(
                    target.group,
                    target.version,
                    ns,
                    target.plural,
                    body,
                    _request_timeout=self.timeout,
                )
        except ClusterError as err:
            if err.status == 409:
                raise ClusterError(
                    f"--name: a {target.kind} named {name!r} already exists in namespace {ns}; "
                    "choose another --name or delete the old job"
                ) from None
            raise

    def get_job(self, target: Target, ns: str, name: str) -> dict[str, Any] | None:
        """The job object, or None if it no longer exists."""
        try:
            with self.errors(f"reading {target.kind} {name}"):
                return self.custom.get_namespaced_custom_object(
                    target.group,
                    target.version,
                    ns,
                    target.plural,
                    name,
                    _request_timeout=self.timeout,
                )
        except ClusterError as err:
            if err.status == 404:
                return None
            raise

    def delete_job(self, target: Target, ns: str, name: str) -> bool:
        """Delete with foreground propagation; False if it was already gone."""
        body = client.V1DeleteOptions(propagation_policy="Foreground")
        try:
            with self.errors(f"deleting {target.kind} {name}"):
                self.custom.delete_namespaced_custom_object(
                    target.group,
                    target.version,
                    ns,
                    target.plural,
                    name,
                    body=body,
                    _request_timeout=self.timeout,
                )
        except ClusterError as err:
            if err.status == 404:
                return False
            raise
        return True

    def list_pods(self, target: Target, ns: str, name: str) -> list[dict[str, Any]]:
        with self.errors(f"listing the pods of {name}"):
            listing = self.core.list_namespaced_pod(
                ns, label_selector=target.pod_selector(name), _request_timeout=self.timeout
            )
        pods = self.api_client.sanitize_for_serialization(listing).get("items", [])
        return [pod for pod in pods if target.owns_pod(name, pod)]

    def read_log_tail(self, ns: str, pod: str, container: str, lines: int = 50) -> str:
        """The last ``lines`` of a container's log ('' if it cannot be read)."""
        try:
            return self.core.read_namespaced_pod_log(
                pod, ns, container=container, tail_lines=lines, _request_timeout=self.timeout
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return ""
