"""A kubelet stand-in: runs a fake operator's pods as local processes.

Used where a test must execute what the ConfigMap ships (the worker runtime and
the payload) with the environment the pod spec declares, Secrets included.
Cluster DNS is played on loopback: every pod gets a port of its own, and a pod's
host name (``<job>-worker-0``, ``...<ns>.svc``, ``<tj>-node-0-0.<tj>``) in an
env value becomes 127.0.0.1 with that port, as each pod's own IP would be.
PersistentVolumeClaims are local directories, ``<root>/claims/<namespace>/<claim>``,
shared by every pod (and every job) run under the same root: a mount path in an env
value or the command becomes the claim's directory. A container killed by signal N
exits 128+N, as a container runtime reports it.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from .emulator import KubeEmulator


def pod_env(
    kube: KubeEmulator, ns: str, env: list[dict[str, Any]], pod: dict[str, Any] | None = None
) -> dict[str, str]:
    """A container's EnvVars: literal values, Secret keys and pod annotations (the downward
    API), read as the kubelet reads them."""
    result = {}
    annotations = ((pod or {}).get("metadata") or {}).get("annotations") or {}
    for var in env:
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        field = ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "")
        if field.startswith("metadata.annotations['"):
            result[var["name"]] = annotations[field.split("'")[1]]
        elif ref is not None:
            secret = kube.get("secrets", ns, ref["name"])
            result[var["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        elif "value" in var:
            result[var["name"]] = var["value"]
    return result


def pod_hosts(pod: dict[str, Any], ns: str) -> list[str]:
    """The names other pods reach ``pod`` by (v1: the pod name; v2: hostname.subdomain)."""
    spec, name = pod["spec"], pod["metadata"]["name"]
    if spec.get("hostname"):
        base = (
            f"{spec['hostname']}.{spec['subdomain']}" if spec.get("subdomain") else spec["hostname"]
        )
        return [f"{base}.{ns}.svc", base]
    return [f"{name}.{ns}.svc", name]


def on_loopback(
    env: dict[str, str], hosts: dict[str, int], master_port: int, pod_port: int
) -> dict[str, str]:
    """``env`` with pod host names on loopback: ``host:port`` -> that pod's own port, a bare
    host -> 127.0.0.1, and a ``*_PORT`` holding the container port -> the first pod's port."""
    names = sorted(hosts, key=len, reverse=True)  # longest first: "x.ns.svc" before "x"
    with_port = re.compile("(?:" + "|".join(re.escape(h) for h in names) + r"):\d+")
    result = {}
    for key, value in env.items():
        if value in hosts:
            value = "127.0.0.1"
        else:
            value = with_port.sub(lambda m: f"127.0.0.1:{hosts[m.group(0).split(':')[0]]}", value)
        if key.endswith("_PORT") and value == str(pod_port):
            value = str(master_port)
        result[key] = value
    return result


def claim_dir(root: Path, claim: str, ns: str = "default") -> Path:
    """The local directory that plays PersistentVolumeClaim ``claim`` for pods run under
    ``root``."""
    return root / "claims" / ns / claim


def exit_code(returncode: int) -> int:
    """A process' return code as a container's exit code (signal N: 128+N)."""
    return 128 - returncode if returncode < 0 else returncode


def run_pods_like_a_kubelet(kube: KubeEmulator, job: Any, root: Path, ns: str = "default") -> None:
    """Run every pod's container as a local process: ConfigMap files mounted, pod env set."""
    processes = start_pods(kube, job, root, ns)
    job.run_all()
    job.mark_running()
    for rank, process in zip(job.ranks(), processes, strict=True):
        out, _ = process.communicate(timeout=120)
        job.log(rank, out)
        job.exit(rank, exit_code(process.returncode))
    if all(p.returncode == 0 for p in processes):
        job.succeed()
    else:
        job.fail("a replica failed")


def start_pods(
    kube: KubeEmulator, job: Any, root: Path, ns: str = "default"
) -> list[subprocess.Popen]:
    """Start every pod's container as a local process (ConfigMap files mounted under
    ``root``, pod env set), in rank order; their output (stdout and stderr) is a pipe."""
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
    ports = free_ports(len(pods))
    hosts = {
        host: port for pod, port in zip(pods, ports, strict=True) for host in pod_hosts(pod, ns)
    }
    processes = []
    for rank, pod in zip(job.ranks(), pods, strict=True):
        container = pod["spec"]["containers"][0]
        claims = claim_mounts(pod, container, root, ns)
        env = pod_env(kube, ns, container["env"], pod)
        pod_port = next((p["containerPort"] for p in container.get("ports") or []), None)
        env = on_loopback(env, hosts, ports[0], pod_port)
        env = {key: on_claims(value, claims) for key, value in env.items()}
        env.update(PYTHONPATH=str(mount), PATH=os.environ["PATH"])
        command = [
            sys.executable
            if c == "python"
            else on_claims(c.replace("/opt/jupyter-training", str(mount)), claims)
            for c in container["command"]
        ]
        workdir = root / f"workspace-{rank}"
        workdir.mkdir(exist_ok=True)
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
    return processes


def claim_mounts(
    pod: dict[str, Any], container: dict[str, Any], root: Path, ns: str = "default"
) -> dict[str, Path]:
    """The container's PersistentVolumeClaim mounts: mount path -> the claim's directory."""
    claims = {
        volume["name"]: volume["persistentVolumeClaim"]["claimName"]
        for volume in pod["spec"].get("volumes") or []
        if "persistentVolumeClaim" in volume
    }
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] in claims:
            directory = claim_dir(root, claims[mount["name"]], ns)
            directory.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"].rstrip("/") or "/"] = directory
    return mounts


def on_claims(value: str, claims: dict[str, Path]) -> str:
    """``value`` with a path under a claim's mount path moved to the claim's directory."""
    for path in sorted(claims, key=len, reverse=True):  # the deepest mount first
        if value == path or value.startswith(path.rstrip("/") + "/"):
            return str(claims[path]) + value[len(path) :]
    return value


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run_cell_on_cluster(
    ip,
    operator,
    kube,
    root: Path,
    kind: str,
    line: str,
    cell: str | None,
    *,
    magic: str = "train_distributed",
):
    """Run ``cell`` with ``%%train_distributed --backend kubernetes LINE`` while a thread plays
    the operator and this kubelet for the job of ``kind``; (the cell's output, the job).

    ``magic`` names another magic (``train_resume``: ``LINE`` is given as is, and a line
    magic when ``cell`` is None)."""
    from IPython.utils.capture import capture_output

    def kubelet():
        job = operator.wait_for_job(kind, "default", timeout=30)
        job.create_pods()
        run_pods_like_a_kubelet(kube, job, root)
        return job

    done = operator.background(kubelet)
    if magic == "train_distributed":
        line = f"--backend kubernetes {line}"
    with capture_output() as captured:
        if cell is None:
            ip.run_line_magic(magic, line)
        else:
            ip.run_cell_magic(magic, line, cell)
    return captured.stdout, done.result(60)
