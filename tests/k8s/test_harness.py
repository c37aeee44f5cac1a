"""Tests of the Kubernetes test harness itself, driven by the official ``kubernetes`` client."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from .emulator import KubeEmulator, unused_url
from .fixtures import *  # noqa: F403
from .operator import COMPLETION_INDEX, JOB_NAME, JOB_ROLE, FakeOperator

G1, V1, PJ = "kubeflow.org", "v1", "pytorchjobs"
G2, V2, TJ = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
NS = "default"
TIMEOUT = 5  # every client stream below carries this _request_timeout


def pytorchjob(name: str = "j1", workers: int = 2, **labels: str) -> dict[str, Any]:
    def replica(n: int) -> dict[str, Any]:
        container = {"name": "pytorch", "image": "python:3.11", "command": ["python", "-c", "1"]}
        return {"replicas": n, "template": {"spec": {"containers": [container]}}}

    specs = {"Master": replica(1)}
    if workers:
        specs["Worker"] = replica(workers)
    return {
        "apiVersion": f"{G1}/{V1}",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "labels": labels},
        "spec": {"pytorchReplicaSpecs": specs},
    }


def trainjob(name: str = "t1", nodes: int = 2, runtime: str = "torch-distributed") -> dict:
    return {
        "apiVersion": f"{G2}/{V2}",
        "kind": "TrainJob",
        "metadata": {"name": name},
        "spec": {
            "runtimeRef": {"name": runtime},
            "trainer": {"numNodes": nodes, "image": "python:3.11", "command": ["python"]},
        },
    }


def message(exc: ApiException) -> str:
    """The ``message`` of the Status body of an ApiException."""
    return json.loads(exc.body)["message"]


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` until it holds (fails the test after ``timeout`` seconds)."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting for a condition"
        time.sleep(0.01)


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``fn`` in a thread; the returned list gets its result or exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


@pytest.fixture
def co(kube_api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


@pytest.fixture
def core(kube_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


@pytest.fixture
def job(co: client.CustomObjectsApi, operator: FakeOperator) -> Iterator[Any]:
    """A created PyTorchJob (master + 2 workers) with its pods created (Pending)."""
    co.create_namespaced_custom_object(G1, V1, NS, PJ, pytorchjob())
    handle = operator.job("pytorchjob", NS, "j1")
    handle.create_pods()
    yield handle


# ---- store semantics ---------------------------------------------------------------------------


def test_create_returns_201_body_with_server_fields(
    co: client.CustomObjectsApi, kube: KubeEmulator
) -> None:
    data, status, _ = co.create_namespaced_custom_object_with_http_info(
        G1, V1, NS, PJ, pytorchjob()
    )
    meta = data["metadata"]
    assert status == 201
    assert meta["name"] == "j1" and meta["namespace"] == NS
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z")
    rv = int(meta["resourceVersion"])
    patched = co.patch_namespaced_custom_object(
        G1, V1, NS, PJ, "j1", {"metadata": {"labels": {"x": "y"}}}
    )
    assert int(patched["metadata"]["resourceVersion"]) > rv
    assert patched["metadata"]["uid"] == meta["uid"]
    assert kube.get(PJ, NS, "j1")["metadata"]["labels"] == {"x": "y"}
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(G1, V1, NS, PJ, pytorchjob())
    assert err.value.status == 409 and '"j1" already exists' in message(err.value)
    generated = co.create_namespaced_custom_object(
        G1, V1, NS, PJ, {**pytorchjob(), "metadata": {"generateName": "gen-"}}
    )
    assert generated["metadata"]["name"].startswith("gen-")


def test_status_subresource_and_conflicts(co: client.CustomObjectsApi) -> None:
    co.create_namespaced_custom_object(G1, V1, NS, PJ, {**pytorchjob(), "status": {"x": 1}})
    obj = co.get_namespaced_custom_object(G1, V1, NS, PJ, "j1")
    assert "status" not in obj  # dropped on create, as for CRDs with a status subresource
    co.patch_namespaced_custom_object(G1, V1, NS, PJ, "j1", {"status": {"ignored": True}})
    status = {"status": {"conditions": [{"type": "Created", "status": "True"}]}, "spec": {}}
    after = co.patch_namespaced_custom_object_status(G1, V1, NS, PJ, "j1", status)
    assert after["status"] == {"conditions": [{"type": "Created", "status": "True"}]}
    assert after["spec"] == obj["spec"] and after["metadata"]["generation"] == 1
    stale = {**after, "metadata": {**after["metadata"], "resourceVersion": "1"}}
    with pytest.raises(ApiException) as err:
        co.replace_namespaced_custom_object(G1, V1, NS, PJ, "j1", stale)
    assert err.value.status == 409
    fresh = {**after, "spec": {"pytorchReplicaSpecs": {}}}
    replaced = co.replace_namespaced_custom_object(G1, V1, NS, PJ, "j1", fresh)
    assert replaced["metadata"]["generation"] == 2 and replaced["status"] == after["status"]
    jp = [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]
    patched = co.patch_namespaced_custom_object(
        G1, V1, NS, PJ, "j1", jp, _content_type="application/json-patch+json"
    )
    assert patched["metadata"]["labels"] == {"a": "b"}


def test_label_and_field_selectors(
    co: client.CustomObjectsApi, core: client.CoreV1Api, operator: FakeOperator
) -> None:
    for name, team in (("a1", "red"), ("a2", "blue"), ("a3", "")):
        labels = {"team": team} if team else {}
        co.create_namespaced_custom_object(G1, V1, NS, PJ, pytorchjob(name, 0, **labels))

    def names(selector: str = "", field: str = "") -> list[str]:
        items = co.list_namespaced_custom_object(
            G1, V1, NS, PJ, label_selector=selector, field_selector=field
        )["items"]
        return [i["metadata"]["name"] for i in items]

    assert names() == ["a1", "a2", "a3"]
    assert names("team=red") == ["a1"]
    assert names("team==blue") == ["a2"]
    assert names("team!=red") == ["a2", "a3"]
    assert names("team in (red, blue)") == ["a1", "a2"]
    assert names("team notin (red)") == ["a2", "a3"]
    assert names("team") == ["a1", "a2"]
    assert names("!team") == ["a3"]
    assert names("team in (red,blue),team!=blue") == ["a1"]
    assert names(field="metadata.name=a2") == ["a2"]
    assert names("team", "metadata.name!=a1") == ["a2"]
    with pytest.raises(ApiException) as err:
        names("team in red")
    assert err.value.status == 400

    pod = operator.job("pytorchjob", NS, "a1")
    pod.create_pods()
    operator.event(pod.pod(0), "BackOff", "Back-off restarting", type="Warning")
    events = core.list_namespaced_event(NS, field_selector="involvedObject.name=a1-master-0")
    reasons = [e.reason for e in events.items]
    assert "BackOff" in reasons and "Scheduled" in reasons
    assert all(e.involved_object.name == "a1-master-0" for e in events.items)
    selected = core.list_namespaced_pod(NS, label_selector=f"{JOB_NAME}=a1,{JOB_ROLE}=master")
    assert [p.metadata.name for p in selected.items] == ["a1-master-0"]


# ---- watch -------------------------------------------------------------------------------------


def test_watch_sees_added_modified_deleted(co: client.CustomObjectsApi, kube: KubeEmulator) -> None:
    co.create_namespaced_custom_object(G1, V1, NS, PJ, pytorchjob("other", 0))
    rv = co.list_namespaced_custom_object(G1, V1, NS, PJ)["metadata"]["resourceVersion"]
    seen: list[tuple[str, str, str]] = []

    def consume() -> None:
        w = watch.Watch()
        for ev in w.stream(
            co.list_namespaced_custom_object, G1, V1, NS, PJ,
            field_selector="metadata.name=j1", resource_version=rv, timeout_seconds=3,
            _request_timeout=TIMEOUT,
        ):  # fmt: skip
            conds = (ev["object"].get("status") or {}).get("conditions") or [{}]
            seen.append((ev["type"], ev["object"]["metadata"]["name"], conds[-1].get("type", "")))
            if ev["type"] == "DELETED":
                w.stop()

    thread, out = in_thread(consume)
    kube.create(PJ, pytorchjob(), NS)
    status = {"status": {"conditions": [{"type": "Running", "status": "True"}]}}
    kube.patch(PJ, NS, "j1", status, subresource="status")
    kube.patch(PJ, NS, "other", {"metadata": {"labels": {"a": "b"}}})
    kube.delete(PJ, NS, "j1")
    thread.join(TIMEOUT)
    assert not thread.is_alive() and out == [None]
    assert seen == [
        ("ADDED", "j1", ""),
        ("MODIFIED", "j1", "Running"),
        ("DELETED", "j1", "Running"),
    ]


def test_watch_ends_at_timeout_seconds(core: client.CoreV1Api) -> None:
    start = time.monotonic()
    events = list(
        watch.Watch().stream(
            core.list_namespaced_pod, NS, timeout_seconds=1, _request_timeout=TIMEOUT
        )
    )
    elapsed = time.monotonic() - start
    assert events == [] and 0.9 <= elapsed < 2.5


def test_watch_resumes_from_resource_version_and_expires(
    core: client.CoreV1Api, job: Any, kube: KubeEmulator
) -> None:
    listed = core.list_namespaced_pod(NS)
    assert len(listed.items) == 3
    rv = listed.metadata.resource_version
    job.run(0)
    stream = watch.Watch().stream(
        core.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=1,
        _request_timeout=TIMEOUT,
    )  # fmt: skip
    events = [(e["type"], e["object"].metadata.name, e["object"].status.phase) for e in stream]
    assert events[-1] == ("MODIFIED", "j1-master-0", "Running")
    assert {name for _, name, _ in events} == {"j1-master-0"}
    kube.compact()
    with pytest.raises(ApiException) as err:
        list(
            watch.Watch().stream(
                core.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=1,
                _request_timeout=TIMEOUT,
            )
        )  # fmt: skip
    assert err.value.status == 410


# ---- logs --------------------------------------------------------------------------------------


def test_log_follow_streams_live_and_ends_with_container(core: client.CoreV1Api, job: Any) -> None:
    job.run(1)
    job.log(1, ["epoch 0"])
    chunks: list[tuple[float, str]] = []

    def follow() -> None:
        resp = core.read_namespaced_pod_log(
            "j1-worker-0", NS, follow=True, _preload_content=False, _request_timeout=TIMEOUT
        )
        for chunk in resp.stream(1024):
            chunks.append((time.monotonic(), chunk.decode()))

    thread, out = in_thread(follow)
    wait_until(lambda: "".join(c for _, c in chunks) == "epoch 0\n")
    job.log(1, ["epoch 1"])
    wait_until(lambda: "".join(c for _, c in chunks) == "epoch 0\nepoch 1\n")
    assert thread.is_alive()  # the lines arrived live, before the container ended
    job.exit(1, 0)
    thread.join(TIMEOUT)
    assert not thread.is_alive() and out == [None]
    assert core.read_namespaced_pod_log("j1-worker-0", NS, tail_lines=1) == "epoch 1\n"


def test_log_previous_after_restart(core: client.CoreV1Api, job: Any, kube: KubeEmulator) -> None:
    job.run(0)
    job.log(0, "first run\n")
    job.restart(0, exit_code=137, reason="OOMKilled")
    job.log(0, "second run\n")
    pod = core.read_namespaced_pod("j1-master-0", NS)
    cstatus = pod.status.container_statuses[0]
    assert cstatus.restart_count == 1 and cstatus.state.running is not None
    assert cstatus.last_state.terminated.reason == "OOMKilled"
    assert core.read_namespaced_pod_log("j1-master-0", NS) == "second run\n"
    assert core.read_namespaced_pod_log("j1-master-0", NS, previous=True) == "first run\n"
    job.restart(0, crash_loop=True)  # waiting in CrashLoopBackOff: logs of the last run
    assert core.read_namespaced_pod_log("j1-master-0", NS) == "second run\n"
    assert core.read_namespaced_pod_log("j1-master-0", NS, previous=True) == "second run\n"
    assert kube.log_text(NS, "j1-master-0", previous=True) == "first run\n"


def test_log_options(core: client.CoreV1Api, job: Any, kube: KubeEmulator) -> None:
    job.run(0)
    job.log(0, "one\ntwo\nthr")
    job.log(0, "ee\n")
    read = core.read_namespaced_pod_log
    assert read("j1-master-0", NS, tail_lines=2) == "two\nthree\n"
    assert read("j1-master-0", NS, tail_lines=0) == ""
    assert read("j1-master-0", NS, limit_bytes=6) == "one\ntw"
    stamped = read("j1-master-0", NS, timestamps=True).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two", "three"]
    assert all(line[:30].endswith("Z") and line[4] == "-" for line in stamped)
    assert read("j1-master-0", NS, since_seconds=60) == "one\ntwo\nthree\n"

    def age(srv: Any) -> None:  # pretend the lines so far were written 10 seconds ago
        records = srv.logs[NS, "j1-master-0", "pytorch"][-1].records
        records[:] = [(stamp - 10, line) for stamp, line in records]

    kube.call(age)
    job.log(0, "four\n")
    assert read("j1-master-0", NS, since_seconds=1) == "four\n"
    resp = read(
        "j1-master-0", NS, follow=True, tail_lines=1, _preload_content=False,
        _request_timeout=TIMEOUT,
    )  # fmt: skip
    job.end_log(0)
    assert b"".join(resp.stream(1024)) == b"four\n"


def test_log_answers_400_while_waiting(core: client.CoreV1Api, job: Any) -> None:
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("j1-master-0", NS)
    assert err.value.status == 400
    assert (
        'container "pytorch" in pod "j1-master-0" is waiting to start: ContainerCreating'
        in message(err.value)
    )
    job.waiting(0, "ImagePullBackOff")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("j1-master-0", NS, follow=True, _request_timeout=TIMEOUT)
    assert "trying and failing to pull image" in message(err.value)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("j1-master-0", NS, previous=True)
    assert "previous terminated container" in message(err.value)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("j1-worker-0", NS, container="nope")
    assert "container nope is not valid" in message(err.value)
    job.unschedulable(2)
    assert core.read_namespaced_pod_log("j1-worker-1", NS) == ""  # not scheduled: empty


# ---- discovery, kubeconfig, bookkeeping ----------------------------------------------------------


def test_discovery_follows_installed_crds(kube_factory: Callable[..., KubeEmulator]) -> None:
    def api_for(emulator: KubeEmulator) -> client.ApiClient:
        cfg = client.Configuration()
        cfg.host = emulator.url
        return client.ApiClient(cfg)

    only_v2 = api_for(kube_factory(crds={"v2"}))
    groups = [g.name for g in client.ApisApi(only_v2).get_api_versions().groups]
    assert "trainer.kubeflow.org" in groups and "kubeflow.org" not in groups
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(only_v2).get_api_resources(G1, V1)
    assert err.value.status == 404
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(only_v2).list_namespaced_custom_object(G1, V1, NS, PJ)
    assert err.value.status == 404
    resources = client.CustomObjectsApi(only_v2).get_api_resources(G2, V2).resources
    assert {r.name for r in resources} >= {
        "trainjobs",
        "trainjobs/status",
        "clustertrainingruntimes",
    }
    runtimes = client.CustomObjectsApi(only_v2).list_cluster_custom_object(
        G2, V2, "clustertrainingruntimes"
    )
    assert sorted(r["metadata"]["name"] for r in runtimes["items"]) == [
        "jax-distributed",
        "torch-distributed",
        "xgboost-distributed",
    ]

    none = api_for(kube_factory(crds=()))
    for group, version in ((G1, V1), (G2, V2)):
        with pytest.raises(ApiException):
            client.CustomObjectsApi(none).get_api_resources(group, version)
    with pytest.raises(ApiException) as err:
        client.ApiextensionsV1Api(none).read_custom_resource_definition("pytorchjobs.kubeflow.org")
    assert err.value.status == 404
    core_names = {r.name for r in client.CoreV1Api(none).get_api_resources().resources}
    assert {"pods", "pods/log", "events", "configmaps", "namespaces", "nodes"} <= core_names
    assert client.CoreApi(none).get_api_versions().versions == ["v1"]


def test_kubeconfig_contexts(kube: KubeEmulator, kubeconfig: Path, tmp_path: Path) -> None:
    assert os.environ["KUBECONFIG"] == str(kubeconfig)
    api = config.new_client_from_config(config_file=str(kubeconfig))
    assert [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items] == ["default"]
    path = kube.write_kubeconfig(
        tmp_path / "multi",
        contexts={"good": None, "broken": unused_url(), "team": {"namespace": "team-a"}},
        current="broken",
    )
    contexts, active = config.list_kube_config_contexts(config_file=str(path))
    assert [c["name"] for c in contexts] == ["good", "broken", "team"]
    assert active["name"] == "broken" and contexts[2]["context"]["namespace"] == "team-a"
    good = config.new_client_from_config(config_file=str(path), context="good")
    assert client.CoreV1Api(good).list_node().items[0].metadata.name == "node-1"
    broken = config.new_client_from_config(config_file=str(path))
    broken.configuration.retries = 0
    with pytest.raises(urllib3.exceptions.HTTPError):
        client.CoreV1Api(broken).list_namespace(_request_timeout=2)


def test_requests_are_recorded_without_harness_calls(
    core: client.CoreV1Api, kube: KubeEmulator, operator: FakeOperator
) -> None:
    kube.create("configmaps", {"metadata": {"name": "cm"}, "data": {"a": "1"}}, NS)
    core.read_namespaced_config_map("cm", NS)
    core.list_namespaced_pod(NS, label_selector="a=b")
    assert kube.requests() == [
        ("GET", "/api/v1/namespaces/default/configmaps/cm"),
        ("GET", "/api/v1/namespaces/default/pods?labelSelector=a%3Db"),
    ]
    assert ("POST", "/api/v1/namespaces/default/configmaps") in kube.requests(include_harness=True)
    kube.clear_requests()
    assert kube.requests() == []


def test_injected_faults(co: client.CustomObjectsApi, kube: KubeEmulator) -> None:
    kube.fail("POST", r"/pytorchjobs$", status=503, reason="ServiceUnavailable", message="busy")
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(G1, V1, NS, PJ, pytorchjob())
    assert err.value.status == 503 and "busy" in message(err.value)
    assert co.create_namespaced_custom_object(G1, V1, NS, PJ, pytorchjob())["metadata"]["uid"]


def test_stop_ends_open_streams(core: client.CoreV1Api, job: Any, kube: KubeEmulator) -> None:
    job.run(0)

    def follow() -> str:
        resp = core.read_namespaced_pod_log(
            "j1-master-0", NS, follow=True, _preload_content=False, _request_timeout=TIMEOUT
        )
        return b"".join(resp.stream(1024)).decode()

    def watch_all() -> int:
        return len(
            list(watch.Watch().stream(core.list_namespaced_pod, NS, _request_timeout=TIMEOUT))
        )

    kube.clear_requests()
    threads = [in_thread(follow), in_thread(watch_all)]
    wait_until(lambda: len(kube.requests()) == 2)
    time.sleep(0.1)  # let both responses start streaming
    start = time.monotonic()
    kube.stop()
    for thread, _ in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert time.monotonic() - start < 2


# ---- the fake operator ---------------------------------------------------------------------------


def _env(pod: dict[str, Any], container: str) -> dict[str, Any]:
    c = next(c for c in pod["spec"]["containers"] if c["name"] == container)
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env") or []}


def test_pytorchjob_runs_to_success(
    co: client.CustomObjectsApi, core: client.CoreV1Api, operator: FakeOperator
) -> None:
    script = operator.background(
        operator.run_to_success, "pytorchjob", NS, logs={0: ["loss=0.1"], 2: "w1 done\n"},
        pause=0.02,
    )  # fmt: skip
    co.create_namespaced_custom_object(G1, V1, NS, PJ, pytorchjob(workers=2))
    states: list[str] = []
    for ev in watch.Watch().stream(
        co.list_namespaced_custom_object, G1, V1, NS, PJ, timeout_seconds=3,
        _request_timeout=TIMEOUT,
    ):  # fmt: skip
        conds = (ev["object"].get("status") or {}).get("conditions") or []
        state = conds[-1]["type"] if conds else ""
        if not states or states[-1] != state:
            states.append(state)
        if state == "Succeeded":
            break
    handle = script.result(TIMEOUT)
    assert states[-3:] == ["Created", "Running", "Succeeded"]
    job = co.get_namespaced_custom_object(G1, V1, NS, PJ, "j1")
    conds = {c["type"]: c for c in job["status"]["conditions"]}
    assert conds["Running"]["status"] == "False" and conds["Succeeded"]["status"] == "True"
    assert conds["Succeeded"]["reason"] == "PyTorchJobSucceeded"
    assert conds["Succeeded"]["message"] == "PyTorchJob j1 is successfully completed."
    assert job["status"]["replicaStatuses"]["Worker"]["succeeded"] == 2
    assert job["status"]["completionTime"] and job["status"]["startTime"]

    pods = {p.metadata.name: p for p in core.list_namespaced_pod(NS).items}
    assert sorted(pods) == ["j1-master-0", "j1-worker-0", "j1-worker-1"]
    labels = pods["j1-worker-1"].metadata.labels
    assert labels["training.kubeflow.org/replica-type"] == "worker"
    assert labels["training.kubeflow.org/replica-index"] == "1"
    assert JOB_ROLE not in labels and pods["j1-master-0"].metadata.labels[JOB_ROLE] == "master"
    assert pods["j1-worker-1"].metadata.owner_references[0].kind == "PyTorchJob"
    env = _env(handle.pod(2), "pytorch")
    assert env["RANK"] == "2" and env["WORLD_SIZE"] == "3" and env["PET_NNODES"] == "3"
    assert env["MASTER_ADDR"] == "j1-master-0" and env["MASTER_PORT"] == "23456"
    assert [c["name"] for c in handle.pod(1)["spec"]["initContainers"]] == ["init-pytorch"]
    assert all(p.status.phase == "Succeeded" for p in pods.values())
    assert core.read_namespaced_pod_log("j1-master-0", NS) == "loss=0.1\n"
    assert core.read_namespaced_pod_log("j1-worker-1", NS) == "w1 done\n"


def test_trainjob_runs_to_failure(
    co: client.CustomObjectsApi, core: client.CoreV1Api, operator: FakeOperator
) -> None:
    co.create_namespaced_custom_object(G2, V2, NS, TJ, trainjob(nodes=2))
    handle = operator.run_to_failure("trainjob", NS, failing_rank=1, log="Traceback: boom\n")
    pods = core.list_namespaced_pod(
        NS,
        label_selector="jobset.sigs.k8s.io/jobset-name=t1,jobset.sigs.k8s.io/replicatedjob-name=node",
    ).items
    names = sorted(p.metadata.name for p in pods)
    assert [n[: len("t1-node-0-0-")] for n in names] == ["t1-node-0-0-", "t1-node-0-1-"]
    assert all(len(n) == len("t1-node-0-0-abcde") for n in names)
    rank1 = handle.pod(1)
    assert rank1["metadata"]["labels"][COMPLETION_INDEX] == "1"
    assert rank1["metadata"]["annotations"][COMPLETION_INDEX] == "1"
    assert rank1["spec"]["containers"][0]["name"] == "node"
    env = _env(rank1, "node")
    assert env["PET_NNODES"] == "2" and env["PET_MASTER_ADDR"] == "t1-node-0-0.t1"
    assert env["PET_NODE_RANK"]["fieldRef"]["fieldPath"].endswith(f"['{COMPLETION_INDEX}']")
    terminated = rank1["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 1 and terminated["reason"] == "Error"
    status = co.get_namespaced_custom_object(G2, V2, NS, TJ, "t1")["status"]
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Failed", "True", "FailedJobs")
    ]
    assert status["jobsStatus"][0]["failed"] == 2
    log = core.read_namespaced_pod_log(handle.pod_name(1), NS)
    assert log == "Traceback: boom\n"


def test_xgboost_env_restart_and_delete(
    co: client.CustomObjectsApi, core: client.CoreV1Api, operator: FakeOperator, kube: KubeEmulator
) -> None:
    container = {"name": "xgboost", "image": "x"}
    body = {
        "apiVersion": f"{G1}/{V1}",
        "kind": "XGBoostJob",
        "metadata": {"name": "x1"},
        "spec": {"xgbReplicaSpecs": {
            "Master": {"replicas": 1, "template": {"spec": {"containers": [container]}}},
            "Worker": {"replicas": 2, "template": {"spec": {"containers": [container]}}},
        }},
    }  # fmt: skip
    co.create_namespaced_custom_object(G1, V1, NS, "xgboostjobs", body)
    handle = operator.wait_for_job("xgboost", NS)
    handle.create_pods()
    handle.run_all()
    env = _env(handle.pod(2), "xgboost")
    assert env["RANK"] == "2" and env["WORLD_SIZE"] == "3" and env["MASTER_PORT"] == "9999"
    assert env["WORKER_ADDRS"] == "x1-worker-0,x1-worker-1"
    handle.restart(1)
    handle.mark_restarting("restarting now")
    assert handle.conditions() == [("Created", "True"), ("Restarting", "True")]
    handle.mark_running()
    assert handle.conditions() == [("Created", "True"), ("Running", "True")]
    assert handle.pod(1)["status"]["containerStatuses"][0]["restartCount"] == 1
    co.delete_namespaced_custom_object(G1, V1, NS, "xgboostjobs", "x1")
    handle.delete_pods()
    assert core.list_namespaced_pod(NS).items == []
    assert [t for t, _ in kube.history("pods", NS, "x1-master-0")][-1] == "DELETED"


def test_v1_webhook_rejects_invalid_jobs(
    co: client.CustomObjectsApi, operator: FakeOperator
) -> None:
    bad = pytorchjob()
    bad["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["name"] = "x"
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(G1, V1, NS, PJ, bad)
    assert err.value.status == 403
    assert "must have at least one container with name pytorch" in message(err.value)
