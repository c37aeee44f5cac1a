"""``report()``, ``log_params()``, ``artifacts_dir()`` and results: what worker code sends home.

They travel as framed records (:mod:`.records`) on the worker's own stdout, so
they need no extra network path and work the same locally and in a pod.
Reports are batched: a call stamps the point (wall time and a sequence number,
which make it unique so two followers store it once) and queues it; the queue
goes out as one record every 100 ms or 2,000 points, so a loop reporting
10,000 times a second barely notices.
"""

from __future__ import annotations

import array
import base64
import itertools
import operator
import os
import pickle
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import records
from .context import rank
from .masking import mask, secret_values
from .params import plain_value

#: Largest pickled result sent through the output channel (env JUPYTER_TRAINING_RESULT_LIMIT).
DEFAULT_RESULT_LIMIT = 64 * 1024 * 1024
#: Base64 characters per result record line.
CHUNK_CHARS = 512 * 1024
#: Queued reports go out at least this often (seconds) and at most this many per record.
FLUSH_SECONDS = 0.1
FLUSH_POINTS = 2000
ARTIFACTS_ENV = "JUPYTER_TRAINING_ARTIFACTS_DIR"
#: Set where a job cannot keep artifacts: the message ``artifacts_dir()`` raises.
ARTIFACTS_REFUSAL_ENV = "JUPYTER_TRAINING_ARTIFACTS_REFUSAL"
#: Modules whose versions a run records when the cell imported them.
VERSIONED_MODULES = (
    "torch",
    "xgboost",
    "jax",
    "jaxlib",
    "tensorflow",
    "lightning",
    "accelerate",
    "transformers",
    "numpy",
)

_pending: deque[tuple[float, int, int | None, int | None, dict[str, float]]] = deque()
_sequence = itertools.count()
_flush_lock = threading.Lock()
_last_flush = [0.0]


def _after_fork_in_child() -> None:
    """A forked child (a data loader) starts with no queue, its own lock, and no flush
    thread (threads do not survive fork): its reports are its own."""
    global _flush_lock
    _pending.clear()
    _flush_lock = threading.Lock()
    _FLUSHER[0] = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
#: Whether this process runs inside a job (read once; tests may reset it).
_IN_JOB = ["JUPYTER_TRAINING_JOB_ID" in os.environ]


def reread_environment() -> None:
    """Read again what this module read from the environment when imported (a warm
    worker's environment is set after the fork, long after the import)."""
    _IN_JOB[0] = "JUPYTER_TRAINING_JOB_ID" in os.environ


#: Whether a flush thread sends the reports that wait (see :func:`flushed_by_thread`).
_FLUSHER = [False]


def report(step: int | None = None, total: int | None = None, **metrics: Any) -> None:
    """Report progress and metrics from worker code: ``report(step=i, total=n, loss=l)``.

    Shows as a progress bar per rank and a live chart per metric in the
    notebook, and every point is kept in the run's history. Metric values
    must be numbers (tensors and NumPy scalars are converted). Ordinary
    prints are unaffected.
    """
    # The common case (ints and floats) costs a type check each: this runs in training loops.
    if step is not None and (type(step) is not int or not _MIN < step < _MAX):
        step = _whole("step", step)
    if total is not None and (type(total) is not int or not _MIN < total < _MAX):
        total = _whole("total", total)
    for value in metrics.values():
        if type(value) is not float and type(value) is not int:
            metrics = {name: _number(name, value) for name, value in metrics.items()}
            break
    if not _IN_JOB[0]:  # called outside a job: just show it
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        print(f"report: step {step}/{total} {shown}".replace(" None", " -"))
        return
    _pending.append((time.time(), next(_sequence), step, total, metrics))
    if len(_pending) >= FLUSH_POINTS:
        flush_reports()
    elif not _FLUSHER[0] and time.monotonic() - _last_flush[0] >= FLUSH_SECONDS:
        flush_reports()  # no flush thread here: the loop sends what has waited


def flushed_by_thread() -> None:
    """Called by the runtime once its flush thread sends waiting reports (``report()`` then
    never looks at the clock)."""
    _FLUSHER[0] = True


def flush_reports(stale_only: bool = False) -> None:
    """Send the queued reports as one record (``stale_only``: only if the oldest has waited)."""
    if not _pending:
        return
    if stale_only and time.monotonic() - _last_flush[0] < FLUSH_SECONDS:
        return
    with _flush_lock:  # one sender at a time, so points leave in the order they were made
        _last_flush[0] = time.monotonic()
        points = []
        while _pending and len(points) < 10 * FLUSH_POINTS:
            points.append(_pending.popleft())
        if points:
            try:
                fields = pack_points(points)
            except (OverflowError, TypeError, ValueError):  # a value no column holds
                fields = {"points": points}
            records.emit("reports", rank=rank(), **fields)


def pack_points(points: list[tuple[float, int, int | None, int | None, dict[str, float]]]):
    """A batch of points as record fields: packed columns when every point has the same
    metric names (the usual loop), else a plain list. :func:`unpack_points` reverses it."""
    names = points[0][4].keys()
    for point in points:
        if point[4].keys() != names:
            return {"points": points}
    return {
        "n": len(points),
        "time": _pack("d", [p[0] for p in points]),
        "seq": _pack("q", [p[1] for p in points]),
        "step": _pack("q", [_NONE if p[2] is None else p[2] for p in points]),
        "total": _pack("q", [_NONE if p[3] is None else p[3] for p in points]),
        "metrics": {name: _pack("d", [p[4][name] for p in points]) for name in names},
    }


def unpack_points(data: Mapping[str, Any]):
    """``(time, seq, step, total, metrics)`` tuples from a ``reports`` record."""
    if "points" in data:
        return [tuple(p) for p in data["points"]]
    count = int(data["n"])
    times, seqs = _unpack("d", data["time"]), _unpack("q", data["seq"])
    steps, totals = _unpack("q", data["step"]), _unpack("q", data["total"])
    columns = {name: _unpack("d", text) for name, text in data["metrics"].items()}
    return [
        (
            times[i],
            seqs[i],
            None if steps[i] == _NONE else steps[i],
            None if totals[i] == _NONE else totals[i],
            {name: column[i] for name, column in columns.items()},
        )
        for i in range(count)
    ]


#: Stands for "not given" in a packed step or total column; steps lie strictly between.
_NONE = -(2**63)
_MIN, _MAX = _NONE, 2**63


def _pack(code: str, values: Any) -> str:
    packed = array.array(code, values)
    if sys.byteorder == "big":
        packed.byteswap()  # little-endian on the wire, whoever reads it
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _unpack(code: str, text: str) -> array.array:
    packed = array.array(code)
    packed.frombytes(base64.b64decode(text))
    if sys.byteorder == "big":
        packed.byteswap()
    return packed


def log_params(**params: Any) -> None:
    """Record params of this run: ``log_params(lr=0.01, layers=[64, 64])``.

    Values must be plain data (numbers, strings, bools, None, short lists and
    dicts of them); they join the magic's flags and the notebook values the
    cell read, and win over both.
    """
    values = {}
    for name, value in params.items():
        ok, data = plain_value(value)
        if not ok:
            raise TypeError(
                f"log_params(): {name!r} is a {type(value).__name__}, not plain data; pass "
                "numbers, strings, bools, None or short lists/dicts of them (log a summary, "
                "e.g. its shape, instead)"
            )
        values[name] = data
    if "JUPYTER_TRAINING_JOB_ID" not in os.environ:
        print("params: " + " ".join(f"{k}={v!r}" for k, v in values.items()))
        return
    secrets = secret_values()
    if secrets:  # records bypass the masked stdout: mask --secret-env values here
        values = _masked(values, secrets)
    records.emit("params", params=values, rank=rank())


def _masked(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return mask(value, secrets)
    if isinstance(value, list):
        return [_masked(item, secrets) for item in value]
    if isinstance(value, dict):
        return {key: _masked(item, secrets) for key, item in value.items()}
    return value


def artifacts_dir() -> Path:
    """The directory whose files are kept with this run (created on first use).

    Every rank gets the same directory (locally: under the job store; on
    Kubernetes: on the job's ``--volume``). Outside a job: ``./artifacts``.
    """
    return job_directory(ARTIFACTS_ENV, ARTIFACTS_REFUSAL_ENV, "artifacts", "artifacts_dir")


def job_directory(env: str, refusal_env: str, outside: str, caller: str) -> Path:
    """The directory the backend names in ``env`` (created on first use); the message in
    ``refusal_env`` where it keeps none; ``./<outside>`` outside a job."""
    path = os.environ.get(env)
    if not path:
        refusal = os.environ.get(refusal_env)
        if refusal:
            raise RuntimeError(refusal)
        if "JUPYTER_TRAINING_JOB_ID" in os.environ:
            raise RuntimeError(f"{caller}(): this job's backend keeps no {outside}")
        path = outside
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def send_context() -> None:
    """Rank 0 records what it ran with: Python and the versions of the frameworks imported."""
    if "JUPYTER_TRAINING_JOB_ID" not in os.environ or rank() != 0:
        return
    versions = {"python": sys.version.split()[0]}
    for name in VERSIONED_MODULES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module is not None else None
        if isinstance(version, str):
            versions[name] = version
    host = os.uname().nodename if hasattr(os, "uname") else ""
    records.emit("context", versions=versions, host=host, rank=0)


def _whole(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"report(): {name} must be a whole number, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"report(): {name} must be a whole number, got {value!r}") from None
    if not _MIN < number < _MAX:
        raise ValueError(f"report(): {name} {number} is out of range (a 64-bit integer)")
    return number


def _number(name: str, value: Any) -> float:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"report(): metric {name!r} must be a number, got {type(value).__name__}")
    return value


def send_results(namespace: Mapping[str, Any], names: list[str]) -> None:
    """Send the ``--out`` variables of rank 0 back to the notebook, pickled and framed."""
    limit = int(os.environ.get("JUPYTER_TRAINING_RESULT_LIMIT", DEFAULT_RESULT_LIMIT))
    for name in names:
        if name not in namespace:
            records.emit("result", name=name, error=f"the cell did not define {name!r}")
            continue
        try:
            data = pickle.dumps(namespace[name], protocol=4)
        except Exception as err:
            records.emit("result", name=name, error=f"{name!r} cannot be pickled: {err}")
            continue
        if len(data) > limit:
            records.emit(
                "result",
                name=name,
                error=f"{name!r} is {_size(len(data))}, over the {_size(limit)} that travel "
                "through the job's output (c.TrainingApp.max_result_bytes); save it to a shared "
                "--volume path instead",
            )
            continue
        text = base64.b64encode(data).decode()
        chunks = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
        for index, chunk in enumerate(chunks):
            records.emit("result", name=name, chunk=index, chunks=len(chunks), data=chunk)


def _size(nbytes: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes} bytes"
