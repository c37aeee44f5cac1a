"""The framework registry: one module per framework, and the env contracts they give."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from jupyter_training import frameworks
from jupyter_training.backends.local.supervisor import worker_env
from jupyter_training.frameworks import Placement
from jupyter_training.spec import JobSpec, SpecError


def env_of(framework: str, rank: int, workers: int = 2, nproc: int = 1) -> dict:
    spec = JobSpec(framework=framework, workers=workers, nproc_per_worker=nproc)
    ports = tuple(range(40000, 40000 + frameworks.get(framework).ports_needed(workers * nproc)))
    return worker_env("job1", spec, rank, ports, [], {})


def test_four_frameworks_and_their_aliases():
    assert frameworks.names() == ("jax", "pytorch", "tensorflow", "xgboost")
    assert frameworks.get("torch").name == "pytorch"
    assert frameworks.get("TF").name == "tensorflow"
    assert JobSpec(framework="xgb").framework == "xgboost"
    with pytest.raises(frameworks.UnknownFramework, match="use one of jax, pytorch"):
        frameworks.get("mxnet")


def torchrun_worker_names() -> set[str]:
    """The names torch's elastic agent sets for every worker, read from torch's own source."""
    torch = pytest.importorskip("torch")
    agent = pathlib.Path(torch.__file__).parent / "distributed/elastic/agent/server"
    text = (agent / "local_elastic_agent.py").read_text()
    start = text.index("worker_env = {")
    names = set(re.findall(r'"([A-Z_]+)":', text[start : text.index("}", start)]))
    names |= {"LOCAL_RANK"}  # set per worker in _set_local_rank_env
    assert {"GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID"} <= names  # the parse worked
    return names


def test_local_pytorch_worker_env_is_a_superset_of_torchruns():
    env = env_of("pytorch", rank=3, workers=2, nproc=2)
    assert torchrun_worker_names() <= env.keys()
    assert (env["RANK"], env["LOCAL_RANK"], env["GROUP_RANK"]) == ("3", "1", "1")
    assert (env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"], env["GROUP_WORLD_SIZE"]) == ("4", "2", "2")
    assert (env["ROLE_NAME"], env["ROLE_RANK"], env["ROLE_WORLD_SIZE"]) == ("default", "3", "4")
    assert env["TORCHELASTIC_USE_AGENT_STORE"] == "False"  # rank 0 hosts the store
    assert env["TORCHELASTIC_RUN_ID"] == "job1"
    # A PyTorchJob pod's and a TrainJob node's names too.
    assert (env["PET_NNODES"], env["PET_NPROC_PER_NODE"], env["PET_NODE_RANK"]) == ("2", "2", "1")
    assert env["PET_MASTER_PORT"] == env["MASTER_PORT"] == "40000"


def test_restarts_are_counted_as_torchrun_counts_them():
    spec = JobSpec(workers=2, max_restarts=3)
    env = worker_env("j", spec, 0, (1,), [], {}, restart_count=2)
    assert (env["TORCHELASTIC_RESTART_COUNT"], env["TORCHELASTIC_MAX_RESTARTS"]) == ("2", "3")


def test_gpus_belong_to_the_worker_and_its_processes_share_them():
    spec = JobSpec(workers=2, gpus=2, nproc_per_worker=2)
    gpus = ["0", "1", "2", "3"]
    visible = [worker_env("j", spec, r, (1,), gpus, {})["CUDA_VISIBLE_DEVICES"] for r in range(4)]
    assert visible == ["0,1", "0,1", "2,3", "2,3"]  # LOCAL_RANK picks one, as under torchrun


@pytest.mark.parametrize(
    ("framework", "expected"),
    [
        ("jax", {"COORDINATOR_ADDRESS": "127.0.0.1", "NUM_PROCESSES": "2", "PROCESS_ID": "1"}),
        ("jax", {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:40000", "JAX_PROCESS_ID": "1"}),
        ("xgboost", {"DMLC_TASK_ID": "1", "DMLC_NUM_WORKER": "2", "WORKER_ADDRS": "127.0.0.1"}),
    ],
)
def test_framework_names(framework, expected):
    env = env_of(framework, rank=1)
    assert {k: env[k] for k in expected} == expected


def test_tensorflow_gets_one_port_per_worker_in_tf_config():
    configs = [json.loads(env_of("tensorflow", rank=r, workers=3)["TF_CONFIG"]) for r in range(3)]
    workers = configs[0]["cluster"]["worker"]
    assert len(set(workers)) == 3 and all(w.startswith("127.0.0.1:") for w in workers)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)


@pytest.mark.parametrize(
    ("framework", "pod_env", "rank", "world", "master"),
    [
        ("pytorch", {"PET_NODE_RANK": "1", "PET_NNODES": "2", "PET_MASTER_ADDR": "m"}, 1, 2, "m"),
        ("jax", {"PROCESS_ID": "2", "NUM_PROCESSES": "3", "COORDINATOR_ADDRESS": "w0"}, 2, 3, "w0"),
        ("jax", {"JAX_PROCESS_ID": "1", "JAX_NUM_PROCESSES": "2",
                 "JAX_COORDINATOR_ADDRESS": "t-node-0-0.t:29500"}, 1, 2, "t-node-0-0.t"),
        (
            "tensorflow",
            {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:2222", "b:2222", "c:2222"]},
                                      "task": {"type": "worker", "index": 2}})},
            2, 3, "a",
        ),
    ],
)  # fmt: skip
def test_pod_env_completes_to_the_contract(framework, pod_env, rank, world, master):
    env = dict(pod_env)
    frameworks.get(framework).complete_env(env)
    assert (env["RANK"], env["WORLD_SIZE"], env["MASTER_ADDR"]) == (str(rank), str(world), master)
    assert env["LOCAL_RANK"] == "0"


def test_a_pytorchjob_pod_gets_torchruns_names_so_lightning_sees_one_launcher():
    env = {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "j-master-0", "MASTER_PORT": "23456"}
    frameworks.get("pytorch").complete_env(env)
    assert torchrun_worker_names() - {"TORCH_NCCL_ASYNC_ERROR_HANDLING"} <= env.keys()
    assert (env["GROUP_RANK"], env["LOCAL_WORLD_SIZE"]) == ("1", "1")


@pytest.mark.parametrize(
    ("changes", "flag", "hint"),
    [
        ({"framework": "jax", "env": {"PROCESS_ID": "3"}}, "--env", "PROCESS_ID is set by"),
        ({"framework": "tensorflow", "env": {"TF_CONFIG": "{}"}}, "--env", "TF_CONFIG is set by"),
        ({"env": {"GROUP_RANK": "0"}}, "--env", "GROUP_RANK is set by"),
        ({"nproc_per_worker": 0}, "--nproc-per-worker", "whole number >= 1 or 'auto'"),
        ({"nproc_per_worker": "many"}, "--nproc-per-worker", "'auto'"),
        (
            {"framework": "tensorflow", "backend": "kubernetes", "api": "v2"},
            "--api",
            "use --api v1",
        ),
        (
            {"framework": "jax", "backend": "kubernetes", "nproc_per_worker": 2},
            "--nproc-per-worker",
            "one process per pod",
        ),
    ],
)
def test_framework_refusals_name_the_flag(changes, flag, hint):
    with pytest.raises(SpecError) as caught:
        JobSpec(**changes)
    assert caught.value.field == flag
    assert hint in str(caught.value)


def test_nproc_auto_is_one_per_gpu():
    assert JobSpec(nproc_per_worker="auto").nproc_per_worker == 1
    spec = JobSpec(nproc_per_worker="auto", gpus=4, backend="kubernetes")
    assert (spec.nproc_per_worker, spec.world_size) == (4, 8)


def test_settings_have_an_image_and_runtime_per_framework(settings):
    assert settings.image_for("jax") == frameworks.get("jax").default_image
    assert settings.runtime_for("jax") == "jax-distributed"
    assert settings.runtime_for("pytorch") == "torch-distributed"


def test_magic_help_lists_every_framework(ip):
    from jupyter_training.magics import TrainingMagics

    doc = TrainingMagics.train_distributed.__doc__
    for name in frameworks.names():
        assert f"{name}:" in doc
    assert "--nproc-per-worker" in doc


FIFTH = """
from jupyter_training.frameworks.base import Framework, KubeflowKind, Placement


class Echo(Framework):
    name = "echo"
    summary = "a test framework that names its rank in ECHO_RANK"
    kubeflow = KubeflowKind("EchoJob", "echojobs", "echoReplicaSpecs", "echo", 7777, "echo-port")
    default_image = "example.com/echo:1"
    reserved_env = frozenset({"ECHO_RANK"})

    def local_env(self, place: Placement) -> dict[str, str]:
        return {**super().local_env(place), "ECHO_RANK": f"echo-{place.rank}"}


FRAMEWORK = Echo()
"""


def test_a_fifth_framework_is_one_module(tmp_path, monkeypatch, ip):
    """Dropping one module into the package is all it takes, end to end."""
    package = pathlib.Path(frameworks.__file__).parent
    module = package / "echo.py"
    module.write_text(FIFTH)
    frameworks._registry.cache_clear()
    try:
        assert "echo" in frameworks.names()
        with pytest.raises(SpecError, match="ECHO_RANK is set by"):
            JobSpec(framework="echo", env={"ECHO_RANK": "x"})
        # A real local job, run by a fresh supervisor process that finds the module too.
        ip.run_cell(f"out = {str(tmp_path)!r}").raise_error()
        ip.run_cell(
            "%%train_distributed --framework echo --workers 2\n"
            "import os\n"
            "open(f\"{out}/{os.environ['ECHO_RANK']}\", 'w').close()\n"
        ).raise_error()
        assert sorted(p.name for p in tmp_path.glob("echo-*")) == ["echo-0", "echo-1"]
        # A fresh interpreter (a new kernel, the server) has its settings and flag help.
        check = (
            "from jupyter_training.settings import load_settings\n"
            "from jupyter_training.magics import TrainingMagics\n"
            "print(load_settings().echo_image)\n"
            "print('echo:' in TrainingMagics.train_distributed.__doc__)\n"
        )
        fresh = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
        assert fresh.stdout.split() == ["example.com/echo:1", "True"], fresh.stderr
    finally:
        module.unlink()
        frameworks._registry.cache_clear()
        sys.modules.pop("jupyter_training.frameworks.echo", None)


def test_history_keeps_a_spec_todays_rules_refuse(tmp_path):
    from jupyter_training.store import JobStore, _to_row, pending_record

    store = JobStore(tmp_path / "jobs.db")
    record = store.add(pending_record("abcdefabcdef", JobSpec(), "pass"))
    row = _to_row(record)
    assert json.loads(row["spec"])["framework"] == "pytorch"
    old = {**JobSpec().to_dict(), "framework": "mxnet", "workers": 0}
    spec = JobSpec.from_record(old)  # a job recorded by another version
    assert (spec.framework, spec.workers, spec.nproc_per_worker) == ("mxnet", 0, 1)
    assert isinstance(store.get("abcdefabcdef").spec, JobSpec)


def test_placement_ranks():
    place = Placement("j", rank=5, nnodes=3, nproc_per_node=2)
    assert (place.node_rank, place.local_rank, place.world_size) == (2, 1, 6)


def test_names_a_user_may_set_are_only_defaults():
    spec = JobSpec(env={"TORCH_NCCL_ASYNC_ERROR_HANDLING": "3"})
    assert worker_env("j", spec, 0, (1,), [], {})["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "3"
    assert worker_env("j", JobSpec(), 0, (1,), [], {})["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "1"


@pytest.mark.parametrize("framework", ["jax", "tensorflow", "xgboost"])
def test_processes_that_take_every_gpu_do_not_share_a_worker(framework):
    with pytest.raises(SpecError, match="--nproc-per-worker: the processes of a"):
        JobSpec(framework=framework, gpus=2, nproc_per_worker="auto")
    assert JobSpec(framework=framework, nproc_per_worker=2).world_size == 4  # CPU: fine


def test_a_pods_exit_code_after_a_signal_reads_as_a_shells(tmp_path):
    from jupyter_training.runtime import node

    envs = [{**os.environ, "RANK": "0"}, {**os.environ, "RANK": "1"}]
    payload = tmp_path / "payload.bin"
    from jupyter_training.runtime.payload import Payload

    Payload(
        cell="import os, signal, time\nif os.environ['RANK'] == '1':\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\ntime.sleep(30)\n"
    ).write(payload)
    assert node.run_node(str(payload), envs) == 128 + 9  # and rank 0 was stopped, not waited for
