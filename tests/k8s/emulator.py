"""An emulated Kubernetes API server for tests, served over real HTTP on 127.0.0.1.

``KubeEmulator`` runs a ``kmock.KubernetesEmulator`` subclass behind ``kmock.Server`` in a daemon
thread with its own asyncio loop, so that the (blocking) official ``kubernetes`` client can talk
to it from the test thread.  kmock serves API discovery (``/api``, ``/apis/...``, ``/version``);
everything under a resource path is served by ``_ApiServer`` below, which keeps its own object
store and watch-event log and fixes kmock's gaps:

* create answers ``201`` and assigns ``uid``, ``resourceVersion`` and ``creationTimestamp``;
  every change bumps ``resourceVersion`` (one counter for the whole server, like etcd);
* ``labelSelector`` (``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``,
  ``!k``) and ``fieldSelector`` (any dotted path, ``=``/``==``/``!=``) on list, watch and
  delete-collection;
* watch honours ``timeoutSeconds`` and ``resourceVersion`` (replay from the event log; a
  version older than ``compact()`` gives the real ``410 Expired`` ERROR event);
* ``PATCH`` with JSON patch, merge patch (strategic merge and apply are treated as merge
  patch), ``PUT`` with ``resourceVersion`` preconditions, the ``status`` subresource split,
  finalizers and ``deletionTimestamp``;
* pod logs (``/log``) with ``follow``, ``previous``, ``tailLines``, ``limitBytes`` and the
  kubelet's 400 answers for containers that have not started.

All state lives on the loop thread; the ``KubeEmulator`` methods hop onto it, so they are safe
to call from any thread.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import contextlib
import copy
import datetime
import json
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web as web
import jsonpatch
import kmock
import yaml

__all__ = [
    "CORE_RESOURCES",
    "CRD_GROUPS",
    "HARNESS_AGENT",
    "ApiError",
    "EmulatorApiError",
    "KubeEmulator",
    "ResourceType",
    "now_rfc3339",
    "parse_field_selector",
    "parse_label_selector",
    "unused_url",
]

T = TypeVar("T")

#: User-Agent of the harness' own HTTP calls; ``requests()`` leaves them out by default.
HARNESS_AGENT = "k8s-test-harness"

_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what apiserver uses for generateName suffixes


def now_rfc3339() -> str:
    """The current UTC time as a Kubernetes ``metav1.Time`` string (second precision)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(n: int = 5) -> str:
    """A random name suffix in the alphabet Kubernetes uses (``generateName``, pod names)."""
    return "".join(random.choice(_NAME_CHARS) for _ in range(n))


def unused_url() -> str:
    """An ``http://127.0.0.1:PORT`` URL where nothing listens (for unreachable contexts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------------------------
# Resource types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceType:
    """One served resource: ``group/version/plural`` plus what discovery says about it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """``kubeflow.org/v1/pytorchjobs`` or ``v1/pods`` (also kmock's resource key)."""
        return f"{self.group}/{self.version}/{self.plural}" if self.group else self.api_path

    @property
    def api_path(self) -> str:
        """``version/plural`` (the key of core resources)."""
        return f"{self.version}/{self.plural}"

    @property
    def api_version(self) -> str:
        """``group/version`` or ``v1``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        """The singular name (lower-case kind)."""
        return self.kind.lower()

    @property
    def qualified(self) -> str:
        """The name used in apiserver error messages: ``pytorchjobs.kubeflow.org``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        """The URL path of the collection, an object, or one of its subresources."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if sub:
                base += f"/{sub}"
        return base


def _core(plural: str, kind: str, namespaced: bool = True, *subs: str) -> ResourceType:
    return ResourceType("", "v1", plural, kind, namespaced, subs)


CORE_RESOURCES: tuple[ResourceType, ...] = (
    _core("pods", "Pod", True, "log", "status"),
    _core("configmaps", "ConfigMap"),
    _core("secrets", "Secret"),
    _core("services", "Service", True, "status"),
    _core("events", "Event"),
    _core("namespaces", "Namespace", False, "status"),
    _core("nodes", "Node", False, "status"),
)
PODS, NAMESPACES, NODES = CORE_RESOURCES[0], CORE_RESOURCES[5], CORE_RESOURCES[6]
CRD_RESOURCE = ResourceType(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    False,
    ("status",),
    ("crd", "crds"),
)
CRD_GROUPS: dict[str, tuple[ResourceType, ...]] = {
    "v1": (
        ResourceType("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", True, ("status", "scale")),
        ResourceType("kubeflow.org", "v1", "xgboostjobs", "XGBoostJob", True, ("status",)),
        ResourceType("kubeflow.org", "v1", "jaxjobs", "JAXJob", True, ("status", "scale")),
        ResourceType("kubeflow.org", "v1", "tfjobs", "TFJob", True, ("status",)),
    ),
    "v2": (
        ResourceType(
            "trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob", True, ("status",)
        ),
        ResourceType(
            "trainer.kubeflow.org",
            "v1alpha1",
            "clustertrainingruntimes",
            "ClusterTrainingRuntime",
            False,
        ),
        ResourceType("trainer.kubeflow.org", "v1alpha1", "trainingruntimes", "TrainingRuntime"),
    ),
}
DEFAULT_RUNTIMES = ("torch-distributed", "xgboost-distributed", "jax-distributed")
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered as a Kubernetes ``Status`` object (raise it from admission hooks)."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = dict(details or {})

    def status(self) -> dict[str, Any]:
        """The ``Status`` body."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    def response(self) -> web.Response:
        """The error as an aiohttp JSON response."""
        return web.json_response(self.status(), status=self.code)

    @classmethod
    def not_found(cls, rt: ResourceType, name: str) -> ApiError:
        """The apiserver's 404 for a missing object."""
        return cls(
            404,
            "NotFound",
            f'{rt.qualified} "{name}" not found',
            {"name": name, "group": rt.group, "kind": rt.plural},
        )

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        """A 400 BadRequest."""
        return cls(400, "BadRequest", message)


class EmulatorApiError(RuntimeError):
    """A harness-side HTTP call (``KubeEmulator.create/patch/...``) got a non-2xx answer."""

    def __init__(self, status: int, body: Any) -> None:
        msg = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {msg}")
        self.status, self.body = status, body


_SERVER_META = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def _not_served() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


# --------------------------------------------------------------------------------------------
# Selectors and patches
# --------------------------------------------------------------------------------------------

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_SET_TERM = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*([-A-Za-z0-9_.]*)\s*$")
_EXISTS_TERM = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside ``(...)``."""
    terms, depth, cur = [], 0, ""
    for ch in selector:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t for t in terms if t.strip()]


def parse_label_selector(selector: str | None) -> Callable[[Mapping[str, str]], bool]:
    """Compile a label selector string into a predicate over a labels dict.

    Raises ``ValueError`` for syntax the apiserver would reject.
    """
    checks: list[Callable[[Mapping[str, str]], bool]] = []
    for term in _split_terms(selector or ""):
        if m := _SET_TERM.match(term):
            key, op = m.group(1), m.group(2)
            values = {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                checks.append(lambda lb, k=key, vs=values: k in lb and lb[k] in vs)
            else:
                checks.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif m := _EQ_TERM.match(term):
            key, op, value = m.groups()
            if op == "!=":
                checks.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                checks.append(lambda lb, k=key, v=value: k in lb and lb[k] == v)
        elif m := _EXISTS_TERM.match(term):
            neg, key = m.groups()
            checks.append(lambda lb, k=key, n=bool(neg): (k in lb) != n)
        else:
            raise ValueError(f"unable to parse requirement: {term.strip()!r}")
    return lambda labels: all(check(labels) for check in checks)


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def parse_field_selector(selector: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a field selector (``metadata.name=x,involvedObject.name!=y``) into a predicate."""
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    for term in _split_terms(selector or ""):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if not m:
            raise ValueError(f"invalid selector: {term.strip()!r}; can't understand it")
        path, op, value = m.groups()

        def check(obj: Mapping[str, Any], p: str = path, o: str = op, v: str = value) -> bool:
            got = _dig(obj, p)
            text = "" if got is None else str(got).lower() if isinstance(got, bool) else str(got)
            return (text == v) != (o == "!=")

        checks.append(check)
    return lambda obj: all(check(obj) for check in checks)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (``None`` deletes a key, lists are replaced)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _parse_time(text: str) -> float:
    """RFC 3339 (``2024-01-02T03:04:05Z``, optional fraction) to a POSIX timestamp."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$", text)
    if not m:
        raise ApiError.bad_request(f"invalid time: {text!r}")
    when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    fraction = float(m.group(2) or 0)
    return when.replace(tzinfo=datetime.timezone.utc).timestamp() + fraction


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError.bad_request(f"invalid {name}: {raw!r}") from None


# --------------------------------------------------------------------------------------------
# Server-side state
# --------------------------------------------------------------------------------------------


@dataclass
class _Event:
    rv: int
    key: str
    type: str
    obj: dict[str, Any]


@dataclass
class _LogBuffer:
    """The output of one container instance: timestamped lines (the last may be partial)."""

    records: list[tuple[float, bytearray]] = field(default_factory=list)
    ended: bool = False

    def append(self, data: bytes) -> None:
        """Append output; lines are timestamped when they start."""
        for piece in data.splitlines(keepends=True):
            if self.records and not self.records[-1][1].endswith(b"\n"):
                self.records[-1][1].extend(piece)
            else:
                self.records.append((time.time(), bytearray(piece)))

    @property
    def data(self) -> bytes:
        """All output as bytes."""
        return b"".join(bytes(line) for _, line in self.records)

    def end(self) -> tuple[int, int]:
        """The position after everything written so far."""
        if not self.records:
            return 0, 0
        return len(self.records) - 1, len(self.records[-1][1])

    def render(self, start: tuple[int, int], timestamps: bool) -> tuple[bytes, tuple[int, int]]:
        """The bytes from ``start`` (record, offset) on, and the position after them."""
        index, offset = start
        out = bytearray()
        for i in range(index, len(self.records)):
            stamp, line = self.records[i]
            skip = offset if i == index else 0
            if timestamps and skip == 0:
                when = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
                out += when.strftime("%Y-%m-%dT%H:%M:%S.%f000Z ").encode()
            out += line[skip:]
        return bytes(out), self.end()


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    error: ApiError
    times: int


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the server saw it."""

    method: str
    path: str  # path with query string
    user_agent: str
    body: bytes

    @property
    def harness(self) -> bool:
        """Whether the harness itself made the call."""
        return self.user_agent.startswith(HARNESS_AGENT)


class _Signal:
    """Wakes every waiter on ``fire()``; waiters register synchronously so no wake-up is lost."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def fire(self) -> None:
        """Wake all current waiters."""
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait(self, timeout: float) -> None:
        """Wait for the next ``fire()`` or ``timeout`` seconds."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, max(timeout, 0.0))
        except asyncio.TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)


Admission = Callable[[dict[str, Any], str], "dict[str, Any] | None"]


class _ApiServer(kmock.KubernetesEmulator):
    """kmock's emulator with our own resource handling (see the module docstring)."""

    def __init__(self, types: Iterable[ResourceType], *, strict_namespaces: bool) -> None:
        super().__init__()
        self.types: dict[tuple[str, str, str], ResourceType] = {}
        self.store: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.events: list[_Event] = []
        self.calls: list[RecordedRequest] = []
        self.logs: dict[tuple[str, str, str], list[_LogBuffer]] = {}
        self.faults: list[_Fault] = []
        self.admission: dict[str, list[Admission]] = {}
        self.strict_namespaces = strict_namespaces
        self.rv = 0
        self.compacted = 0
        self.closing = False
        self.signal = _Signal()
        for rt in types:
            self.types[rt.group, rt.version, rt.plural] = rt
            self.store[rt.key] = {}
            self.resources[rt.key] = {
                "kind": rt.kind,
                "singular": rt.singular,
                "namespaced": rt.namespaced,
                "verbs": set(_ALL_VERBS),
                "subresources": set(rt.subresources),
                "shortnames": set(rt.short_names),
            }

    # ---- entry point ----------------------------------------------------------------------

    async def __call__(self, raw: web.BaseRequest) -> web.StreamResponse:  # type: ignore[override]
        body = await raw.read()
        ua = raw.headers.get("User-Agent", "")
        self.calls.append(RecordedRequest(raw.method, raw.path_qs, ua, body))
        try:
            for fault in self.faults:
                if fault.method in ("*", raw.method) and fault.pattern.search(raw.path_qs):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    raise fault.error
            route = self._route(raw.path)
            if route is None and raw.path.rstrip("/") == "/api":
                host = raw.host or "127.0.0.1"
                cidrs = [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]
                versions = {"kind": "APIVersions", "versions": ["v1"]}
                return web.json_response({**versions, "serverAddressByClientCIDRs": cidrs})
            if route is None:  # discovery, /version, unknown paths: kmock's scaffold
                if raw.path not in ("", "/") and raw.path.endswith("/"):
                    raw = raw.clone(rel_url=raw.rel_url.with_path(raw.path.rstrip("/")))
                return await super().__call__(raw)
            return await self._serve(raw, body, *route)
        except ApiError as exc:
            return exc.response()
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a harness bug: make it visible to the client
            return ApiError(500, "InternalError", f"emulator error: {exc!r}").response()

    def _route(self, path: str) -> tuple[ResourceType, str | None, str | None, str] | None:
        """Map a URL path to (type, namespace, name, subresource); None for non-resource paths."""
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 3 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            rt = self.types.get((group, version, rest[2]))
            if rt is not None and rt.namespaced:
                namespace, rest = rest[1], rest[2:]
        rt = self.types.get((group, version, rest[0]))
        if rt is None or (namespace is None and rt.namespaced and len(rest) > 1):
            raise _not_served()
        name = rest[1] if len(rest) > 1 else None
        sub = "/".join(rest[2:])
        if sub and sub not in rt.subresources:
            raise _not_served()
        return rt, namespace, name, sub

    async def _serve(
        self,
        raw: web.BaseRequest,
        body: bytes,
        rt: ResourceType,
        ns: str | None,
        name: str | None,
        sub: str,
    ) -> web.StreamResponse:
        params = dict(raw.query)
        method = raw.method
        if method == "GET":
            if sub == "log":
                return await self._serve_log(raw, ns or "", name or "", params)
            if _truthy(params.get("watch")):
                return await self._serve_watch(raw, rt, ns, name, params)
            if name is None:
                return web.json_response(self.list(rt, ns, params))
            return web.json_response(self.fetch(rt, ns, name))
        ctype = raw.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
        data = self._decode(body, ctype)
        dry = bool(params.get("dryRun"))
        if method == "POST" and name is None and (ns or not rt.namespaced):
            return web.json_response(self.create(rt, ns, data, dry_run=dry), status=201)
        if method == "PATCH" and name is not None:
            return web.json_response(self.patch(rt, ns, name, data, ctype, sub, dry_run=dry))
        if method == "PUT" and name is not None:
            return web.json_response(self.replace(rt, ns, name, data, sub, dry_run=dry))
        if method == "DELETE" and name is not None and not sub:
            return web.json_response(self.delete(rt, ns, name, dry_run=dry))
        if method == "DELETE" and name is None:
            return web.json_response(self.delete_collection(rt, ns, params))
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    @staticmethod
    def _decode(body: bytes, ctype: str) -> Any:
        if not body:
            return None
        try:
            return json.loads(body)
        except ValueError:
            if ctype == "application/apply-patch+yaml":
                return yaml.safe_load(body)
            raise ApiError.bad_request("the request body is not valid JSON") from None

    # ---- store primitives --------------------------------------------------------------------

    def _bucket(self, rt: ResourceType) -> dict[tuple[str, str], dict[str, Any]]:
        return self.store[rt.key]

    def _emit(self, rt: ResourceType, kind: str, obj: dict[str, Any]) -> None:
        self.events.append(_Event(int(obj["metadata"]["resourceVersion"]), rt.key, kind, obj))
        self.signal.fire()

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _current(self, rt: ResourceType, ns: str | None, name: str) -> dict[str, Any]:
        obj = self._bucket(rt).get((ns or "", name))
        if obj is None:
            raise ApiError.not_found(rt, name)
        return obj

    def _matcher(
        self, ns: str | None, name: str | None, params: Mapping[str, str]
    ) -> Callable[[Mapping[str, Any]], bool]:
        try:
            labels = parse_label_selector(params.get("labelSelector"))
            fields = parse_field_selector(params.get("fieldSelector"))
        except ValueError as exc:
            raise ApiError.bad_request(str(exc)) from None

        def match(obj: Mapping[str, Any]) -> bool:
            meta = _meta(obj)
            if ns is not None and meta.get("namespace") != ns:
                return False
            if name is not None and meta.get("name") != name:
                return False
            return labels(meta.get("labels") or {}) and fields(obj)

        return match

    def _admit(self, rt: ResourceType, obj: dict[str, Any], operation: str) -> dict[str, Any]:
        for hook in self.admission.get(rt.key, []):
            result = hook(copy.deepcopy(obj), operation)
            if result is not None:
                obj = result
        return obj

    # ---- verbs ---------------------------------------------------------------------------------

    def fetch(self, rt: ResourceType, ns: str | None, name: str) -> dict[str, Any]:
        """GET one object."""
        return self._current(rt, ns, name)

    def list(
        self, rt: ResourceType, ns: str | None, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """LIST as a ``<Kind>List`` with the current resourceVersion."""
        match = self._matcher(ns, None, params or {})
        items = [obj for _, obj in sorted(self._bucket(rt).items()) if match(obj)]
        return {
            "apiVersion": rt.api_version,
            "kind": f"{rt.kind}List",
            "metadata": {"resourceVersion": str(self.rv)},
            "items": items,
        }

    def create(
        self,
        rt: ResourceType,
        ns: str | None,
        data: Any,
        *,
        dry_run: bool = False,
        keep_status: bool = False,
    ) -> dict[str, Any]:
        """POST: assign uid/resourceVersion/creationTimestamp, store, emit ADDED."""
        if not isinstance(data, dict):
            raise ApiError.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(data)
        meta = obj["metadata"] = dict(_meta(obj))
        if rt.namespaced:
            if meta.get("namespace") not in (None, "", ns):
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta["namespace"] = ns
            if self.strict_namespaces and ("", ns) not in self.store["v1/namespaces"]:
                raise ApiError(
                    404,
                    "NotFound",
                    f'namespaces "{ns}" not found',
                    {"name": ns, "kind": "namespaces"},
                )
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + random_suffix()
        name = meta.get("name")
        if not name:
            raise ApiError(
                422,
                "Invalid",
                f'{rt.kind}.{rt.group or "core"} "" is invalid: metadata.name: Required value: '
                "name or generateName is required",
            )
        if (ns or "", name) in self._bucket(rt):
            raise ApiError(
                409,
                "AlreadyExists",
                f'{rt.qualified} "{name}" already exists',
                {"name": name, "group": rt.group, "kind": rt.plural},
            )
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        obj = self._admit(rt, obj, "CREATE")
        if keep_status:  # seeding the store
            pass
        elif rt.plural == "pods":  # the apiserver resets what only kubelet may set
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif rt.plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        elif rt.group and "status" in rt.subresources:
            obj.pop("status", None)
        meta = obj["metadata"]
        meta.pop("deletionTimestamp", None)
        meta.update(
            uid=str(uuid.uuid4()),
            creationTimestamp=now_rfc3339(),
            generation=1,
            resourceVersion=str(self.rv) if dry_run else self._next_rv(),
        )
        if dry_run:
            return obj
        self._bucket(rt)[ns or "", name] = obj
        self._emit(rt, "ADDED", obj)
        return obj

    def patch(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        data: Any,
        ctype: str,
        sub: str = "",
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PATCH: JSON patch for lists, merge patch otherwise (apply creates if missing)."""
        key = (ns or "", name)
        if ctype == "application/apply-patch+yaml" and key not in self._bucket(rt):
            return self.create(rt, ns, data, dry_run=dry_run)  # server-side apply creates
        cur = self._current(rt, ns, name)
        if ctype == "application/json-patch+json" or isinstance(data, list):
            try:
                new = jsonpatch.apply_patch(copy.deepcopy(cur), data or [])
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise ApiError(422, "Invalid", f"the JSON patch failed: {exc}") from None
            want_rv = None
        else:
            if not isinstance(data, dict):
                raise ApiError.bad_request("a merge patch must be a JSON object")
            new = merge_patch(cur, data)
            want_rv = _meta(data).get("resourceVersion")
        return self._update(rt, cur, new, sub, want_rv, dry_run=dry_run)

    def replace(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        data: Any,
        sub: str = "",
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT with the optimistic-concurrency check on ``metadata.resourceVersion``."""
        if not isinstance(data, dict):
            raise ApiError.bad_request("the body of the request must be a JSON object")
        if _meta(data).get("name") not in (None, name):
            raise ApiError.bad_request("the name of the object does not match the name on the URL")
        cur = self._current(rt, ns, name)
        new = copy.deepcopy(data)
        return self._update(rt, cur, new, sub, _meta(data).get("resourceVersion"), dry_run=dry_run)

    def _update(
        self,
        rt: ResourceType,
        cur: dict[str, Any],
        new: dict[str, Any],
        sub: str,
        want_rv: str | None,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        cur_meta = _meta(cur)
        name = cur_meta["name"]
        if want_rv and want_rv != cur_meta["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                {"name": name, "group": rt.group, "kind": rt.plural},
            )
        new = copy.deepcopy(new)
        if sub == "status":  # only the status stanza changes through /status
            status = new.get("status")
            new = copy.deepcopy(cur)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif "status" in rt.subresources:  # ... and never through the main resource
            if "status" in cur:
                new["status"] = copy.deepcopy(cur["status"])
            else:
                new.pop("status", None)
        meta = new["metadata"] = dict(_meta(new))
        for keep in _SERVER_META:
            if keep in cur_meta:
                meta[keep] = cur_meta[keep]
            else:
                meta.pop(keep, None)
        new["apiVersion"], new["kind"] = cur["apiVersion"], cur["kind"]
        if sub != "status":
            new = self._admit(rt, new, "UPDATE")
            if new.get("spec") != cur.get("spec"):
                new["metadata"]["generation"] = int(cur_meta.get("generation", 1)) + 1
        if new == cur or dry_run:
            return new
        key = (cur_meta.get("namespace") or "", name)
        release = bool(meta.get("deletionTimestamp")) and not meta.get("finalizers")
        new["metadata"]["resourceVersion"] = self._next_rv()
        self._bucket(rt)[key] = new
        self._emit(rt, "MODIFIED", new)
        if release:
            self._remove(rt, key)
        return new

    def delete(
        self, rt: ResourceType, ns: str | None, name: str, *, dry_run: bool = False
    ) -> dict[str, Any]:
        """DELETE (finalizers only set deletionTimestamp); returns the last state."""
        cur = self._current(rt, ns, name)
        if dry_run:
            return cur
        meta = _meta(cur)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return cur
            new = copy.deepcopy(cur)
            new["metadata"].update(
                deletionTimestamp=now_rfc3339(),
                deletionGracePeriodSeconds=0,
                resourceVersion=self._next_rv(),
            )
            self._bucket(rt)[ns or "", name] = new
            self._emit(rt, "MODIFIED", new)
            return new
        return self._remove(rt, (ns or "", name))

    def _remove(self, rt: ResourceType, key: tuple[str, str]) -> dict[str, Any]:
        gone = copy.deepcopy(self._bucket(rt).pop(key))
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._emit(rt, "DELETED", gone)
        if rt.plural == "pods":  # a new pod with the same name starts without logs
            for log_key in [k for k in self.logs if k[:2] == key]:
                for buf in self.logs.pop(log_key):
                    buf.ended = True  # followers of the deleted pod see their stream end
        return gone

    def delete_collection(
        self, rt: ResourceType, ns: str | None, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """DELETE on a collection with selectors."""
        items = self.list(rt, ns, params)["items"]
        deleted = [self.delete(rt, _meta(o).get("namespace"), _meta(o)["name"]) for o in items]
        return {**self.list(rt, ns, {}), "items": deleted}

    # ---- watch ---------------------------------------------------------------------------------

    async def _serve_watch(
        self,
        raw: web.BaseRequest,
        rt: ResourceType,
        ns: str | None,
        name: str | None,
        params: Mapping[str, str],
    ) -> web.StreamResponse:
        match = self._matcher(ns, name, params)
        timeout = _int_param(params, "timeoutSeconds")
        since = params.get("resourceVersion") or "0"
        if not since.isdigit():
            raise ApiError.bad_request(f"invalid resourceVersion: {since!r}")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(raw)

        async def send(kind: str, obj: dict[str, Any]) -> None:
            await resp.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        try:
            if int(since) == 0:  # synthetic ADDED events for the current state
                snapshot = [o for _, o in sorted(self._bucket(rt).items()) if match(o)]
                pos = len(self.events)
                for obj in snapshot:
                    await send("ADDED", obj)
            elif int(since) < self.compacted:
                status = ApiError(
                    410, "Expired", f"too old resource version: {since} ({self.compacted})"
                ).status()
                await send("ERROR", status)
                pos = len(self.events)
                deadline = loop.time()
            else:
                pos = bisect.bisect_right([e.rv for e in self.events], int(since))
            while True:
                while pos < len(self.events):
                    event = self.events[pos]
                    pos += 1
                    if event.key == rt.key and match(event.obj):
                        await send(event.type, event.obj)
                transport = raw.transport
                if self.closing or transport is None or transport.is_closing():
                    break
                left = 0.25 if deadline is None else min(0.25, deadline - loop.time())
                if left <= 0:
                    break
                await self.signal.wait(left)
            await resp.write_eof()
        except ConnectionError:
            pass
        return resp

    # ---- logs ----------------------------------------------------------------------------------

    def default_container(self, ns: str, pod: str) -> str:
        """The container ``kubectl logs POD`` would pick (the first regular container)."""
        obj = self._bucket(PODS).get((ns, pod))
        containers = ((obj or {}).get("spec") or {}).get("containers") or []
        return containers[0].get("name", "") if containers else ""

    def log_buffers(self, ns: str, pod: str, container: str | None) -> list[_LogBuffer]:
        """The container instances of a pod's container (default: the first)."""
        return self.logs.setdefault((ns, pod, container or self.default_container(ns, pod)), [])

    def _pick_log(
        self, ns: str, pod: str, params: Mapping[str, str]
    ) -> tuple[_LogBuffer | None, str]:
        """Decide which container instance a log request reads, the way kubelet does."""
        obj = self._current(PODS, ns, pod)
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        regular = [c.get("name") for c in spec.get("containers") or []]
        init = [c.get("name") for c in spec.get("initContainers") or []]
        container = params.get("container") or ""
        if not container:
            if len(regular) != 1:
                raise ApiError.bad_request(
                    f"a container name must be specified for pod {pod}, "
                    f"choose one of: [{' '.join(init + regular)}]"
                )
            container = regular[0]
        elif container not in regular + init:
            raise ApiError.bad_request(f"container {container} is not valid for pod {pod}")
        if not spec.get("nodeName"):
            return None, container  # not scheduled: the apiserver answers an empty log
        statuses = (status.get("containerStatuses") or []) + (
            status.get("initContainerStatuses") or []
        )
        cstatus = next((s for s in statuses if s.get("name") == container), None)
        state = (cstatus or {}).get("state") or {"waiting": {"reason": "ContainerCreating"}}
        last = ((cstatus or {}).get("lastState") or {}).get("terminated")
        buffers = self.logs.get((ns, pod, container), [])
        current_exists = "running" in state or "terminated" in state
        if _truthy(params.get("previous")):
            if not last:
                raise ApiError.bad_request(
                    f'previous terminated container "{container}" in pod "{pod}" not found'
                )
            index = -2 if current_exists else -1
        elif current_exists or last:
            index = -1
        else:
            reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
            detail = {
                "ErrImagePull": "image can't be pulled",
                "ImagePullBackOff": "trying and failing to pull image",
            }.get(reason, reason)
            raise ApiError.bad_request(
                f'container "{container}" in pod "{pod}" is waiting to start: {detail}'
            )
        if not buffers and index == -1 and "running" in state:
            buffers = self.logs[ns, pod, container] = [_LogBuffer()]  # started, silent so far
        buf = buffers[index] if len(buffers) >= -index else None
        return buf, container

    async def _serve_log(
        self, raw: web.BaseRequest, ns: str, pod: str, params: Mapping[str, str]
    ) -> web.StreamResponse:
        buf, _ = self._pick_log(ns, pod, params)
        buf = buf or _LogBuffer(ended=True)
        tail, limit = _int_param(params, "tailLines"), _int_param(params, "limitBytes")
        since = _int_param(params, "sinceSeconds")
        cutoff = None if since is None else time.time() - since
        if params.get("sinceTime"):
            cutoff = _parse_time(params["sinceTime"])
        first = 0
        if tail is not None:
            first = max(len(buf.records) - max(tail, 0), 0)
        if cutoff is not None:
            stamps = [stamp for stamp, _ in buf.records]
            first = max(first, bisect.bisect_left(stamps, cutoff))
        timestamps = _truthy(params.get("timestamps"))
        data, pos = buf.render((first, 0), timestamps)
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if not _truthy(params.get("follow")):
            return web.Response(body=data[:limit] if limit is not None else data, headers=headers)
        resp = web.StreamResponse(status=200, headers=headers)
        await resp.prepare(raw)
        sent = 0
        try:
            while True:
                if limit is not None:
                    data = data[: max(limit - sent, 0)]
                if data:
                    await resp.write(data)
                    sent += len(data)
                transport = raw.transport
                done = buf.ended and pos == buf.end()
                if done or self.closing or transport is None or transport.is_closing():
                    break
                if limit is not None and sent >= limit:
                    break
                if pos == buf.end():
                    await self.signal.wait(0.25)
                data, pos = buf.render(pos, timestamps)
            await resp.write_eof()
        except ConnectionError:
            pass
        return resp


# --------------------------------------------------------------------------------------------
# Fixture objects (hand-written, minimal)
# --------------------------------------------------------------------------------------------


def _crd_object(rt: ResourceType) -> dict[str, Any]:
    return {
        "metadata": {"name": rt.qualified},
        "spec": {
            "group": rt.group,
            "names": {
                "kind": rt.kind,
                "plural": rt.plural,
                "singular": rt.singular,
                "listKind": f"{rt.kind}List",
            },
            "scope": "Namespaced" if rt.namespaced else "Cluster",
            "versions": [
                {
                    "name": rt.version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                    "subresources": {"status": {}} if "status" in rt.subresources else {},
                }
            ],
        },
        "status": {
            "acceptedNames": {"kind": rt.kind, "plural": rt.plural},
            "storedVersions": [rt.version],
            "conditions": [
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now_rfc3339(),
                }
            ],
        },
    }


def _runtime_object(name: str) -> dict[str, Any]:
    framework = next((f for f in ("xgboost", "jax") if f in name), "torch")
    image = {
        "xgboost": "ghcr.io/kubeflow/trainer/xgboost-runtime:latest",
        "jax": "nvcr.io/nvidia/jax:25.10-py3",
    }.get(framework, "pytorch/pytorch:latest")
    container = {"name": "node", "image": image}
    return {
        "metadata": {"name": name, "labels": {"trainer.kubeflow.org/framework": framework}},
        "spec": {
            "mlPolicy": {"numNodes": 1, framework: {}},
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {
                            "name": "node",
                            "template": {
                                "metadata": {"labels": {ANCESTOR_LABEL: "trainer"}},
                                "spec": {"template": {"spec": {"containers": [container]}}},
                            },
                        }
                    ]
                }
            },
        },
    }


def _node_object(node: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(node, Mapping):
        return copy.deepcopy(dict(node))
    return {
        "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
        "status": {
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


# --------------------------------------------------------------------------------------------
# The thread wrapper used by tests
# --------------------------------------------------------------------------------------------


class KubeEmulator:
    """An emulated API server on ``127.0.0.1`` for the official ``kubernetes`` client.

    ``crds`` picks the installed Kubeflow API groups: ``"v1"`` (kubeflow.org/v1 PyTorchJob,
    XGBoostJob) and/or ``"v2"`` (trainer.kubeflow.org/v1alpha1 TrainJob and the runtimes).
    """

    def __init__(
        self,
        *,
        crds: Iterable[str] = ("v1", "v2"),
        namespaces: Iterable[str] = ("default",),
        strict_namespaces: bool = False,
        nodes: Iterable[str | Mapping[str, Any]] = ("node-1",),
        runtimes: Iterable[str] = DEFAULT_RUNTIMES,
    ) -> None:
        self.crds = frozenset(crds)
        unknown = self.crds - set(CRD_GROUPS)
        if unknown:
            raise ValueError(f"unknown CRD groups {sorted(unknown)}; use 'v1' and/or 'v2'")
        self._crd_types = [rt for g in sorted(self.crds) for rt in CRD_GROUPS[g]]
        self._types = [*CORE_RESOURCES, CRD_RESOURCE, *self._crd_types]
        self._seed: list[tuple[ResourceType, dict[str, Any]]] = [
            *((NAMESPACES, {"metadata": {"name": n}}) for n in namespaces),
            *((NODES, _node_object(n)) for n in nodes),
            *((CRD_RESOURCE, _crd_object(rt)) for rt in self._crd_types),
        ]
        if "v2" in self.crds:
            cluster_runtimes = CRD_GROUPS["v2"][1]
            self._seed += [(cluster_runtimes, _runtime_object(name)) for name in runtimes]
        self._strict = strict_namespaces
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._stopping: asyncio.Event | None = None
        self._srv: _ApiServer | None = None
        self._http: kmock.Server | None = None
        self._error: BaseException | None = None
        self._offset = 0
        self.url = ""
        self.port = 0

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> KubeEmulator:
        """Start the server thread; returns ``self`` once the port is listening."""
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            raise RuntimeError(f"the Kubernetes emulator did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        """Close open watch/log streams, shut the server down and join the thread."""
        if not self._thread.is_alive():
            return
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(15)
        if self._thread.is_alive():  # pragma: no cover - a harness bug
            raise RuntimeError("the Kubernetes emulator thread did not stop")

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # pragma: no cover - reported by start()
            self._error = exc
            self._ready.set()
        finally:
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        srv = _ApiServer(self._types, strict_namespaces=self._strict)
        async with srv, kmock.Server(srv, host="127.0.0.1") as http:
            self._srv, self._http = srv, http
            self.port = http.port
            self.url = f"http://127.0.0.1:{http.port}"
            for rt, obj in self._seed:
                srv.create(rt, _meta(obj).get("namespace"), obj, keep_status=True)
            self._ready.set()
            await self._stopping.wait()
            srv.closing = True
            srv.signal.fire()
            for _ in range(5):  # let streaming handlers notice and finish
                await asyncio.sleep(0.01)

    # ---- running code on the loop --------------------------------------------------------------

    def call(self, fn: Callable[[_ApiServer], T], timeout: float = 10.0) -> T:
        """Run ``fn(server)`` on the loop thread (the only safe way to touch server state)."""
        if self._srv is None or not self._thread.is_alive():
            raise RuntimeError("the Kubernetes emulator is not running")
        srv = self._srv

        async def _call() -> T:
            return fn(srv)

        return self._wait(asyncio.run_coroutine_threadsafe(_call(), self._loop), timeout)

    def _wait(self, future: concurrent.futures.Future[T], timeout: float) -> T:
        """Wait for a loop-side result, but give up at once if the loop thread ends."""
        end = time.monotonic() + timeout
        while True:
            try:
                return future.result(0.05)
            except concurrent.futures.TimeoutError:
                if not self._thread.is_alive():
                    future.cancel()
                    raise RuntimeError("the Kubernetes emulator stopped") from None
                if time.monotonic() > end:
                    future.cancel()
                    raise

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """Make an HTTP call as the harness (recorded, but hidden from ``requests()``)."""
        if self._http is None or not self._thread.is_alive():
            raise RuntimeError("the Kubernetes emulator is not running")
        client = self._http.client
        headers = {"User-Agent": HARNESS_AGENT}
        if body is not None:
            headers["Content-Type"] = content_type or (
                "application/json-patch+json" if isinstance(body, list) else "application/json"
            )

        async def _request() -> tuple[int, Any]:
            data = None if body is None else json.dumps(body)
            async with client.request(
                method, path, data=data, headers=headers, params=params
            ) as resp:
                text = await resp.text()
                try:
                    return resp.status, json.loads(text)
                except ValueError:
                    return resp.status, text

        return self._wait(asyncio.run_coroutine_threadsafe(_request(), self._loop), timeout)

    # ---- resources -----------------------------------------------------------------------------

    def resource(self, name: str) -> ResourceType:
        """Resolve a plural, kind, singular or key (``pods``, ``Pod``, ``kubeflow.org/v1/...``)."""
        wanted = name.lower()
        for rt in self._types:
            if wanted in (rt.plural, rt.kind.lower(), rt.singular, rt.key, rt.qualified):
                return rt
        known = [rt.key for g in CRD_GROUPS.values() for rt in g]
        hint = " (its CRD group is not installed)" if any(wanted in k for k in known) else ""
        raise KeyError(f"unknown resource {name!r}{hint}")

    def _check(self, status: int, body: Any) -> Any:
        if not 200 <= status < 300:
            raise EmulatorApiError(status, body)
        return body

    def create(
        self, resource: str, obj: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """Create an object over HTTP (watchers see ADDED); returns the stored object."""
        rt = self.resource(resource)
        ns = namespace or _meta(obj).get("namespace") or ("default" if rt.namespaced else None)
        return self._check(*self.api("POST", rt.path(ns), dict(obj)))

    def patch(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """PATCH over HTTP: a dict is a merge patch, a list a JSON patch."""
        rt = self.resource(resource)
        ctype = "application/json-patch+json" if isinstance(body, list) else None
        ctype = ctype or "application/merge-patch+json"
        path = rt.path(namespace, name, subresource)
        return self._check(*self.api("PATCH", path, body, content_type=ctype))

    def delete(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        """DELETE over HTTP (watchers see DELETED)."""
        rt = self.resource(resource)
        body = {"propagationPolicy": "Background"}
        return self._check(*self.api("DELETE", rt.path(namespace, name), body))

    def objects(
        self, resource: str, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Deep copies of the stored objects, sorted by namespace and name."""
        rt = self.resource(resource)
        params = {"labelSelector": label_selector} if label_selector else {}
        return self.call(lambda s: copy.deepcopy(s.list(rt, namespace, params)["items"]))

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A deep copy of one stored object, or None."""
        rt = self.resource(resource)
        return self.call(lambda s: copy.deepcopy(s.store[rt.key].get((namespace or "", name))))

    def history(
        self, resource: str, namespace: str | None = None, name: str | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Every watch event so far for a resource: ``[(ADDED|MODIFIED|DELETED, object), ...]``."""
        rt = self.resource(resource)

        def pick(srv: _ApiServer) -> list[tuple[str, dict[str, Any]]]:
            match = srv._matcher(namespace, name, {})
            return [
                (e.type, copy.deepcopy(e.obj))
                for e in srv.events
                if e.key == rt.key and match(e.obj)
            ]

        return self.call(pick)

    def wait_for(
        self,
        resource: str,
        namespace: str | None,
        name: str | None = None,
        *,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 5.0,
        label_selector: str | None = None,
    ) -> dict[str, Any]:
        """Poll the store until an object (optionally named) satisfies ``predicate``."""
        rt = self.resource(resource)
        end = time.monotonic() + timeout
        while True:
            for obj in self.objects(rt.key, namespace, label_selector=label_selector):
                if name in (None, _meta(obj).get("name")) and (predicate is None or predicate(obj)):
                    return obj
            if time.monotonic() > end:
                what = f"{rt.plural} {namespace or ''}/{name or '*'}"
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.02)

    def add_admission(self, resource: str, hook: Admission) -> None:
        """Install an admission hook ``hook(obj, "CREATE"|"UPDATE") -> obj | None``.

        It runs on the loop thread; return a changed object to mutate, raise ``ApiError`` to deny.
        """
        rt = self.resource(resource)
        self.call(lambda s: s.admission.setdefault(rt.key, []).append(hook))

    # ---- requests, faults, resource versions ---------------------------------------------------

    def requests(self, *, include_harness: bool = False) -> list[tuple[str, str]]:
        """Recorded requests as ``(METHOD, path?query)``, oldest first, since ``clear_requests``."""
        calls = self.call(lambda s: list(s.calls[self._offset :]))
        return [(c.method, c.path) for c in calls if include_harness or not c.harness]

    def recorded(self, *, include_harness: bool = False) -> list[RecordedRequest]:
        """Like ``requests()`` but with user agent and body."""
        calls = self.call(lambda s: list(s.calls[self._offset :]))
        return [c for c in calls if include_harness or not c.harness]

    def clear_requests(self) -> None:
        """Forget the requests recorded so far."""
        self._offset = self.call(lambda s: len(s.calls))

    def fail(
        self,
        method: str,
        path_pattern: str,
        *,
        status: int = 500,
        reason: str = "InternalError",
        message: str = "injected failure",
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` (or ``*``) and the regex
        ``path_pattern`` (searched in path+query) with an error ``Status``."""
        fault = _Fault(
            method.upper(), re.compile(path_pattern), ApiError(status, reason, message), times
        )
        self.call(lambda s: s.faults.append(fault))

    def compact(self) -> int:
        """Expire every resourceVersion up to now (watches from older versions get 410)."""

        def _compact(srv: _ApiServer) -> int:
            srv.compacted = srv.rv
            return srv.rv

        return self.call(_compact)

    @property
    def resource_version(self) -> int:
        """The current (global) resourceVersion."""
        return self.call(lambda s: s.rv)

    # ---- pod logs ------------------------------------------------------------------------------

    def start_container(self, namespace: str, pod: str, *, container: str | None = None) -> None:
        """Begin a new container instance: later ``log()`` text goes to it, and the one before
        becomes what ``previous=true`` returns."""

        def _start(srv: _ApiServer) -> None:
            buffers = srv.log_buffers(namespace, pod, container)
            for buf in buffers:
                buf.ended = True
            buffers.append(_LogBuffer())
            srv.signal.fire()

        self.call(_start)

    def log(self, namespace: str, pod: str, text: str, *, container: str | None = None) -> None:
        """Append ``text`` to the current container instance's log (followers get it live)."""

        def _log(srv: _ApiServer) -> None:
            buffers = srv.log_buffers(namespace, pod, container)
            if not buffers:
                buffers.append(_LogBuffer())
            buffers[-1].append(text.encode())
            srv.signal.fire()

        self.call(_log)

    def end_log(self, namespace: str, pod: str, *, container: str | None = None) -> None:
        """End the current container instance's log (``follow`` streams finish)."""

        def _end(srv: _ApiServer) -> None:
            buffers = srv.log_buffers(namespace, pod, container)
            if not buffers:
                buffers.append(_LogBuffer())
            buffers[-1].ended = True
            srv.signal.fire()

        self.call(_end)

    def log_text(
        self, namespace: str, pod: str, *, container: str | None = None, previous: bool = False
    ) -> str:
        """The stored text of the current (or previous) container instance."""

        def _text(srv: _ApiServer) -> str:
            buffers = srv.log_buffers(namespace, pod, container)
            index = -2 if previous else -1
            return bytes(buffers[index].data).decode() if len(buffers) >= -index else ""

        return self.call(_text)

    # ---- kubeconfig ----------------------------------------------------------------------------

    def write_kubeconfig(
        self,
        path: str | Path,
        *,
        contexts: Mapping[str, str | Mapping[str, str] | None] | None = None,
        current: str | None = None,
        namespace: str = "default",
    ) -> Path:
        """Write a kubeconfig (no auth) and return its path.

        ``contexts`` maps context names to ``None`` (this emulator), a server URL (for example
        ``unused_url()``), or ``{"server": ..., "namespace": ...}``.  Default: one context
        ``emulator``.  ``current`` defaults to the first context.
        """
        contexts = dict(contexts or {"emulator": None})
        clusters, users, ctxs = [], [], []
        for name, target in contexts.items():
            spec = dict(target) if isinstance(target, Mapping) else {"server": target}
            server = spec.get("server") or self.url
            clusters.append({"name": f"{name}-cluster", "cluster": {"server": server}})
            users.append({"name": f"{name}-user", "user": {}})
            ctxs.append(
                {
                    "name": name,
                    "context": {
                        "cluster": f"{name}-cluster",
                        "user": f"{name}-user",
                        "namespace": spec.get("namespace") or namespace,
                    },
                }
            )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": clusters,
            "users": users,
            "contexts": ctxs,
            "current-context": current or next(iter(contexts)),
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path
