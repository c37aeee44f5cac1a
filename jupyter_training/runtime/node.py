"""One pod, several ranks: the runtime as the node's launcher (torchrun's job in a pod).

When a pod is asked for more than one process (PyTorchJob ``nprocPerNode``,
TrainJob ``numProcPerNode``), the runtime started by the pod's command starts
that many copies of itself, each with its own ``LOCAL_RANK`` and global
``RANK``, and tags every line they print with their rank, so the pod's one log
stream still tells the ranks apart. A failing rank stops the others and the
pod exits with its code.

An elastic PyTorchJob's pod runs torchrun itself (``python -m
torch.distributed.run -m jupyter_training.runtime.node PAYLOAD``): torchrun
joins the rendezvous and starts this module once per rank it is given, which
runs the cell in a child the same way, tagged with the rank the rendezvous
decided (not the pod's index). Stdlib only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

#: Prefix of a line one of a pod's ranks printed: ``<GS>jt-rank N <line>``.
RANK_TAG = "\x1djt-rank "
#: Set in the children: they run the cell, not another launcher.
CHILD_ENV = "JUPYTER_TRAINING_NODE_CHILD"
STOP_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.05
#: How long the output of ranks that have exited is still read (their children may hold it).
READ_REST_SECONDS = 2.0
#: Under torchrun the ranks of a pod install the ``--pip`` packages once, under this lock.
PIP_LOCK = "/tmp/jupyter-training-pip.lock"


def tag(rank: int, line: str) -> str:
    return f"{RANK_TAG}{rank} {line}"


def untag(line: str) -> tuple[int | None, str]:
    """(rank, line) of a tagged line; (None, line) for any other."""
    if not line.startswith(RANK_TAG):
        return None, line
    number, _, rest = line[len(RANK_TAG) :].partition(" ")
    return (int(number), rest) if number.isdigit() else (None, line)


def run_node(payload: str, envs: list[Mapping[str, str]]) -> int:
    """Run one rank per env in ``envs`` on this node; the exit code of the first to fail."""
    lock = threading.Lock()
    processes = []
    for env in envs:
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "jupyter_training.runtime", payload],
                env={**env, CHILD_ENV: "1"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )

    def relay(rank: int, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with lock:
                sys.stdout.write(tag(rank, line) + "\n")
                sys.stdout.flush()

    readers = [
        threading.Thread(target=relay, args=(int(env["RANK"]), process), daemon=True)
        for env, process in zip(envs, processes, strict=True)
    ]
    for reader in readers:
        reader.start()
    previous = signal.signal(signal.SIGTERM, lambda *_: _stop(processes))  # pod deleted
    failed = 0
    try:
        # Exits are watched on the processes, not their pipes: a rank's own child
        # (a TensorBoard, say) may hold its stdout open after the rank has gone.
        while True:
            codes = [process.poll() for process in processes]
            failed = next((code for code in codes if code not in (None, 0)), 0)
            if failed:
                _stop(processes)  # one rank failed: the node's others cannot go on
                break
            if None not in codes:
                break
            time.sleep(POLL_SECONDS)
        for reader in readers:
            reader.join(READ_REST_SECONDS)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 128 - failed if failed < 0 else failed  # killed by signal N: 128+N, as a shell says


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()


def node_envs(env: Mapping[str, str], nproc: int, node_rank: int, nnodes: int) -> list[dict]:
    """The env of each of this node's ``nproc`` ranks, torchrun's way."""
    result = []
    for local in range(nproc):
        child = dict(env)
        child.update(
            LOCAL_RANK=str(local),
            LOCAL_WORLD_SIZE=str(nproc),
            RANK=str(node_rank * nproc + local),
            GROUP_RANK=str(node_rank),
            WORLD_SIZE=str(nnodes * nproc),
            GROUP_WORLD_SIZE=str(nnodes),
        )
        result.append(child)
    return result


def rank_main(argv: list[str]) -> int:
    """One rank torchrun started (an elastic pod): the cell in a child, its lines tagged."""
    if len(argv) != 1:
        print("usage: python -m jupyter_training.runtime.node PAYLOAD", file=sys.stderr)
        return 2
    _install_packages_once()
    env = dict(os.environ)
    env.setdefault("RANK", "0")
    return run_node(argv[0], [env])


def _install_packages_once() -> None:
    """``--pip`` packages, installed by the first of the pod's ranks (the others wait)."""
    if not os.environ.get("JUPYTER_TRAINING_PIP"):
        return
    import fcntl

    from .__main__ import install_packages

    with open(PIP_LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        if lock.read() != "installed":
            install_packages()
            lock.truncate(0)
            lock.write("installed")
            lock.flush()


if __name__ == "__main__":
    sys.exit(rank_main(sys.argv[1:]))
