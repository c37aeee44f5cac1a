"""A kubelet stand-in: runs a fake operator's pods as local processes.

Used where a test must execute what the ConfigMap ships (the worker runtime and
the payload) with the environment the pod spec declares, Secrets included.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from .emulator import KubeEmulator


def pod_env(kube: KubeEmulator, ns: str, env: list[dict[str, Any]]) -> dict[str, str]:
    """A container's EnvVars: literal values, and Secret keys read as the kubelet reads them."""
    result = {}
    for var in env:
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref is not None:
            secret = kube.get("secrets", ns, ref["name"])
            result[var["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        elif "value" in var:
            result[var["name"]] = var["value"]
    return result


def run_pods_like_a_kubelet(kube: KubeEmulator, job: Any, root: Path, ns: str = "default") -> None:
    """Run every pod's container as a local process: ConfigMap files mounted, pod env set."""
    pods = [job.pod(rank) for rank in job.ranks()]
    configmap = kube.get("configmaps", ns, f"{job.name}-payload")
    mount = root / "opt"
    for volume in pods[0]["spec"]["volumes"]:
        for item in (volume.get("configMap") or {}).get("items", []):
            target = mount / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            if item["key"] in configmap.get("data", {}):
                target.write_text(configmap["data"][item["key"]])
            else:
                target.write_bytes(base64.b64decode(configmap["binaryData"][item["key"]]))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    processes = []
    for rank, pod in zip(job.ranks(), pods, strict=True):
        container = pod["spec"]["containers"][0]
        env = pod_env(kube, ns, container["env"])
        env.update(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            PYTHONPATH=str(mount),
            PATH=os.environ["PATH"],
        )
        command = [
            sys.executable if c == "python" else c.replace("/opt/jupyter-training", str(mount))
            for c in container["command"]
        ]
        workdir = root / f"workspace-{rank}"
        workdir.mkdir()
        env["JUPYTER_TRAINING_FILES_DIR"] = str(workdir)
        processes.append(
            subprocess.Popen(
                command,
                env=env,
                cwd=workdir,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    job.run_all()
    job.mark_running()
    for rank, process in zip(job.ranks(), processes, strict=True):
        out, _ = process.communicate(timeout=120)
        job.log(rank, out)
        job.exit(rank, process.returncode)
    if all(p.returncode == 0 for p in processes):
        job.succeed()
    else:
        job.fail("a replica failed")
