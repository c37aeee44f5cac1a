"""Worker bootstrap: ``python -m jupyter_training.runtime PAYLOAD``.

Restores the notebook namespace from the payload, runs the cell inside the
framework's context, reports a failure as a framed ``error`` record plus a
readable traceback, and exits without the interpreter's slow (and, after
torch.distributed, crash-prone) teardown.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import linecache
import os
import sys
import threading
import traceback
import types
from pathlib import Path
from typing import Any

from .. import frameworks
from . import node, records
from .context import rank
from .masking import MaskingStream, mask, secret_values
from .payload import Payload
from .reporting import flush_reports, flushed_by_thread, send_context, send_results

_HERE = os.path.dirname(os.path.abspath(__file__))


class RestoreError(RuntimeError):
    """A notebook name could not be restored inside the worker."""


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m jupyter_training.runtime PAYLOAD", file=sys.stderr)
        return 2
    name = os.environ.get("JUPYTER_TRAINING_FRAMEWORK")
    try:
        # Unset: run by hand outside any job, one process with no framework setup.
        framework = frameworks.get(name) if name else frameworks.Framework()
    except frameworks.UnknownFramework as err:
        print(f"JUPYTER_TRAINING_FRAMEWORK: {err}", file=sys.stderr)
        return 2
    _FRAMEWORK.append(framework)
    ranks_here = 1 if node.CHILD_ENV in os.environ else framework.pod_processes(os.environ)
    if ranks_here > 1:  # a pod of several ranks: be its launcher
        node_rank, nnodes = framework.pod_node(os.environ)
        install_packages()  # once per pod, not once per rank
        return node.run_node(argv[0], node.node_envs(os.environ, ranks_here, node_rank, nnodes))
    framework.complete_env(os.environ)
    buffer_stdout()
    mask_secrets()
    try:
        payload = Payload.read(Path(argv[0]))
        if node.CHILD_ENV not in os.environ:  # a pod's launcher installed them already
            install_packages()
        enter_workdir()
        ship_files(payload)
        namespace = restore_namespace(payload)
        code = compile_source(payload.cell, payload.filename)
        with framework.around_cell():
            try:
                exec(code, namespace)
            finally:
                flush_reports()
                send_context()
            out = [n for n in os.environ.get("JUPYTER_TRAINING_OUT", "").split(",") if n]
            if out and rank() == 0:
                send_results(namespace, out)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException as err:
        report_failure(err)
        return 1
    return 0


#: The job's framework, once known (its modules decide how the worker exits).
_FRAMEWORK: list[frameworks.Framework] = []
FLUSH_SECONDS = 0.02
_FLUSHER: list[threading.Thread] = []
_FLUSHER_STOP = threading.Event()
#: The stream the flush thread flushes (the masking layer once secrets are masked).
_FLUSHED: list[Any] = []


def buffer_stdout() -> None:
    """Block-buffer the cell's stdout and flush it every 20 ms from a helper thread.

    PYTHONUNBUFFERED=1 (part of the Kubeflow env contract) makes every print a
    write system call: a rank printing as fast as it can runs ~5x slower than
    into a buffered file. Buffering with a short flush interval keeps prints
    near-live in the notebook and costs a rank almost nothing.
    """
    if os.environ.get("JUPYTER_TRAINING_UNBUFFERED") or sys.stdout.isatty():
        return
    raw = open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)  # noqa: SIM115
    sys.stdout = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)
    _FLUSHED.append(sys.stdout)

    def flush_periodically() -> None:
        while not _FLUSHER_STOP.wait(FLUSH_SECONDS):
            with contextlib.suppress(Exception):
                flush_reports(stale_only=True)  # a report the loop made before going quiet
                _FLUSHED[-1].flush()

    _FLUSHER.append(threading.Thread(target=flush_periodically, name="jt-flush", daemon=True))
    _FLUSHER[0].start()
    flushed_by_thread()


def mask_secrets() -> None:
    """Mask ``--secret-env`` values in everything printed to stdout and stderr."""
    values = secret_values()
    if not values:
        return
    sys.stdout = MaskingStream(sys.stdout, values)
    sys.stderr = MaskingStream(sys.stderr, values)
    _FLUSHED.append(sys.stdout)


def stop_flusher() -> None:
    """Stop the flush thread before the interpreter shuts down (it must not hold the lock)."""
    _FLUSHER_STOP.set()
    for thread in _FLUSHER:
        thread.join(1.0)


def install_packages() -> None:
    """``--pip`` packages, for images that lack one (no shell: arguments only)."""
    packages = json.loads(os.environ.get("JUPYTER_TRAINING_PIP", "[]"))
    if packages:
        print(f"[jupyter-training] pip install {' '.join(packages)}", flush=True)
        import subprocess  # only here: most workers never need it

        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "--", *packages]
        subprocess.run(command, check=True)


def enter_workdir() -> None:
    """Run in the job's working directory when the platform names one."""
    workdir = os.environ.get("JUPYTER_TRAINING_WORKDIR")
    if workdir:
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
        sys.path.insert(0, workdir)


def ship_files(payload: Payload) -> None:
    """Write ``--files`` into the files directory and make them importable."""
    if not payload.files:
        return
    directory = Path(os.environ.get("JUPYTER_TRAINING_FILES_DIR") or os.getcwd())
    payload.write_files(directory)
    sys.path.insert(0, str(directory))


def restore_namespace(payload: Payload) -> dict[str, Any]:
    """A fresh ``__main__`` holding the payload's imports, definitions and values."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    namespace = module.__dict__
    for name, module_name, qualname in payload.imports:
        namespace[name] = _import(name, module_name, qualname)
    deferred = []
    for name, source in payload.definitions:
        try:
            exec(compile_source(source, f"<notebook: {name}>"), namespace)
        except NameError:
            deferred.append((name, source))
    for blob in payload.values:
        try:
            namespace[blob.name] = payload.load_value(blob)
        except Exception as err:
            raise RestoreError(
                f"notebook variable {blob.name!r} could not be restored: {err}"
            ) from err
    for name, source in deferred:
        exec(compile_source(source, f"<notebook: {name}>"), namespace)
    return namespace


def compile_source(source: str, filename: str) -> types.CodeType:
    """Compile ``source`` and register it so tracebacks show its lines."""
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    return compile(source, filename, "exec")


def _import(name: str, module_name: str, qualname: str | None) -> Any:
    try:
        target: Any = importlib.import_module(module_name)
        for part in (qualname or "").split(".") if qualname else []:
            target = getattr(target, part)
    except (ImportError, AttributeError) as err:
        what = f"{module_name}.{qualname}" if qualname else module_name
        raise RestoreError(
            f"notebook name {name!r} needs {what}, which this worker cannot import: {err}"
        ) from None
    return target


def report_failure(err: BaseException) -> None:
    """Print the user's traceback (runtime frames removed) and an ``error`` record."""
    trace = traceback.TracebackException.from_exception(err)
    trace.stack = traceback.StackSummary.from_list(
        [frame for frame in trace.stack if not frame.filename.startswith(_HERE)]
    )
    values = secret_values()
    text = mask("".join(trace.format()), values)
    sys.stdout.flush()
    sys.stderr.write(text)
    sys.stderr.flush()
    records.emit(
        "error",
        stream=sys.__stderr__,
        exc_type=type(err).__name__,
        exc_module=type(err).__module__,
        exc_qualname=type(err).__qualname__,
        message=mask(str(err), values),
        traceback=text,
        rank=int(os.environ.get("RANK", "0")),
    )


def finish(code: int) -> bool:
    """Flush everything the cell wrote; whether to leave at once (without teardown)."""
    stop_flusher()
    with contextlib.suppress(Exception):
        flush_reports()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    fast = {m for f in _FRAMEWORK for m in f.fast_exit_modules} | {"torch"}
    return bool(fast & sys.modules.keys())


def _exit(code: int) -> None:
    if finish(code):
        os._exit(code)  # their interpreter teardown is slow and may abort (torch, jax, ...)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main(sys.argv[1:]))
