"""The warm process: a framework imported once, job supervisors forked from it.

Started by the kernel (:mod:`.warm`) as ``python -c BOOT``, with a pipe on its
stdin and stdout. It imports the supervisor, the worker runtime and the modules
it is asked for (third-party and standard-library modules only, never the
notebook's own code), checks that nothing it imported started a thread, opened
a socket or initialized CUDA (a fork would inherit them broken), says so on
stdout, then serves one JSON line per job: fork a detached supervisor with the
job's environment, whose workers are forks of it in turn (:mod:`.forking`).
It leaves when its stdin closes (the kernel exited) or after ``--idle``
seconds without a job.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import select
import sys
import sysconfig
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Imported before anything else: what every warm job runs.
ALWAYS = ("jupyter_training.backends.local.supervisor", "jupyter_training.runtime.__main__")
#: Thread pools sized to one thread while importing (each worker resizes them after the
#: fork, from its own environment: :func:`.forking.size_thread_pools`).
ONE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

BOOT = (
    "import sys\n"
    "sys.path.pop(0)\n"  # no '' entry: nothing is imported from the kernel's directory
    "from jupyter_training.backends.local.warm_process import main\n"
    "main(sys.argv[1:])\n"
)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--framework", default="")
    parser.add_argument("--modules", default="")
    parser.add_argument("--idle", type=float, default=600.0)
    args = parser.parse_args(argv)
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):  # a stray print or input() must not touch the pipes
        os.dup2(devnull, fd)
    started = time.perf_counter()
    ready = warm_up(args.framework, [m for m in args.modules.split(",") if m])
    ready["seconds"] = round(time.perf_counter() - started, 3)
    ready["pid"] = os.getpid()
    _reply(replies, ready)
    if "unsafe" in ready:
        os._exit(0)
    serve(requests, replies, args.idle)
    os._exit(0)


def warm_up(framework: str, modules: list[str]) -> dict[str, Any]:
    """Import what jobs need; the reply says what was imported, skipped, or was unsafe."""
    per_job = job_variables()
    saved = {name: os.environ.get(name) for name in [*ONE_THREAD_ENV, *per_job]}
    for name in per_job:  # absent while importing, so looking one up shows
        os.environ.pop(name, None)
    os.environ.update(dict.fromkeys(ONE_THREAD_ENV, "1"))
    imported, skipped = [], {}
    try:
        for name in ALWAYS:
            importlib.import_module(name)
        if framework:
            from ...frameworks import get

            modules = [*get(framework).warm_modules, *modules]
        for name in dict.fromkeys(modules):
            reason = not_warmable(name)
            looked_up: set[str] = set()
            if reason is None:
                try:
                    with missing_lookups(looked_up):
                        importlib.import_module(name)
                except Exception as err:  # the job's own import will report it
                    reason = f"{type(err).__name__}: {err}"
            if reason is not None:
                skipped[name] = reason
                continue
            imported.append(name)
            read = sorted(looked_up & per_job)
            unsafe = f"it reads {', '.join(read)} when imported" if read else fork_hazard()
            if unsafe:
                return {"unsafe": name, "reason": unsafe, "imported": imported}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return {"ready": True, "imported": imported, "skipped": skipped, "path": sys.path}


def job_variables() -> set[str]:
    """What a job sets per rank (RANK, MASTER_PORT, CUDA_VISIBLE_DEVICES, ...): a module
    that reads one when imported would keep the warm process's answer in every rank."""
    from ...frameworks import all_frameworks
    from ...spec import JobSpec
    from .supervisor import worker_env

    names: set[str] = set()
    for framework in all_frameworks():
        spec = JobSpec(framework=framework.name, workers=1)
        ports = (1,) * framework.ports_needed(1)
        names |= set(worker_env("x", spec, 0, ports, [], {}, "x", 1, 0, "x", "x"))
        names |= set(framework.reserved_env)
    return names - set(ONE_THREAD_ENV)


@contextlib.contextmanager
def missing_lookups(found: set[str]) -> Iterator[None]:
    """Collect the names looked up in ``os.environ`` and not found there, meanwhile."""
    environ_type = type(os.environ)
    lookup = environ_type.__getitem__

    def recording(self: Any, key: str) -> str:
        try:
            return lookup(self, key)
        except KeyError:
            found.add(key)
            raise

    environ_type.__getitem__ = recording  # type: ignore[method-assign]
    try:
        yield
    finally:
        environ_type.__getitem__ = lookup  # type: ignore[method-assign]


def fork_hazard() -> str | None:
    """What this process holds that a fork would inherit broken (None: nothing)."""
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1:
        return f"it started {threads - 1} thread(s)"
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                return "it opened a socket"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return "it initialized CUDA"
    return None


def not_warmable(name: str) -> str | None:
    """Why ``name`` is not imported here (None: an installed, non-editable module)."""
    top = name.partition(".")[0]
    module = sys.modules.get(top)
    try:
        if module is not None:
            paths = list(getattr(module, "__path__", []))
            origin = getattr(module, "__file__", None) or next(iter(paths), "built-in")
        else:
            spec = importlib.util.find_spec(top)
            if spec is None:
                return "not installed"
            origin = spec.origin or next(iter(spec.submodule_search_locations or []), "")
    except (ImportError, ValueError) as err:
        return f"{type(err).__name__}: {err}"
    if origin in ("built-in", "frozen"):
        return None
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    if not any(Path(origin).is_relative_to(root) for root in roots):
        return "not an installed package (the notebook's own code is never kept warm)"
    return None


def serve(requests: Any, replies: Any, idle: float) -> None:
    """Fork a supervisor per request until stdin closes or ``idle`` seconds pass."""
    buffered = b""
    while True:
        readable, _, _ = select.select([requests], [], [], idle)
        if not readable:
            return
        chunk = requests.read(65536)
        if not chunk:
            return
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            try:
                reply = launch(json.loads(line))
            except Exception as err:
                reply = {"error": f"{type(err).__name__}: {err}"}
            _reply(replies, reply)


def launch(request: dict[str, Any]) -> dict[str, Any]:
    """Fork a detached supervisor for one job (a double fork: it is nobody's child here)."""
    middle = os.fork()
    if middle == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                run_supervisor(request)
        finally:
            os._exit(0)
    _, status = os.waitpid(middle, 0)
    code = os.waitstatus_to_exitcode(status)
    return {"launched": code == 0}


def run_supervisor(request: dict[str, Any]) -> None:
    """In the detached fork: become the job's supervisor, as ``supervisor.BOOT`` would."""
    code = 0
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the kernel's pipes above all
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from .forking import reopen_std_streams

        reopen_std_streams()
        from .supervisor import main as supervise

        supervise(request["argv"], forked=True, warm=True)
    except BaseException:
        code = 1
        with contextlib.suppress(Exception):
            os.write(2, traceback.format_exc().encode(errors="replace"))
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(code)


def _reply(replies: Any, message: dict[str, Any]) -> None:
    replies.write(json.dumps(message) + "\n")
