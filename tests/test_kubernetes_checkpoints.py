"""Checkpoints and elastic jobs on Kubernetes, over real HTTP against the emulated API server.

Checkpoints live on a claim (``--checkpoint CLAIM:PATH``, else the first ``--volume``) under
``<mount>/jupyter-training/checkpoints/<lineage>``; the kubelet stand-in backs every claim with
one local directory, so a job resumed with ``%train_resume`` finds what its parent saved. An
elastic job (``--workers MIN:MAX``) is a PyTorchJob with an ``elasticPolicy``, Worker replicas
only, torchrun in every pod; TrainJob (``--api v2``) has no elastic training upstream yet.
"""

from __future__ import annotations

import dataclasses
import pickle
import re

import pytest
import yaml
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from jupyter_training.backends.base import SubmitError
from jupyter_training.backends.kubernetes import manifests
from jupyter_training.backends.kubernetes.manifests import JobObjects
from jupyter_training.backends.kubernetes.targets import target_of
from jupyter_training.client import TrainingClient
from jupyter_training.errors import JobFailedError
from jupyter_training.events import FAILED, SUCCEEDED
from jupyter_training.spec import JobSpec, SpecError

from k8s.fixtures import *  # noqa: F403 - pytest fixtures: kube, kubeconfig, operator, ...
from k8s.kubelet import claim_dir, run_cell_on_cluster

NS = "default"
JOB_ID = "0123456789ab"

#: Ten steps, a checkpoint after each; ``steps`` lists the steps really taken, so a resumed
#: job that redid or skipped one would not end with 0..9. The first job (no checkpoint yet)
#: is SIGKILLed half-way, after saving step 4.
RESUMABLE_CELL = """
import os, signal
import jupyter_training as jt

ckpt = jt.latest_checkpoint()
state = ckpt.load() if ckpt else {"steps": []}
start = ckpt.step + 1 if ckpt else 0
print("start", start, "attempt", jt.restart_count(), "dir", jt.checkpoint_dir(), flush=True)
for step in range(start, 10):
    state["steps"].append(step)
    jt.save_checkpoint(state, step, keep=3)
    jt.report(step=step, total=10, done=len(state["steps"]))
    if step == 4 and ckpt is None and jt.rank() == 0:
        os.kill(os.getpid(), signal.SIGKILL)
steps = state["steps"]
"""


@pytest.fixture
def client(settings, kubeconfig):
    return TrainingClient(settings)


def objects(**changes) -> JobObjects:
    spec = JobSpec(backend="kubernetes", **{"api": "v1", "workers": 2, **changes})
    return JobObjects(
        job_id=JOB_ID,
        name="train",
        namespace=NS,
        spec=spec,
        target=target_of(spec),
        image="docker.io/pytorch/pytorch:2.5.1",
        payload=b"",
        runtime="torch-distributed" if spec.kubernetes.api == "v2" else None,
    )


def env_of(job: JobObjects) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in manifests._env(job)}


def pod_spec(manifest: dict) -> dict:
    if manifest["kind"] == "TrainJob":
        patch = manifest["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]
        return patch["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"][
            "spec"
        ]
    return manifest["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]


def claims_and_mounts(manifest: dict) -> tuple[dict[str, str], dict[str, str]]:
    """(volume name -> claim, mount path -> volume name) of the job's pods."""
    spec = pod_spec(manifest)
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in spec["volumes"]
        if "persistentVolumeClaim" in v
    }
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    return claims, mounts


# -- where checkpoints go -------------------------------------------------------------------


def test_checkpoints_go_under_the_first_volume_in_the_lineage():
    job = objects(volumes=["work:/mnt/work/", "data:/data"])
    env = env_of(job)
    assert env["JUPYTER_TRAINING_CHECKPOINT_DIR"] == (
        f"/mnt/work/jupyter-training/checkpoints/{JOB_ID}"
    )
    assert "JUPYTER_TRAINING_CHECKPOINT_REFUSAL" not in env
    # a resumed job: the directory of the first job of its chain
    resumed = dataclasses.replace(job, spec=job.spec.replace(parent="aaaaaaaaaaaa", lineage="f00"))
    assert manifests.checkpoint_location(resumed) == (
        "work",
        "/mnt/work/jupyter-training/checkpoints/f00",
    )
    claims, _ = claims_and_mounts(manifests.job_manifest(job))
    assert claims == {"volume-0": "work", "volume-1": "data"}  # nothing added


def test_without_a_volume_checkpoint_dir_is_refused_naming_both_flags():
    env = env_of(objects())
    assert "JUPYTER_TRAINING_CHECKPOINT_DIR" not in env
    refusal = env["JUPYTER_TRAINING_CHECKPOINT_REFUSAL"]
    assert "checkpoint_dir()" in refusal and "--volume" in refusal and "--checkpoint" in refusal


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_a_checkpoint_claim_is_mounted_where_asked(api):
    job = objects(api=api, workers=2, volumes=["work:/mnt/work"], checkpoint="ckpt:/ckpt")
    assert env_of(job)["JUPYTER_TRAINING_CHECKPOINT_DIR"] == (
        f"/ckpt/jupyter-training/checkpoints/{JOB_ID}"
    )
    claims, mounts = claims_and_mounts(manifests.job_manifest(job))
    assert claims == {"volume-0": "work", "checkpoint": "ckpt"}
    assert mounts["/ckpt"] == "checkpoint" and mounts["/mnt/work"] == "volume-0"
    # the claim of a --volume, elsewhere: a volume of its own (a TrainJob patch has one
    # mount per volume); the very same mount: nothing added
    again = objects(api=api, volumes=["work:/mnt/work"], checkpoint="work:/ckpt")
    claims, mounts = claims_and_mounts(manifests.job_manifest(again))
    assert claims == {"volume-0": "work", "checkpoint": "work"} and mounts["/ckpt"] == "checkpoint"
    same = objects(api=api, volumes=["work:/mnt/work"], checkpoint="work:/mnt/work")
    claims, _ = claims_and_mounts(manifests.job_manifest(same))
    assert claims == {"volume-0": "work"}


def test_a_checkpoint_mount_over_another_volume_is_refused(client):
    spec = JobSpec(backend="kubernetes", api="v1", volumes=["work:/mnt/w"], checkpoint="c:/mnt/w")
    with pytest.raises(SpecError, match=r"--checkpoint: c:/mnt/w: /mnt/w is where --volume"):
        client.submit(spec, "pass", {})


def test_checkpoint_is_a_kubernetes_only_flag(ip):
    with pytest.raises(SpecError, match="--checkpoint: only applies to --backend kubernetes"):
        JobSpec(checkpoint="ckpt:/ckpt")
    with pytest.raises(UsageError, match="--checkpoint: only applies to --backend kubernetes"):
        ip.run_cell_magic("train_distributed", "--checkpoint ckpt:/ckpt", "pass")


def test_dry_run_shows_the_checkpoint_dir_and_the_elastic_policy(ip, kubeconfig, kube):
    with capture_output() as captured:
        ip.run_cell_magic(
            "train_distributed",
            "--backend kubernetes --api v1 --workers 1:3 --checkpoint ckpt:/ckpt --dry-run",
            "pass",
        )
    job = list(yaml.safe_load_all(captured.stdout))[-1]
    env = {e["name"]: e.get("value") for e in pod_spec(job)["containers"][0]["env"]}
    assert env["JUPYTER_TRAINING_CHECKPOINT_DIR"].startswith("/ckpt/jupyter-training/checkpoints/")
    assert job["spec"]["elasticPolicy"]["minReplicas"] == 1
    assert kube.objects("pytorchjobs", NS) == []


# -- a job that fails half-way, resumed on the same volume -------------------------------------


def store_of(ip):
    return ip.magics_manager.registry["TrainingMagics"].client.store


def test_a_failed_pytorchjob_resumes_from_its_checkpoint_on_the_volume(
    ip, kubeconfig, kube, operator, tmp_path
):
    line = "--api v1 -w 2 --volume work:/mnt/work --timeout 60 -o steps"
    with pytest.raises(JobFailedError) as failed:
        run_cell_on_cluster(ip, operator, kube, tmp_path, "pytorchjobs", line, RESUMABLE_CELL)
    assert failed.value.rank == 0 and failed.value.exit_code == 137
    (first,) = store_of(ip).list()
    assert first.phase == FAILED and first.lineage == first.id
    assert first.context["checkpoint_dir"] == (
        f"pvc://work/mnt/work/jupyter-training/checkpoints/{first.id}"
    )
    directory = claim_dir(tmp_path, "work") / "jupyter-training" / "checkpoints" / first.id
    saved = sorted(p.name for p in directory.iterdir())
    assert saved == [f"step-{s:012d}.pkl" for s in (2, 3, 4)]  # keep=3, killed after step 4

    out, job = run_cell_on_cluster(
        ip, operator, kube, tmp_path, "pytorchjobs", first.id, None, magic="train_resume"
    )
    resumed = store_of(ip).get(job.obj()["metadata"]["labels"]["jupyter-training.io/job-id"])
    assert resumed.phase == SUCCEEDED
    assert (resumed.parent_id, resumed.lineage) == (first.id, first.id)
    # the parent's PyTorchJob still exists (until its TTL): the resumed one has a name of its own
    assert resumed.name == f"job-{resumed.id}" == job.name != first.name
    assert f"resuming job {first.id} as {resumed.id}" in out
    assert "[rank 0] start 5 attempt 0 dir " in out  # rank 0 saved step 4, then died
    # rank 1 (which saves nothing) starts wherever rank 0 is by then, never before step 5
    (later,) = re.findall(r"\[rank 1\] start (\d+) attempt 0 dir ", out)
    assert int(later) >= 5
    assert ip.user_ns["steps"] == list(range(10))  # every step once: none redone, none skipped
    with open(directory / "step-000000000009.pkl", "rb") as last:
        assert pickle.load(last)["steps"] == list(range(10))
    assert [m["step"] for m in resumed.checkpoints] == [5, 6, 7, 8, 9]


def test_a_resumed_job_takes_a_name_of_its_own_while_its_parent_exists(client, operator):
    first = client.submit(JobSpec(backend="kubernetes", api="v1", name="mnist"), "pass", {})
    operator.job("pytorchjobs", NS, "mnist").fail()
    second = client.resume(first.id)
    assert second.name == f"mnist-{second.id}" == second.spec.name
    operator.job("pytorchjobs", NS, second.name).fail()
    third = client.resume(second.id)  # a chain: not mnist-<second>-<third>
    assert third.name == f"mnist-{third.id}"
    assert (third.parent_id, third.lineage) == (second.id, first.id)
    # any other clash is still refused by name
    with pytest.raises(SubmitError, match="--name: a PyTorchJob named 'mnist' already exists"):
        client.submit(JobSpec(backend="kubernetes", api="v1", name="mnist"), "pass", {})


def test_checkpoints_on_the_checkpoint_claim(ip, kubeconfig, kube, operator, tmp_path):
    cell = "import jupyter_training as jt\njt.save_checkpoint({'w': 1}, 7)\n"
    run_cell_on_cluster(
        ip,
        operator,
        kube,
        tmp_path,
        "pytorchjobs",
        "--api v1 -w 1 --volume work:/mnt/work --checkpoint ckpt:/ckpt --timeout 60",
        cell,
    )
    (record,) = store_of(ip).list()
    assert record.phase == SUCCEEDED
    path = claim_dir(tmp_path, "ckpt") / "jupyter-training" / "checkpoints" / record.id
    assert [p.name for p in path.iterdir()] == ["step-000000000007.pkl"]
    assert not (claim_dir(tmp_path, "work") / "jupyter-training" / "checkpoints").exists()


def test_checkpoint_dir_without_a_volume_fails_the_job_naming_the_flags(
    ip, kubeconfig, kube, operator, tmp_path
):
    with pytest.raises(JobFailedError, match=r"add --volume CLAIM:/mnt/work or --checkpoint"):
        run_cell_on_cluster(
            ip,
            operator,
            kube,
            tmp_path,
            "pytorchjobs",
            "--api v1 -w 1 --timeout 60",
            "import jupyter_training as jt\njt.save_checkpoint({}, 0)",
        )


# -- elastic ------------------------------------------------------------------------------------


def test_an_elastic_pytorchjob_is_workers_only_with_an_elastic_policy(client, kube, operator):
    spec = JobSpec(
        backend="kubernetes", api="v1", workers="1:3", max_restarts=2, nproc_per_worker=2
    )
    record = client.submit(spec, "pass", {})
    job = kube.get("pytorchjobs", NS, record.name)
    assert list(job["spec"]["pytorchReplicaSpecs"]) == ["Worker"]  # no Master when elastic
    worker = job["spec"]["pytorchReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 3 and worker["restartPolicy"] == "OnFailure"
    assert job["spec"]["elasticPolicy"] == {
        "minReplicas": 1,
        "maxReplicas": 3,
        "rdzvBackend": "c10d",
        "rdzvId": record.id,
        "maxRestarts": 2,
    }
    assert job["spec"]["nprocPerNode"] == "2" and job["spec"]["runPolicy"]["backoffLimit"] == 2
    container = worker["template"]["spec"]["containers"][0]
    assert container["command"][:5] == [
        "python",
        "-m",
        "torch.distributed.run",
        "-m",
        "jupyter_training.runtime.node",
    ]
    # the fake operator gives the pods what release-1.9's gives elastic pods
    handle = operator.wait_for_job("pytorchjobs", NS, record.name)
    handle.create_pods()
    assert handle.ranks() == [0, 1, 2]
    pod = handle.pod(0)
    assert pod["metadata"]["name"] == f"{record.name}-worker-0"
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["PET_NNODES"] == "1:3" and env["PET_RDZV_BACKEND"] == "c10d"
    assert env["PET_RDZV_ENDPOINT"] == f"{record.name}-worker-0:23456"
    assert env["PET_MAX_RESTARTS"] == "2" and env["PET_RDZV_ID"] == record.id
    assert env["PET_NPROC_PER_NODE"] == "2"
    assert not {"MASTER_ADDR", "RANK", "WORLD_SIZE", "PET_NODE_RANK"} & set(env)


def test_an_elastic_pytorchjob_runs_under_torchrun(ip, kubeconfig, kube, operator, tmp_path):
    pytest.importorskip("torch")
    cell = (
        "import os, torch, torch.distributed as dist, jupyter_training as jt\n"
        "dist.init_process_group('gloo')\n"
        "t = torch.tensor([dist.get_rank() + 1.0])\n"
        "dist.all_reduce(t)\n"
        "print('rank', jt.rank(), 'of', jt.world_size(), 'sum', t.item(),\n"
        "      'nnodes', os.environ['PET_NNODES'], 'run', os.environ['TORCHELASTIC_RUN_ID'])\n"
        "dist.destroy_process_group()\n"
        "total = t.item()\n"
    )
    out, _ = run_cell_on_cluster(
        ip,
        operator,
        kube,
        tmp_path,
        "pytorchjobs",
        "--api v1 --workers 1:2 --volume work:/mnt/work --timeout 120 -o total",
        cell,
    )
    (record,) = store_of(ip).list()
    assert record.phase == SUCCEEDED and record.spec.min_workers == 1
    for rank in (0, 1):  # each line tagged with the rank the rendezvous gave, whatever the pod
        assert f"[rank {rank}] rank {rank} of 2 sum 3.0 nnodes 1:2 run {record.id}" in out
    assert ip.user_ns["total"] == 3.0


#: torchrun restarts the pods' ranks itself (elasticPolicy.maxRestarts): the first rank 0
#: SIGKILLs itself after saving step 4; the others are still at work (they sleep longer),
#: so the restarted ranks resume from step 5 with restart_count() 1 on the failed pod.
ELASTIC_RESTART_CELL = """
import os, signal, time
import jupyter_training as jt

ckpt = jt.latest_checkpoint()
state = ckpt.load() if ckpt else {"steps": []}
start = ckpt.step + 1 if ckpt else 0
print("attempt", jt.restart_count(), "start", start, flush=True)
for step in range(start, 10):
    state["steps"].append(step)
    jt.save_checkpoint(state, step)
    if step == 4 and ckpt is None and jt.rank() == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.1 if jt.rank() == 0 else 0.5)
steps = state["steps"]
"""


def test_an_elastic_pytorchjob_restarts_its_ranks_from_the_checkpoint(
    ip, kubeconfig, kube, operator, tmp_path
):
    pytest.importorskip("torch")
    line = "--api v1 --workers 1:2 --max-restarts 1 --volume work:/mnt/work --timeout 120"
    out, _ = run_cell_on_cluster(
        ip, operator, kube, tmp_path, "pytorchjobs", f"{line} -o steps", ELASTIC_RESTART_CELL
    )
    (record,) = store_of(ip).list()
    assert record.phase == SUCCEEDED
    assert "attempt 0 start 0" in out and "attempt 1 start 5" in out  # the killed rank's pod
    assert ip.user_ns["steps"] == list(range(10))
    assert [m["step"] for m in record.checkpoints] == list(range(10))


def test_the_ranks_of_an_elastic_pod_install_pip_packages_once(tmp_path, monkeypatch):
    from jupyter_training.runtime import __main__ as runtime_main
    from jupyter_training.runtime import node

    calls = []
    monkeypatch.setattr(node, "PIP_LOCK", str(tmp_path / "pip.lock"))
    monkeypatch.setattr(runtime_main, "install_packages", lambda: calls.append(1))
    monkeypatch.setenv("JUPYTER_TRAINING_PIP", '["tqdm"]')
    for _ in range(3):  # three ranks of one pod, one after the other
        node._install_packages_once()
    assert calls == [1]
    monkeypatch.delenv("JUPYTER_TRAINING_PIP")
    assert node.rank_main([]) == 2  # usage


def test_elastic_with_api_v2_is_refused_before_anything_is_created(ip, client, kube):
    spec = JobSpec(backend="kubernetes", api="v2", workers="1:2")
    with pytest.raises(SpecError, match=r"--workers: 1:2 \(elastic\) with --api v2: upstream"):
        client.submit(spec, "pass", {})
    with pytest.raises(UsageError, match="TrainJob elastic training is not implemented yet"):
        ip.run_cell_magic(
            "train_distributed", "--backend kubernetes --api v2 --workers 1:2 --dry-run", "pass"
        )
    assert kube.objects("configmaps", NS) == [] and kube.objects("trainjobs", NS) == []


def test_elastic_with_api_auto_is_a_pytorchjob(client, kube):
    record = client.submit(JobSpec(backend="kubernetes", workers="2:4"), "pass", {})
    assert record.spec.kubernetes.api == "v1"  # the cluster serves v2 too
    assert kube.get("pytorchjobs", NS, record.name)["spec"]["elasticPolicy"]["maxReplicas"] == 4


def test_elastic_with_api_auto_on_a_v2_only_cluster_says_why(
    kube_factory, tmp_path, monkeypatch, settings
):
    kube = kube_factory(crds={"v2"})
    monkeypatch.setenv("KUBECONFIG", str(kube.write_kubeconfig(tmp_path / "kc")))
    with pytest.raises(SubmitError, match=r"elasticPolicy.*not implemented yet.*--api v1"):
        TrainingClient(settings).submit(JobSpec(backend="kubernetes", workers="1:2"), "pass", {})
    assert kube.objects("configmaps", NS) == []
