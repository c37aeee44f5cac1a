"""Runs of Kubernetes jobs: the kernel that follows the pods' logs records the history;
artifacts live on the job's --volume or are refused by name."""

from __future__ import annotations

import dataclasses

import pytest

from jupyter_training import tracking
from jupyter_training.backends.kubernetes import manifests
from jupyter_training.backends.kubernetes.manifests import JobObjects
from jupyter_training.backends.kubernetes.targets import target_for
from jupyter_training.spec import JobSpec

from k8s.fixtures import *  # noqa: F403 - pytest fixtures: kube, kubeconfig, operator, ...
from k8s.kubelet import run_cell_on_cluster

REPORT_CELL = (
    "import jupyter_training as jt\n"
    "jt.log_params(batch=8)\n"
    "for i in range(200):\n"
    "    jt.report(step=i, loss=(1 - lr) ** i + jt.rank())\n"
)


def test_a_pytorchjob_is_a_run_with_its_full_history(ip, kubeconfig, kube, operator, tmp_path):
    ip.user_ns["lr"] = 0.05
    run_cell_on_cluster(
        ip,
        operator,
        kube,
        tmp_path,
        "pytorchjobs",
        "--api v1 -w 2 --timeout 60 --tag where=cluster",
        REPORT_CELL,
    )
    store = ip.magics_manager.registry["TrainingMagics"].client.store
    (record,) = store.list()
    run = tracking.run(record.id, store=store)
    assert run.params["lr"] == 0.05 and run.params["batch"] == 8
    assert run.params["backend"] == "kubernetes" and run.tags == {"where": "cluster"}
    assert run.context["namespace"] == "default" and run.context["cluster"]
    assert run.metrics == {"loss": pytest.approx(0.95**199)}
    history = run.history("loss")
    assert len(history) == 400 and sorted(set(history["rank"])) == [0, 1]
    assert record.artifacts is None  # no --volume: nowhere to keep them


def test_artifacts_without_a_volume_are_refused_naming_the_flag(
    ip, kubeconfig, kube, operator, tmp_path
):
    with pytest.raises(Exception, match="add --volume CLAIM:PATH"):
        run_cell_on_cluster(
            ip,
            operator,
            kube,
            tmp_path,
            "pytorchjobs",
            "--api v1 -w 1 --timeout 60",
            "import jupyter_training as jt\njt.artifacts_dir()",
        )


def test_artifacts_go_under_the_first_volume():
    spec = JobSpec(backend="kubernetes", workers=1, volumes=["ckpt:/mnt/ckpt", "data:/data"])
    job = JobObjects(
        spec=spec,
        job_id="0123456789ab",
        name="train",
        namespace="ns",
        image="img",
        payload=b"",
        target=target_for("pytorch", "v1"),
    )
    env = {e["name"]: e.get("value") for e in manifests._env(job)}
    path = "/mnt/ckpt/jupyter-training/train-0123456789ab/artifacts"
    assert env["JUPYTER_TRAINING_ARTIFACTS_DIR"] == path
    assert "JUPYTER_TRAINING_ARTIFACTS_REFUSAL" not in env
    assert manifests.artifacts_location(job) == ("ckpt", path)
    bare = dataclasses.replace(job, spec=spec.replace(volumes=()))
    env = {e["name"]: e.get("value") for e in manifests._env(bare)}
    assert "--volume" in env["JUPYTER_TRAINING_ARTIFACTS_REFUSAL"]
