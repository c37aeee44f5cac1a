"""Warm workers, the kernel's side: one warm process per framework, kept fresh.

:class:`WarmProcesses` starts a warm process (:mod:`.warm_process`) in the
background, hands it jobs once it is ready, and falls back to a cold start
(returns False) whenever warm would not be exactly what a cold start gives:
not ready yet, died, hung, started with another interpreter, import-time
environment or installed packages, or a job whose ``--env`` changes what
imports read. Such a process is replaced in the background; the job never
waits for it.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import select
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .warm_process import BOOT, ONE_THREAD_ENV, not_warmable

#: Environment variables libraries read when they are imported: a change to one of them
#: (in the kernel, or in a job's --env) makes a warm process stale.
IMPORT_ENV_PREFIXES = (
    "PYTHON",
    "LD_",
    "MALLOC_",
    "OMP_",
    "GOMP_",
    "KMP_",
    "MKL_",
    "OPENBLAS_",
    "TORCH",
    "PYTORCH_",
    "CUDA_",
    "NCCL_",
    "XLA_",
    "JAX_",
    "TF_",
    "HF_",
    "TRANSFORMERS_",
    "TOKENIZERS_",
    "XGBOOST_",
    "KERAS_",
)
#: Applied to each forked worker after the fork, so they may differ per job.
APPLIED_AFTER_FORK = frozenset({"CUDA_VISIBLE_DEVICES", *ONE_THREAD_ENV})
#: How long a launch waits for the warm process's answer before calling it hung.
REPLY_SECONDS = 5.0
#: Most replacements of an unsafe warm process (one that started threads) in a row.
MAX_UNSAFE = 4


def import_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` that imports read."""
    return {
        key: value
        for key, value in environ.items()
        if key.startswith(IMPORT_ENV_PREFIXES) and key not in APPLIED_AFTER_FORK
    }


def install_stamp() -> tuple[float, ...]:
    """Changes when a package is installed, upgraded or removed (site-packages' mtimes)."""
    paths = sysconfig.get_paths()
    roots = dict.fromkeys(paths[k] for k in ("purelib", "platlib"))
    stamps = []
    for root in roots:
        with contextlib.suppress(OSError):
            stamps.append(os.stat(root).st_mtime)
    return tuple(stamps)


def imported_modules(cell: str, imports: Iterable[tuple[str, str, str | None]]) -> list[str]:
    """Modules the cell imports itself or uses through notebook imports (dotted names)."""
    names = [module for _, module, _ in imports]
    with contextlib.suppress(SyntaxError, ValueError):
        for node in ast.walk(ast.parse(cell)):
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    return [name for name in dict.fromkeys(names) if name.partition(".")[0] != "__main__"]


@dataclass
class WarmProcess:
    """One running warm process, the pipe to it and what it was started with."""

    framework: str
    key: tuple[Any, ...]
    modules: tuple[str, ...]
    process: subprocess.Popen[bytes]
    ready: dict[str, Any] | None = None
    buffered: bytes = b""
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(
        cls, framework: str, key: tuple[Any, ...], modules: tuple[str, ...], idle: float, log: Path
    ) -> WarmProcess:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as errors:
            command = [sys.executable, "-c", BOOT, "--framework", framework]
            command += ["--modules", ",".join(modules), "--idle", str(idle)]
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                cwd="/",
                start_new_session=True,
            )
        os.set_blocking(process.stdout.fileno(), False)
        return cls(framework, key, modules, process)

    def alive(self) -> bool:
        return self.process.poll() is None

    def poll_ready(self, timeout: float = 0.0) -> dict[str, Any] | None:
        """Its ready line once it has sent one (waits up to ``timeout`` seconds for it)."""
        deadline = time.monotonic() + timeout
        while self.ready is None:
            line = self._read_line(max(0.0, deadline - time.monotonic()))
            if line is None:
                return None
            self.ready = line
        return self.ready

    def launch(self, request: dict[str, Any]) -> bool:
        """Ask it to fork a supervisor; False when it is dead, hung or refused."""
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except (OSError, ValueError):
            return False
        reply = self._read_line(REPLY_SECONDS)
        return bool(reply and reply.get("launched"))

    def close(self) -> None:
        """Close its stdin (it leaves at once) and reap it in the background."""
        with contextlib.suppress(OSError, ValueError):
            self.process.stdin.close()
        if self.alive():
            reaper = threading.Thread(target=self._reap, name="jt-warm-reaper", daemon=True)
            reaper.start()

    def _reap(self) -> None:
        try:
            self.process.wait(timeout=REPLY_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _read_line(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        out = self.process.stdout
        while b"\n" not in self.buffered:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([out], [], [], max(0.0, left))
            if not readable:
                return None
            chunk = os.read(out.fileno(), 65536)
            if not chunk:  # it exited
                return None
            self.buffered += chunk
        line, self.buffered = self.buffered.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return None


class WarmProcesses:
    """The kernel's warm processes, one per framework (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._current: dict[str, WarmProcess] = {}
        self._next: dict[str, WarmProcess] = {}
        self._wanted: dict[str, tuple[str, ...]] = {}
        #: Modules that started threads (or worse) on import: never kept warm again.
        self.unsafe: dict[str, str] = {}
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        """In a fork of this process: the parent's warm processes are not ours to use."""
        self._lock = threading.RLock()
        for warm in [*self._current.values(), *self._next.values()]:
            for pipe in (warm.process.stdin, warm.process.stdout):
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    pipe.close()  # this copy only: the parent's stays open
        self._current, self._next = {}, {}

    def key(self, environ: Mapping[str, str] | None = None) -> tuple[Any, ...]:
        """What a warm process must have been started with to stand in for a cold start."""
        environ = os.environ if environ is None else environ
        return (sys.executable, tuple(sorted(import_env(environ).items())), install_stamp())

    def launch(
        self,
        framework: str,
        request: dict[str, Any],
        *,
        job_env: Mapping[str, str],
        modules: Iterable[str] = (),
        idle: float,
        log: Path,
    ) -> bool:
        """Start a job's supervisor from the warm process; False: start it cold instead.

        ``job_env`` is the job's ``--env``; ``modules`` what its cell imports (kept warm
        for the next job).
        """
        with self._lock:
            key = self.key()
            wanted = self._want(framework, modules)
            warm = self._ready(framework, key)
            if warm is None:
                self._start(framework, key, wanted, idle, log)
                return False
            if import_env(job_env):  # the job changes what imports read: this one runs cold
                return False
            if not warm.launch(request):
                self._replace(framework, key, wanted, idle, log)
                return False
            if not set(wanted) <= set(warm.modules):  # keep the cell's new imports warm too
                self._start(framework, key, wanted, idle, log)
            return True

    def warm_up(
        self,
        framework: str,
        *,
        modules: Iterable[str] = (),
        idle: float,
        log: Path,
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """Start (or keep) the framework's warm process and wait until it is ready."""
        deadline = time.monotonic() + timeout
        with self._lock:
            key = self.key()
            wanted = self._want(framework, modules)
            while time.monotonic() < deadline:
                warm = self._ready(framework, key)
                if warm is not None and set(wanted) <= set(warm.modules):
                    return warm.ready or {}
                wanted = self._want(framework, ())  # less what proved unsafe
                pending = self._start(framework, key, wanted, idle, log)
                pending.poll_ready(min(0.5, max(0.0, deadline - time.monotonic())))
        raise TimeoutError(f"the warm {framework} process was not ready within {timeout:g} s")

    def status(self) -> dict[str, Any]:
        """Each framework's warm process: pid, what it imported, whether it is ready."""
        with self._lock:
            return {
                name: {
                    "pid": warm.process.pid,
                    "alive": warm.alive(),
                    "ready": warm.ready is not None,
                    "imported": (warm.ready or {}).get("imported", []),
                    "skipped": (warm.ready or {}).get("skipped", {}),
                }
                for name, warm in self._current.items()
            }

    def close(self) -> None:
        """Stop every warm process (each leaves when its stdin closes)."""
        with self._lock:
            for warm in [*self._current.values(), *self._next.values()]:
                warm.close()
            self._current.clear()
            self._next.clear()

    def _want(self, framework: str, modules: Iterable[str]) -> tuple[str, ...]:
        """Every installed module recent cells imported (the standard library loads fast)."""
        fresh = [
            m
            for m in modules
            if m.partition(".")[0] not in sys.stdlib_module_names and not_warmable(m) is None
        ]
        wanted = dict.fromkeys([*self._wanted.get(framework, ()), *fresh])
        self._wanted[framework] = tuple(m for m in wanted if m not in self.unsafe)
        return self._wanted[framework]

    def _ready(self, framework: str, key: tuple[Any, ...]) -> WarmProcess | None:
        """The framework's warm process if it is ready and current (promoting its successor)."""
        pending = self._next.get(framework)
        if pending is not None:
            if not self._usable(pending, key):
                pending.close()
                del self._next[framework]
            elif pending.ready is not None:
                self._current[framework].close()
                self._current[framework] = self._next.pop(framework)
        warm = self._current.get(framework)
        if warm is None:
            return None
        if not self._usable(warm, key):
            warm.close()
            del self._current[framework]
            return None
        return warm if warm.ready is not None else None

    def _usable(self, warm: WarmProcess, key: tuple[Any, ...]) -> bool:
        """Alive, started for ``key`` and not unsafe (a module it found unsafe is noted)."""
        ready = warm.poll_ready()
        if ready is not None and "unsafe" in ready:
            self.unsafe[ready["unsafe"]] = ready.get("reason", "")
            self._want(warm.framework, ())
            return False
        return warm.key == key and warm.alive()

    def _start(
        self, framework: str, key: tuple[Any, ...], modules: tuple[str, ...], idle: float, log: Path
    ) -> WarmProcess:
        """The warm process that will have ``modules``: current, starting, or started now."""
        if len(self.unsafe) > MAX_UNSAFE:  # something keeps starting threads: framework only
            modules = ()
        for warm in (self._current.get(framework), self._next.get(framework)):
            fits = warm is not None and warm.key == key and warm.alive()
            if fits and set(modules) <= set(warm.modules):
                return warm
        started = WarmProcess.start(framework, key, modules, idle, log)
        if framework in self._current:  # it serves until its successor is ready
            previous = self._next.pop(framework, None)
            if previous is not None:
                previous.close()
            self._next[framework] = started
        else:
            self._current[framework] = started
        return started

    def _replace(
        self, framework: str, key: tuple[Any, ...], modules: tuple[str, ...], idle: float, log: Path
    ) -> None:
        broken = self._current.pop(framework, None)
        if broken is not None:
            broken.close()
            with contextlib.suppress(OSError):
                broken.process.kill()
        pending = self._next.pop(framework, None)
        if pending is not None:
            self._current[framework] = pending
        self._start(framework, key, modules, idle, log)


#: This process's warm processes (the kernel's, or a server's).
WARM = WarmProcesses()
