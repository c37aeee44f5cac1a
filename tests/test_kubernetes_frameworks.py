"""JAXJob, TFJob and a JAX TrainJob end to end over the emulated API server, run by the
kubelet stand-in with real JAX and TensorFlow collectives; framework refusals before any
object is created."""

from __future__ import annotations

import json

import pytest
from test_jax_tensorflow import TF_ALL_REDUCE

from jupyter_training.client import TrainingClient
from jupyter_training.spec import JobSpec, SpecError

from k8s.fixtures import *  # noqa: F403 - pytest fixtures: kube, kubeconfig, operator, ...
from k8s.kubelet import run_cell_on_cluster

NS = "default"


JAX_CELL = (
    "import jax, jax.numpy as jnp\n"
    "from jax.experimental import multihost_utils\n"
    "got = multihost_utils.process_allgather(jnp.array([jax.process_index() + 1.0]))\n"
    "print(f'count={jax.process_count()} sum={float(got.sum())}')\n"
)


@pytest.mark.parametrize(("api", "kind"), [("v1", "jaxjobs"), ("v2", "trainjobs")])
def test_jax_job_runs_end_to_end(ip, kubeconfig, kube, operator, tmp_path, api, kind):
    pytest.importorskip("jax")
    out, job = run_cell_on_cluster(
        ip,
        operator,
        kube,
        tmp_path,
        kind,
        f"--framework jax --api {api} -w 2 --timeout 90",
        JAX_CELL,
    )
    for rank in (0, 1):
        assert f"[rank {rank}] count=2 sum=3.0" in out
    obj = job.obj()
    if api == "v1":
        assert obj["kind"] == "JAXJob" and set(obj["spec"]["jaxReplicaSpecs"]) == {"Worker"}
        env = {e["name"]: e.get("value") for e in job.pod(1)["spec"]["containers"][0]["env"]}
        assert env["COORDINATOR_ADDRESS"] == f"{job.name}-worker-0"
        assert (env["PROCESS_ID"], env["NUM_PROCESSES"]) == ("1", "2")
    else:
        assert obj["spec"]["runtimeRef"]["name"] == "jax-distributed"


def test_tfjob_runs_end_to_end(ip, kubeconfig, kube, operator, tmp_path):
    pytest.importorskip("tensorflow")
    cell = (
        TF_ALL_REDUCE + "print(f'replicas={strategy.num_replicas_in_sync} total={float(total)}')\n"
    )
    out, job = run_cell_on_cluster(
        ip, operator, kube, tmp_path, "tfjobs", "--framework tensorflow -w 2 --timeout 90", cell
    )
    for rank in (0, 1):
        assert f"[rank {rank}] replicas=2 total=3.0" in out
    obj = job.obj()
    assert obj["kind"] == "TFJob" and set(obj["spec"]["tfReplicaSpecs"]) == {"Worker"}
    config = json.loads(
        next(
            e["value"]
            for e in job.pod(1)["spec"]["containers"][0]["env"]
            if e["name"] == "TF_CONFIG"
        )
    )
    assert config["task"] == {"type": "worker", "index": 1}
    assert config["cluster"]["worker"][0] == f"{job.name}-worker-0.{NS}.svc:2222"


def test_tensorflow_auto_api_picks_tfjob_even_where_trainjob_exists(kubeconfig, kube, settings):
    client = TrainingClient(settings)
    text = client.dry_run(
        JobSpec(framework="tensorflow", backend="kubernetes", workers=2), "pass", {}
    )
    assert "kind: TFJob" in text


def test_tensorflow_v2_is_refused_before_anything_is_created(ip, kubeconfig, kube):
    from IPython.core.error import UsageError

    with pytest.raises(
        UsageError, match=r"--api: Trainer v2 .* no TensorFlow runtime; use --api v1"
    ):
        ip.run_cell_magic(
            "train_distributed", "--backend kubernetes -f tensorflow --api v2 -w 2", "pass"
        )
    assert kube.objects("configmaps", NS) == []
    with pytest.raises(SpecError, match="--api"):  # the REST and CLI path: the same spec check
        JobSpec(framework="tensorflow", backend="kubernetes", api="v2")


def test_nproc_per_worker_reaches_both_apis(kubeconfig, kube, settings):
    client = TrainingClient(settings)
    spec = JobSpec(backend="kubernetes", api="v1", workers=2, nproc_per_worker=4)
    assert "nprocPerNode: '4'" in client.dry_run(spec, "pass", {})
    v2 = client.dry_run(spec.replace(api="v2"), "pass", {})
    assert "numProcPerNode: 4" in v2


DDP_CELL = (
    "import os, torch, torch.distributed as dist\n"
    "dist.init_process_group('gloo')\n"
    "t = torch.tensor([dist.get_rank() + 1.0])\n"
    "dist.all_reduce(t)\n"
    "print(f\"world={dist.get_world_size()} local={os.environ['LOCAL_RANK']} sum={t.item()}\")\n"
)


@pytest.mark.parametrize(("api", "kind"), [("v1", "pytorchjobs"), ("v2", "trainjobs")])
def test_each_pod_runs_nproc_ranks(ip, kubeconfig, kube, operator, tmp_path, api, kind):
    """Two pods of two processes: one world of four, each line named by its global rank."""
    pytest.importorskip("torch")
    line = f"--api {api} -w 2 --nproc-per-worker 2 --timeout 90"
    out, job = run_cell_on_cluster(ip, operator, kube, tmp_path, kind, line, DDP_CELL)
    for rank in range(4):
        assert f"[rank {rank}] world=4 local={rank % 2} sum=10.0" in out
    assert len(job.ranks()) == 2  # two pods


def test_a_failing_process_in_a_pod_is_named_by_its_rank(ip, kubeconfig, kube, operator, tmp_path):
    pytest.importorskip("torch")
    cell = "import os\nif os.environ['RANK'] == '3':\n    raise ValueError('rank three broke')\n"
    with pytest.raises(Exception) as caught:
        run_cell_on_cluster(
            ip, operator, kube, tmp_path, "pytorchjobs", "--api v1 -w 2 --nproc-per-worker 2", cell
        )
    assert "rank 3 (pod" in str(caught.value) and "rank three broke" in str(caught.value)
