"""Workers forked from a warm supervisor rather than started as new interpreters.

A supervisor forked from a warm process (:mod:`.warm_process`) has the job's
framework imported already; each rank is then a fork of it that turns itself
into what ``python -m jupyter_training.runtime PAYLOAD`` would have been: its own
session, environment, working directory, standard streams, thread pools and
random seeds, and nothing of the supervisor's open files or signal handlers.
:class:`ForkedWorker` gives the supervisor the part of :class:`subprocess.Popen`
it uses, so watching, stopping and failure rules are the same for both.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import io
import os
import signal
import sys
import traceback

from .host import die_with_parent

_PR_SET_NAME = 15


class ForkedWorker:
    """A forked rank as the supervisor sees it: ``pid``, ``poll()`` and ``wait()``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def fork_worker(payload: str, env: dict[str, str], cwd: str | None, log_fd: int) -> ForkedWorker:
    """Fork one rank that runs ``payload`` with ``env`` in ``cwd``, writing to ``log_fd``."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    supervisor = os.getpid()
    pid = os.fork()
    if pid:
        return ForkedWorker(pid)
    code = 1
    try:
        become_worker(supervisor, env, cwd, log_fd)
        code = run_runtime(payload)
    except BaseException:
        with contextlib.suppress(Exception):
            os.write(2, traceback.format_exc().encode(errors="replace"))
    finally:
        os._exit(code)  # never return into the supervisor's code


def become_worker(supervisor: int, env: dict[str, str], cwd: str | None, log_fd: int) -> None:
    """In the fresh fork: everything an exec of a new interpreter would have reset."""
    os.setsid()
    die_with_parent()
    if os.getppid() != supervisor:  # it died between the fork and the line above
        os._exit(1)
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the store, pidfds, the wake pipe, logs
    if cwd:
        os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    atexit._clear()  # the supervisor's exit handlers are not the cell's
    from ...runtime import reporting

    reporting.reread_environment()
    sys.stdin = open(0, closefd=False, encoding="utf-8")  # noqa: SIM115
    reopen_std_streams()
    sys.path[0] = os.getcwd()  # what ``python -m`` puts first
    importlib.invalidate_caches()
    reseed_random()
    size_thread_pools(env)
    _name_process(f"jt-rank-{env.get('RANK', '?')}")


def run_runtime(payload: str) -> int:
    """Run the worker runtime on ``payload``; the exit code its interpreter would have had."""
    from ...runtime import __main__ as runtime

    sys.argv = [runtime.__file__, payload]
    code = runtime.main([payload])
    if runtime.finish(code):  # a fast exit: no teardown, as in a cold worker
        return code
    with contextlib.suppress(Exception):
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()  # join non-daemon threads, as interpreter exit does
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return code


def reseed_random() -> None:
    """Fresh seeds where a fork would share the warm process's (``random`` reseeds itself)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        with contextlib.suppress(Exception):
            numpy.random.seed()


def size_thread_pools(env: dict[str, str]) -> None:
    """Give BLAS, OpenMP and torch the thread counts their variables ask for.

    They read ``OMP_NUM_THREADS`` and friends when they load, which happened in
    the warm process (with one thread each, so it started none).
    """
    loaded = {"numpy", "scipy", "torch", "xgboost", "sklearn"} & sys.modules.keys()
    if not loaded:
        return
    cpus = os.cpu_count() or 1
    omp = _positive(env.get("OMP_NUM_THREADS")) or cpus
    blas = _positive(env.get("OPENBLAS_NUM_THREADS") or env.get("MKL_NUM_THREADS")) or omp
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=blas, user_api="blas")
        threadpool_limits(limits=omp, user_api="openmp")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(omp)


def _positive(value: str | None) -> int | None:
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if number > 0 else None


def reopen_std_streams() -> None:
    """``sys.stdout`` and ``sys.stderr`` anew on fds 1 and 2, as ``PYTHONUNBUFFERED=1``
    makes them (after a fork pointed those fds elsewhere)."""
    sys.stdout = sys.__stdout__ = _text_stream(1, "strict")
    sys.stderr = sys.__stderr__ = _text_stream(2, "backslashreplace")


def _text_stream(fd: int, errors: str) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(raw, encoding="utf-8", errors=errors, write_through=True)


def _name_process(name: str) -> None:
    """The name ``ps`` and ``top`` show (the command line is the warm process's)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None)
        libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
