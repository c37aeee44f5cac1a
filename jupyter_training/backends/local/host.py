"""Small helpers for the host the local backend runs jobs on: GPUs, ports, processes.

Used by the kernel side (:mod:`.backend`) and the supervisor (:mod:`.supervisor`);
standard library only, nothing heavy.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


def visible_gpu_ids(environ: dict[str, str] | None = None) -> list[str]:
    """GPU ids this process may hand out: ``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi``."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listing.splitlines() if line.strip()]


def free_ports(count: int) -> tuple[int, ...]:
    """``count`` distinct TCP ports on loopback that are free right now."""
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return tuple(sock.getsockname()[1] for sock in sockets)


def process_start_time(pid: int) -> str | None:
    """Start-time stamp of a live ``pid`` (tells it from a reused pid); None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie is not alive


def wait_readable(fds: list[int], timeout: float) -> None:
    """Sleep until one of ``fds`` is readable or ``timeout`` seconds pass."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    poller.poll(max(0, int(timeout * 1000)))


def exit_fd(pid: int) -> int | None:
    """A pidfd that turns readable when ``pid`` exits (None where the OS has none)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def wait_for_exit(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """``process``'s exit code once it exits, None after ``timeout`` seconds.

    Woken by the exit itself (a pidfd) rather than :meth:`Popen.wait`'s polling,
    whose sleeps grow to 50 ms.
    """
    fd = exit_fd(process.pid)
    if fd is None:
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
    try:
        wait_readable([fd], timeout)
    finally:
        os.close(fd)
    return process.poll()


def oom_kills() -> int | None:
    """How many processes the kernel's OOM killer has killed since boot (None if unknown)."""
    try:
        with open("/proc/vmstat") as stats:
            for line in stats:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def die_with_parent() -> None:
    """In the child before exec: get SIGKILL if the supervisor dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def signal_groups(processes: Any, signum: int) -> None:
    """Send ``signum`` to each process's group (started with ``start_new_session``)."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; ``signal N`` for a number with no name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
