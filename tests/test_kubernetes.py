"""The Kubernetes backend over real HTTP against an emulated API server and a fake operator.

The official ``kubernetes`` client talks to ``k8s.emulator.KubeEmulator`` on loopback; a
``FakeOperator`` moves jobs and pods through the real conditions and phases.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path

import pytest
import yaml
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from jupyter_training.backends.base import SubmitError
from jupyter_training.client import TrainingClient
from jupyter_training.errors import JobFailedError
from jupyter_training.events import CANCELLED, FAILED, PENDING, RESTARTING, RUNNING, SUCCEEDED
from jupyter_training.runtime import records
from jupyter_training.runtime.payload import Payload
from jupyter_training.spec import JobSpec

from conftest import wait_until
from k8s.emulator import unused_url
from k8s.fixtures import *  # noqa: F403 - pytest fixtures: kube, kubeconfig, operator, ...
from k8s.kubelet import run_pods_like_a_kubelet

NS = "default"


@pytest.fixture
def client(settings, kubeconfig):
    return TrainingClient(settings)


def k8s_spec(**changes) -> JobSpec:
    return JobSpec(backend="kubernetes", **{"api": "v1", "workers": 2, **changes})


class Consumer:
    """Reads a job's event stream on a thread, like the blocked magic does."""

    def __init__(self, client: TrainingClient, job_id: str) -> None:
        self.events: list = []
        self.thread = threading.Thread(target=self._run, args=(client, job_id), daemon=True)
        self.thread.start()

    def _run(self, client, job_id):
        for event in client.events(job_id):
            self.events.append(event)

    def join(self, timeout: float = 30) -> list:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "event stream did not end"
        return self.events

    def phases(self) -> list[str]:
        return [e.data["phase"] for e in self.events if e.kind == "phase"]

    def lines(self, rank: int) -> list[str]:
        return [e.data["line"] for e in self.events if e.kind == "log" and e.rank == rank]

    def worker(self, rank: int) -> list[dict]:
        return [e.data for e in self.events if e.kind == "worker" and e.rank == rank]


def error_record(exc_type: str, message: str, rank: int) -> str:
    trace = f'Traceback (most recent call last):\n  File "<cell>", line 3\n{exc_type}: {message}\n'
    record = {
        "type": "error",
        "exc_type": exc_type,
        "message": message,
        "traceback": trace,
        "rank": rank,
    }
    return trace + records.PREFIX + json.dumps(record) + "\n"


# -- discovery and connection --------------------------------------------------------------


@pytest.mark.parametrize(
    ("crds", "expected"), [({"v1", "v2"}, "v2"), ({"v1"}, "v1"), ({"v2"}, "v2")]
)
def test_auto_api_prefers_what_the_cluster_has(
    kube_factory, tmp_path, monkeypatch, settings, crds, expected
):
    kube = kube_factory(crds=crds)
    monkeypatch.setenv("KUBECONFIG", str(kube.write_kubeconfig(tmp_path / "kc")))
    record = TrainingClient(settings).submit(k8s_spec(api="auto"), "print(1)", {})
    assert record.spec.kubernetes.api == expected
    kind = "trainjobs" if expected == "v2" else "pytorchjobs"
    assert kube.get(kind, NS, record.name)["metadata"]["labels"]["jupyter-training.io/job-id"] == (
        record.id
    )


def test_no_operator_is_a_clear_error_and_nothing_is_created(
    kube_factory, tmp_path, monkeypatch, settings
):
    kube = kube_factory(crds=set())
    monkeypatch.setenv("KUBECONFIG", str(kube.write_kubeconfig(tmp_path / "kc")))
    with pytest.raises(SubmitError) as caught:
        TrainingClient(settings).submit(k8s_spec(api="auto"), "print(1)", {})
    message = str(caught.value)
    assert "neither PyTorchJob/XGBoostJob (kubeflow.org/v1) nor TrainJob" in message
    assert "kubectl apply" in message
    assert kube.objects("configmaps", NS) == []


def test_missing_api_version_names_the_crd(kube_factory, tmp_path, monkeypatch, settings):
    kube = kube_factory(crds={"v1"})
    monkeypatch.setenv("KUBECONFIG", str(kube.write_kubeconfig(tmp_path / "kc")))
    with pytest.raises(SubmitError, match=r"--api v2: the cluster has no TrainJob CRD"):
        TrainingClient(settings).submit(k8s_spec(api="v2"), "print(1)", {})


def test_context_selects_cluster_and_namespace(kube, tmp_path, monkeypatch, settings):
    path = kube.write_kubeconfig(
        tmp_path / "kc",
        contexts={
            "emulator": None,
            "team": {"server": kube.url, "namespace": "team-a"},
            "broken": unused_url(),
        },
        current="emulator",
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    client = TrainingClient(settings)
    record = client.submit(k8s_spec(context="team"), "print(1)", {})
    assert record.spec.kubernetes.namespace == "team-a"
    assert kube.get("pytorchjobs", "team-a", record.name) is not None
    with pytest.raises(SubmitError, match="cannot reach the Kubernetes API"):
        client.submit(k8s_spec(context="broken"), "print(1)", {})
    with pytest.raises(SubmitError, match=r"no usable Kubernetes configuration.*'nope'"):
        client.submit(k8s_spec(context="nope"), "print(1)", {})


def test_outside_a_cluster_without_kubeconfig(settings, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(SubmitError, match="no usable Kubernetes configuration"):
        TrainingClient(settings).submit(k8s_spec(), "print(1)", {})


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, r"rejected our credentials \(401 Unauthorized\)"),
        (403, "forbids creating PyTorchJob .* \\(403 Forbidden\\).*docs/kubernetes.md"),
    ],
)
def test_auth_errors_roll_back_the_configmap(client, kube, status, expected):
    kube.fail("POST", r".*/pytorchjobs$", status=status, message="user cannot create pytorchjobs")
    with pytest.raises(SubmitError, match=expected):
        client.submit(k8s_spec(name="denied"), "print(1)", {})
    assert kube.objects("configmaps", NS) == []  # nothing half-created
    (record,) = client.list()
    assert (record.phase, record.name, record.cell) == (FAILED, "denied", "print(1)")


def test_name_clash_names_the_flag(client, kube):
    client.submit(k8s_spec(name="twin"), "print(1)", {})
    with pytest.raises(SubmitError, match="--name: a PyTorchJob named 'twin' already exists"):
        client.submit(k8s_spec(name="twin"), "print(2)", {})
    assert [c["metadata"]["name"] for c in kube.objects("configmaps", NS)] == ["twin-payload"]


# -- objects ----------------------------------------------------------------------------------


def test_submission_creates_an_owned_configmap_with_runtime_and_payload(client, kube):
    record = client.submit(
        k8s_spec(workers=3, name="owned", env={"SEED": "3"}), "print(x)", {"x": 41}
    )
    job = kube.get("pytorchjobs", NS, "owned")
    configmap = kube.get("configmaps", NS, "owned-payload")
    (owner,) = configmap["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "PyTorchJob",
        "owned",
        job["metadata"]["uid"],
    )
    assert "jupyter_training.runtime.__main__.py" in configmap["data"]
    tmp = Path(record.workdir or ".")
    payload_file = tmp / f"payload-{record.id}.bin"
    payload_file.write_bytes(base64.b64decode(configmap["binaryData"]["payload.bin"]))
    try:
        payload = Payload.read(payload_file)
    finally:
        payload_file.unlink()
    assert payload.cell == "print(x)"
    assert [v.name for v in payload.values] == ["x"]
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert (specs["Master"]["replicas"], specs["Worker"]["replicas"]) == (1, 2)
    container = specs["Worker"]["template"]["spec"]["containers"][0]
    assert {"name": "SEED", "value": "3"} in container["env"]


def test_payload_too_big_for_a_configmap_points_to_volume(client, kube, tmp_path):
    big = {"blob": b"x" * 2_000_000}
    with pytest.raises(SubmitError, match=r"more than a ConfigMap can carry.*--volume CLAIM:/PATH"):
        client.submit(k8s_spec(), "print(len(blob))", big)
    assert kube.objects("configmaps", NS) == []
    mount = tmp_path / "shared"
    mount.mkdir()
    record = client.submit(k8s_spec(volumes=[f"work:{mount}"]), "print(len(blob))", big)
    configmap = kube.get("configmaps", NS, f"{record.name}-payload")
    assert "binaryData" not in configmap
    on_volume = mount / ".jupyter-training" / record.id / "payload.bin"
    assert Payload.read(on_volume).values[0].name == "blob"
    container = kube.get("pytorchjobs", NS, record.name)["spec"]["pytorchReplicaSpecs"]["Master"][
        "template"
    ]["spec"]["containers"][0]
    assert container["command"][-1] == str(on_volume)
    assert {"name": "volume-0", "mountPath": str(mount)} in container["volumeMounts"]


def test_dry_run_prints_yaml_and_creates_nothing(ip, kubeconfig, kube):
    ip.run_cell("lr = 0.1", store_history=True)
    kube.clear_requests()
    with capture_output() as captured:
        ip.run_cell_magic(
            "train_distributed",
            "--backend kubernetes --api v1 -w 3 --gpus 1 --name dry --dry-run",
            "print(lr)",
        )
    documents = list(yaml.safe_load_all(captured.stdout))
    assert [d["kind"] for d in documents] == ["ConfigMap", "PyTorchJob"]
    limits = documents[1]["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"][
        "containers"
    ][0]["resources"]["limits"]
    assert limits == {"nvidia.com/gpu": "1"}
    assert not [r for r in kube.requests() if r[0] in ("POST", "PATCH", "DELETE")]
    assert kube.objects("pytorchjobs", NS) == []


def test_local_dry_run_shows_each_rank(ip):
    with capture_output() as captured:
        ip.run_cell_magic("train_distributed", "-f xgboost -w 2 --dry-run", "print(1)")
    out = captured.stdout
    assert "rank 1:" in out and "DMLC_TASK_ID=1" in out and "WORLD_SIZE=2" in out
    assert "MASTER_PORT=<free port>" in out


# -- streaming ----------------------------------------------------------------------------------


def test_pytorchjob_streams_phases_pods_and_logs_to_success(client, operator):
    record = client.submit(k8s_spec(workers=3), "print('hi')", {})
    stream = Consumer(client, record.id)
    job = operator.wait_for_job("pytorchjobs", NS, record.name)
    job.create_pods()
    job.mark_created()
    time.sleep(0.2)
    job.run_all()
    job.mark_running()
    for rank in range(3):
        job.log(rank, [f"epoch 0 rank {rank}", f"epoch 1 rank {rank}"])
    for rank in range(3):
        job.exit(rank, 0)
    job.succeed()
    stream.join()
    assert stream.phases()[-2:] == [RUNNING, SUCCEEDED]
    for rank in range(3):
        assert stream.lines(rank) == [f"epoch 0 rank {rank}", f"epoch 1 rank {rank}"]
        states = [w["state"] for w in stream.worker(rank)]
        assert states[0] in ("pending", "waiting") and "running" in states and "exited" in states
    final = client.get(record.id)
    assert final.phase == SUCCEEDED and final.started and final.finished


def test_logs_of_pending_pods_are_not_skipped(client, operator):
    record = client.submit(k8s_spec(workers=2), "print('hi')", {})
    stream = Consumer(client, record.id)
    job = operator.wait_for_job("pytorchjobs", NS, record.name)
    job.create_pods()
    job.unschedulable(1, "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    job.event(
        "FailedScheduling",
        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        rank=1,
        type="Warning",
    )
    job.run(0)
    job.mark_running()
    job.log(0, ["rank 0 waits for its peer"])
    time.sleep(0.3)
    job.run(1)
    job.log(1, ["rank 1 finally started"])
    job.exit(0, 0)
    job.exit(1, 0)
    job.succeed()
    stream.join()
    assert stream.lines(0) == ["rank 0 waits for its peer"]
    assert stream.lines(1) == ["rank 1 finally started"]
    waits = [
        w for w in stream.worker(1) if w.get("reason") in ("Unschedulable", "FailedScheduling")
    ]
    assert waits, stream.worker(1)


def test_failure_names_rank_exit_code_and_remote_exception(ip, kubeconfig, operator):
    def script():
        job = operator.wait_for_job("pytorchjobs", NS)
        job.create_pods()
        job.run_all()
        job.mark_running()
        job.log(0, ["rank 0 ok"])
        job.log(1, error_record("ValueError", "bad shard", 1))
        job.exit(1, 1)
        job.exit(0, 143)
        job.fail("PyTorchJob default/x is failed because 1 Worker replica(s) failed.")

    done = operator.background(script)
    with capture_output() as captured, pytest.raises(JobFailedError) as caught:
        ip.run_cell_magic("train_distributed", "--backend kubernetes --api v1 -w 2", "pass")
    done.result(10)
    err = caught.value
    assert (err.rank, err.exit_code, err.remote_type) == (1, 1, "ValueError")
    assert "rank 1 (pod " in str(err) and "exited with code 1: ValueError: bad shard" in str(err)
    assert "[rank 0] rank 0 ok" in captured.stdout


def test_oom_and_image_pull_reasons(client, operator):
    record = client.submit(k8s_spec(workers=2), "pass", {})
    stream = Consumer(client, record.id)
    job = operator.wait_for_job("pytorchjobs", NS, record.name)
    job.create_pods()
    job.run(0)
    job.exit(0, 137, reason="OOMKilled")
    job.fail("Master failed")
    stream.join()
    final = client.get(record.id)
    assert final.phase == FAILED
    assert final.failure["reason"].startswith("rank 0 (pod ")
    assert "was OOMKilled (exit code 137)" in final.failure["reason"]

    record = client.submit(k8s_spec(workers=2, image="example.com/missing:1"), "pass", {})
    stream = Consumer(client, record.id)
    job = operator.wait_for_job("pytorchjobs", NS, record.name)
    job.create_pods()
    job.waiting(1, "ImagePullBackOff")
    time.sleep(0.3)
    job.fail("deadline exceeded")
    stream.join()
    assert any(w.get("reason") == "ImagePullBackOff" for w in stream.worker(1))
    failure = client.get(record.id).failure
    assert (
        "rank 1 (pod " in failure["reason"]
        and "never started: ImagePullBackOff" in (failure["reason"])
    )


def test_restart_continues_logs_across_containers(client, operator):
    record = client.submit(k8s_spec(workers=2, max_restarts=2), "pass", {})
    stream = Consumer(client, record.id)
    job = operator.wait_for_job("pytorchjobs", NS, record.name)
    assert job.obj()["spec"]["runPolicy"]["backoffLimit"] == 2
    job.create_pods()
    job.run_all()
    job.mark_running()
    job.log(1, ["first life"])
    time.sleep(0.3)
    job.restart(1, exit_code=1)
    job.mark_restarting("Worker 0 restarted")
    job.log(1, ["second life"])
    job.mark_running()
    job.exit(0, 0)
    job.exit(1, 0)
    job.succeed()
    stream.join()
    assert stream.lines(1) == ["first life", "second life"]
    assert RESTARTING in stream.phases()
    assert any(w["state"] == "restarted" and w["restarts"] == 1 for w in stream.worker(1))


def test_crash_before_watching_falls_back_to_previous_log(client, operator):
    record = client.submit(k8s_spec(workers=1), "pass", {})
    job = operator.wait_for_job("pytorchjobs", NS, record.name)
    job.create_pods()
    job.run(0)
    job.log(0, ["traceback of the first crash"])
    job.restart(0, crash_loop=True, exit_code=1)
    job.run(0)
    job.log(0, ["after restart"])
    stream = Consumer(client, record.id)  # attaches only now
    time.sleep(0.5)
    job.exit(0, 0)
    job.succeed()
    stream.join()
    assert stream.lines(0) == ["traceback of the first crash", "after restart"] or sorted(
        stream.lines(0)
    ) == ["after restart", "traceback of the first crash"]


def test_cancel_deletes_with_foreground_propagation_and_keeps_history(client, kube, operator):
    record = client.submit(k8s_spec(name="to-cancel"), "pass", {})
    job = operator.wait_for_job("pytorchjobs", NS, record.name)
    job.create_pods()
    kube.clear_requests()
    final = client.cancel(record.id)
    assert final.phase == CANCELLED
    deletes = [r for r in kube.recorded() if r.method == "DELETE"]
    assert any("pytorchjobs/to-cancel" in r.path for r in deletes)
    assert any(
        json.loads(r.body or "{}").get("propagationPolicy") == "Foreground"
        for r in deletes
        if "pytorchjobs" in r.path
    )
    assert kube.get("pytorchjobs", NS, "to-cancel") is None
    assert kube.get("configmaps", NS, "to-cancel-payload") is None
    again = TrainingClient(client.settings).get(record.id)
    assert (again.phase, again.name, again.cell) == (CANCELLED, "to-cancel", "pass")


def test_job_deleted_elsewhere_fails_the_stream(client, kube, operator):
    record = client.submit(k8s_spec(), "pass", {})
    stream = Consumer(client, record.id)
    operator.wait_for_job("pytorchjobs", NS, record.name)
    time.sleep(0.3)
    kube.delete("pytorchjobs", NS, record.name)
    stream.join()
    assert stream.phases()[-1] == FAILED
    assert "deleted from the cluster" in client.get(record.id).message


def test_detached_job_status_and_finished_logs(client, operator):
    record = client.submit(k8s_spec(workers=2), "pass", {})
    operator.run_to_success("pytorchjobs", NS, record.name, logs={0: ["zero"], 1: ["one"]})
    assert client.get(record.id).phase == SUCCEEDED  # read from the job's conditions
    assert [(e.rank, e.data["line"]) for e in client.logs(record.id)] == [(0, "zero"), (1, "one")]
    assert [e.data["line"] for e in client.logs(record.id, rank=1)] == ["one"]


def test_xgboostjob_and_trainjob_round_trips(client, kube, operator):
    xgb = client.submit(k8s_spec(framework="xgboost", workers=2), "pass", {})
    stream = Consumer(client, xgb.id)
    operator.run_to_success("xgboostjobs", NS, xgb.name, logs={1: ["xgb rank 1"]}, pause=0.05)
    stream.join()
    assert stream.lines(1) == ["xgb rank 1"] and stream.phases()[-1] == SUCCEEDED

    tj = client.submit(k8s_spec(api="v2", workers=3), "pass", {})
    trainjob = kube.get("trainjobs", NS, tj.name)
    assert trainjob["spec"]["runtimeRef"]["name"] == "torch-distributed"
    assert trainjob["spec"]["trainer"]["numNodes"] == 3
    stream = Consumer(client, tj.id)
    operator.run_to_failure(
        "trainjobs",
        NS,
        tj.name,
        failing_rank=2,
        exit_code=3,
        log=error_record("KeyError", "'label'", 2),
        pause=0.05,
    )
    stream.join()
    assert stream.phases()[0] in (PENDING, RUNNING) and stream.phases()[-1] == FAILED
    failure = client.get(tj.id).failure
    assert (failure["rank"], failure["exit_code"], failure["exc_type"]) == (2, 3, "KeyError")


def test_trainjob_runtime_must_exist(client):
    with pytest.raises(
        SubmitError,
        match="--runtime: the cluster has no ClusterTrainingRuntime "
        "'mine'; it has jax-distributed, torch-distributed, xgboost-distributed",
    ):
        client.submit(k8s_spec(api="v2", runtime="mine"), "pass", {})


def test_requests_are_bounded_by_a_constant_plus_one_log_stream_per_pod(client, kube, operator):
    record = client.submit(k8s_spec(workers=4), "pass", {})
    kube.clear_requests()
    stream = Consumer(client, record.id)
    job = operator.wait_for_job("pytorchjobs", NS, record.name)
    job.create_pods()
    job.run_all()
    job.mark_running()
    for step in range(40):  # a long-running job: many updates, many log lines
        for rank in range(4):
            job.log(rank, [f"step {step}"])
        if step % 10 == 0:
            job.sync_status()
        time.sleep(0.01)
    for rank in range(4):
        job.exit(rank, 0)
    job.succeed()
    stream.join()
    requests = kube.requests()
    logs = [r for r in requests if "/log" in r[1]]
    watches = [r for r in requests if "watch=true" in r[1].lower()]
    assert len(logs) == 4
    assert len(watches) == 3
    assert len(requests) - len(logs) - len(watches) <= 4, requests


def test_cancel_and_logs_magics_on_kubernetes(ip, kubeconfig, kube, operator):
    with capture_output() as captured:
        ip.run_cell_magic("train_distributed", "--backend kubernetes --api v1 --detach", "pass")
    job = operator.wait_for_job("pytorchjobs", NS)
    job_id = job.obj()["metadata"]["labels"]["jupyter-training.io/job-id"]
    assert job_id in captured.stdout
    job.create_pods()
    job.run_all()
    job.log(0, ["hello"])
    with capture_output() as logs:
        ip.run_line_magic("train_logs", job_id)
    assert "[rank 0] hello" in logs.stdout
    with capture_output() as cancelled:
        ip.run_line_magic("train_cancel", job_id)
    assert CANCELLED in cancelled.stdout
    wait_until(lambda: kube.get("pytorchjobs", NS, job.name) is None, timeout=5)


def test_local_only_and_kubernetes_only_flags(ip):
    with pytest.raises(UsageError, match="--image: only applies to --backend kubernetes"):
        ip.run_cell_magic("train_distributed", "--image python:3.11", "pass")
    with pytest.raises(UsageError, match="--max-restarts: TrainJob"):
        ip.run_cell_magic(
            "train_distributed", "--backend kubernetes --api v2 --max-restarts 2 --dry-run", "pass"
        )


# -- the shipped runtime, run as a kubelet would ----------------------------------------------


def test_the_same_cell_runs_from_the_configmap_alone(
    ip, kubeconfig, kube, operator, tmp_path, monkeypatch
):
    pytest.importorskip("torch")
    (tmp_path / "helpers.py").write_text("def shout(x):\n    return f'sum={x}!'\n")
    ip.run_cell("offset = 10\ndef scale(v):\n    return v + offset\n", store_history=True)

    def kubelet():
        job = operator.wait_for_job("pytorchjobs", NS, timeout=30)
        job.create_pods()
        run_pods_like_a_kubelet(kube, job, tmp_path)

    done = operator.background(kubelet)
    cell = (
        "import torch, torch.distributed as dist, jupyter_training, helpers\n"
        "dist.init_process_group('gloo')\n"
        "t = torch.tensor([dist.get_rank() + 1.0])\n"
        "dist.all_reduce(t)\n"
        "print(helpers.shout(scale(t.item())), jupyter_training.__file__)\n"
    )
    monkeypatch.chdir(tmp_path)  # --files are relative to the notebook's directory
    with capture_output() as captured:
        ip.run_cell_magic(
            "train_distributed", "--backend kubernetes --api v1 -w 2 --files helpers.py", cell
        )
    done.result(30)
    out = captured.stdout
    for rank in (0, 1):
        line = next(x for x in out.splitlines() if x.startswith(f"[rank {rank}] sum="))
        assert "sum=13.0!" in line
        assert str(tmp_path / "opt" / "jupyter_training" / "__init__.py") in line


def test_in_cluster_without_a_service_account_is_a_clear_error(settings, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(
        SubmitError, match="no usable Kubernetes configuration in the pod's service account"
    ):
        TrainingClient(settings).submit(k8s_spec(), "pass", {})


def test_cancel_from_another_client_reads_as_cancelled(client, operator, settings):
    record = client.submit(k8s_spec(), "pass", {})
    stream = Consumer(client, record.id)
    operator.wait_for_job("pytorchjobs", NS, record.name).create_pods()
    time.sleep(0.3)
    TrainingClient(settings).cancel(record.id)  # e.g. the sidebar or another kernel
    stream.join()
    assert stream.phases()[-1] == CANCELLED


def test_allow_lists_apply_to_resolved_namespace_and_image(settings, kubeconfig, kube):
    from jupyter_training.spec import SpecError

    settings.allowed_namespaces = ["team-a"]
    settings.allowed_images = ["registry.example.com/"]
    client = TrainingClient(settings)
    with pytest.raises(SpecError, match=r"--namespace: 'default' is not allowed here"):
        client.submit(k8s_spec(), "pass", {})  # the kubeconfig's default namespace
    with pytest.raises(SpecError, match=r"--image: 'docker.io/pytorch/.*' is not allowed"):
        client.dry_run(k8s_spec(namespace="team-a"), "pass", {})
    record = client.submit(
        k8s_spec(namespace="team-a", image="registry.example.com/torch:2"), "pass", {}
    )
    assert kube.get("pytorchjobs", "team-a", record.name) is not None
    assert [r.phase for r in client.list()] == [PENDING, FAILED]  # the refusal is in history


# -- many jobs, every fault --------------------------------------------------------------------

FAULT_RUNS = 60


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _play(kind: str, client, kube, operator, record) -> tuple[str, str]:
    """Drive one job through ``kind``; returns (expected phase, text its message must hold)."""
    stream = Consumer(client, record.id)
    job = operator.wait_for_job("pytorchjobs", NS, record.name)
    job.create_pods()
    job.run_all()
    job.mark_running()
    job.log(0, ["step 1"])
    time.sleep(0.05)  # the watch sees the job running before it ends
    expected: tuple[str, str]
    if kind == "succeed":
        for rank in (0, 1):
            job.exit(rank, 0)
        job.succeed()
        expected = (SUCCEEDED, "")
    elif kind == "raise":
        job.log(1, error_record("KeyError", "'label'", 1))
        job.exit(1, 1)
        job.exit(0, 1)
        job.fail("Worker failed")
        expected = (FAILED, "KeyError: 'label'")
    elif kind == "oom":
        job.exit(0, 137, reason="OOMKilled")
        job.fail("Master failed")
        expected = (FAILED, "was OOMKilled (exit code 137)")
    elif kind == "restart":
        job.restart(1, exit_code=1)
        job.mark_restarting("Worker 0 restarted")
        job.mark_running()
        for rank in (0, 1):
            job.exit(rank, 0)
        job.succeed()
        expected = (SUCCEEDED, "")
    elif kind == "cancel":
        client.cancel(record.id)
        expected = (CANCELLED, "cancelled by user")
    else:  # deleted by someone else
        kube.delete("pytorchjobs", NS, record.name)
        expected = (FAILED, "deleted from the cluster")
    stream.join()
    assert stream.phases()[-1] == expected[0], (kind, stream.phases())
    if kind in ("succeed", "restart"):
        assert stream.lines(0) == ["step 1"], kind
    return expected


def test_sixty_kubernetes_jobs_with_every_fault_tell_the_truth(client, kube, operator):
    """10 of each: success, a raising rank, OOMKilled, a restart, a cancel, a job deleted
    by someone else. Each ends in the true phase with the cause named, and nothing leaks:
    no watch thread, no file descriptor, no object without an owner to collect it."""
    kinds = ["succeed", "raise", "oom", "restart", "cancel", "deleted"]
    threads = threading.active_count()
    kube.clear_requests()
    outcomes, fd_counts = [], []
    for i in range(FAULT_RUNS):
        kind = kinds[i % len(kinds)]
        record = client.submit(k8s_spec(name=f"fault-{i}"), "pass", {})
        phase, text = _play(kind, client, kube, operator, record)
        final = client.get(record.id)
        assert final.phase == phase, (kind, final.message)
        assert text in final.message, (kind, final.message)
        outcomes.append(final.phase)
        fd_counts.append(_open_fds())
    assert outcomes.count(SUCCEEDED) == 20
    assert outcomes.count(FAILED) == 30
    assert outcomes.count(CANCELLED) == 10
    wait_until(lambda: threading.active_count() <= threads, timeout=10)
    # pooled keep-alive connections (both ends: the emulator runs in this process) come and
    # go; a leak would grow with the number of jobs
    assert max(fd_counts[-10:]) <= max(fd_counts[:6]) + 4, fd_counts
    jobs = {j["metadata"]["uid"] for j in kube.objects("pytorchjobs", NS)}
    for configmap in kube.objects("configmaps", NS):
        owners = configmap["metadata"].get("ownerReferences") or []
        # the cluster's garbage collector removes it with its job (or at once if that is gone)
        assert len(owners) == 1 and owners[0]["kind"] == "PyTorchJob", configmap["metadata"]
        assert owners[0]["uid"] in jobs or not kube.get("pytorchjobs", NS, owners[0]["name"])
    assert len(kube.objects("configmaps", NS)) == FAULT_RUNS - 10  # cancelled: deleted by us
    per_job = len(kube.requests()) / FAULT_RUNS
    assert per_job <= 20, per_job  # a constant per job, whatever happens to it
