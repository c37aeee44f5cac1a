"""pytest fixtures for the Kubernetes harness.

Use them from a test module with ``from k8s.fixtures import *`` (or list ``"k8s.fixtures"`` in
the root conftest's ``pytest_plugins``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client

from .emulator import KubeEmulator
from .operator import FakeOperator

__all__ = ["kube", "kube_api", "kube_factory", "kubeconfig", "operator"]


@pytest.fixture
def kube_factory() -> Iterator[Callable[..., KubeEmulator]]:
    """Start emulators with chosen options (``make(crds={"v1"})``); all stop after the test."""
    started: list[KubeEmulator] = []

    def make(*, crds: Iterable[str] = ("v1", "v2"), **kwargs: Any) -> KubeEmulator:
        emulator = KubeEmulator(crds=crds, **kwargs).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in reversed(started):
        emulator.stop()


@pytest.fixture
def kube(kube_factory: Callable[..., KubeEmulator]) -> KubeEmulator:
    """A started emulator with the v1 (kubeflow.org) and v2 (trainer.kubeflow.org) CRDs."""
    return kube_factory(crds={"v1", "v2"})


@pytest.fixture
def kubeconfig(kube: KubeEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig for ``kube`` (context ``emulator``, namespace ``default``); sets KUBECONFIG.

    Note: ``kubernetes.config`` reads KUBECONFIG once at import time for its default path, so
    code under test should read the variable itself or pass ``config_file=``.
    """
    path = kube.write_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def operator(kube: KubeEmulator) -> Iterator[FakeOperator]:
    """A ``FakeOperator`` acting on ``kube`` (v1 validating webhooks installed)."""
    fake = FakeOperator(kube)
    yield fake
    fake.close()


@pytest.fixture
def kube_api(kube: KubeEmulator) -> Iterator[k8s_client.ApiClient]:
    """An official-client ``ApiClient`` pointed at ``kube``."""
    config = k8s_client.Configuration()
    config.host = kube.url
    api = k8s_client.ApiClient(config)
    yield api
    api.close()
