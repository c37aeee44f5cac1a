"""The backend registry (built-ins plus entry points) and what backends describe."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import pytest

from jupyter_training import backends
from jupyter_training.backends import BUILTIN_BACKENDS, backend_registry, make_backend
from jupyter_training.backends.base import SubmitError
from jupyter_training.backends.local import LocalBackend
from jupyter_training.client import TrainingClient


class PluginBackend:
    """A stand-in for a backend another package registers."""

    name = "plugin"

    def __init__(self, store, settings):
        self.store, self.settings = store, settings

    def describe(self):
        return {"available": True}


@pytest.fixture(autouse=True)
def fresh_registry():
    """The registry reads entry points once per process: re-read them around each test."""
    backends._registry.cache_clear()
    yield
    backends._registry.cache_clear()


def entry_points_with(*entries):
    def fake(*, group):
        assert group == backends.ENTRY_POINT_GROUP
        return [importlib.metadata.EntryPoint(name, value, group) for name, value in entries]

    return fake


def test_the_built_in_backends_are_registered():
    assert backend_registry() == BUILTIN_BACKENDS
    assert list(BUILTIN_BACKENDS) == ["local", "kubernetes"]


def test_an_unknown_backend_names_the_known_ones(settings):
    client = TrainingClient(settings)
    with pytest.raises(SubmitError, match=r"'slurm' is not one of local, kubernetes"):
        make_backend("slurm", client.store, settings)


def test_entry_points_add_backends_but_do_not_replace_built_ins(settings, monkeypatch):
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        entry_points_with(
            ("plugin", f"{__name__}:PluginBackend"), ("local", f"{__name__}:PluginBackend")
        ),
    )
    assert backend_registry()["plugin"] == f"{__name__}:PluginBackend"
    client = TrainingClient(settings)
    assert isinstance(client.backend("plugin"), PluginBackend)
    assert isinstance(client.backend("local"), LocalBackend)
    with pytest.raises(SubmitError, match=r"not one of local, kubernetes, plugin"):
        make_backend("slurm", client.store, settings)


def test_a_plugin_backend_is_a_valid_spec_that_refuses_kubernetes_options(monkeypatch):
    from jupyter_training.spec import JobSpec, SpecError

    monkeypatch.setattr(
        importlib.metadata, "entry_points", entry_points_with(("plugin", f"{__name__}:X"))
    )
    assert JobSpec(backend="plugin").backend == "plugin"
    # Kubernetes' per-pod rules are not a plug-in's: a JAX worker of 2 processes is fine there.
    assert JobSpec(backend="plugin", framework="jax", nproc_per_worker=2).world_size == 4
    with pytest.raises(
        SpecError, match="--image: only applies to --backend kubernetes, not plugin"
    ):
        JobSpec(backend="plugin", image="example.com/x:1")
    with pytest.raises(
        SpecError, match="--backend: 'slurm' is not one of local, kubernetes, plugin"
    ):
        JobSpec(backend="slurm")


def test_a_broken_entry_point_is_a_submit_error(settings, monkeypatch):
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        entry_points_with(("gone", "no_such_module_here:Backend"), ("typo", f"{__name__}:Nope")),
    )
    client = TrainingClient(settings)
    with pytest.raises(SubmitError, match=r"--backend gone: cannot load no_such_module_here"):
        make_backend("gone", client.store, settings)
    with pytest.raises(SubmitError, match=r"--backend typo: cannot load"):
        make_backend("typo", client.store, settings)


def test_kubernetes_without_its_client_says_what_to_install(settings):
    script = (
        "import sys; sys.modules['kubernetes'] = None\n"
        "from jupyter_training.backends import make_backend\n"
        "from jupyter_training.client import TrainingClient\n"
        "client = TrainingClient()\n"
        "try:\n"
        "    make_backend('kubernetes', client.store, client.settings)\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.startswith("SubmitError --backend kubernetes needs the kubernetes client")
    assert "pip install 'jupyter-training[kubernetes]'" in result.stdout, result.stderr


def test_the_local_backend_describes_this_machine(settings, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    described = TrainingClient(settings).backend("local").describe()
    assert described == {"available": True, "gpus": 2, "cpus": os.cpu_count()}


def test_kubernetes_without_a_cluster_describes_why(settings, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", os.devnull)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    described = TrainingClient(settings).backend("kubernetes").describe()
    assert described["available"] is False and described["error"]
    assert (described["apis"], described["namespace"]) == ([], None)
