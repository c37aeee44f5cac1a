"""``report()`` and results: structured records a worker writes into its output.

Both travel as framed records (:mod:`.records`) on the worker's own stdout, so
they need no extra network path and work the same locally and in a pod.
"""

from __future__ import annotations

import base64
import operator
import os
import pickle
from collections.abc import Mapping
from typing import Any

from . import records
from .context import rank

#: Largest pickled result sent through the output channel (env JUPYTER_TRAINING_RESULT_LIMIT).
DEFAULT_RESULT_LIMIT = 64 * 1024 * 1024
#: Base64 characters per result record line.
CHUNK_CHARS = 512 * 1024


def report(step: int | None = None, total: int | None = None, **metrics: Any) -> None:
    """Report progress and metrics from worker code: ``report(step=i, total=n, loss=l)``.

    Shows as a progress bar per rank and a live chart per metric in the
    notebook. Metric values must be numbers (tensors and NumPy scalars are
    converted). Ordinary prints are unaffected.
    """
    step, total = _whole("step", step), _whole("total", total)
    values = {name: _number(name, value) for name, value in metrics.items()}
    if "JUPYTER_TRAINING_JOB_ID" not in os.environ:  # called outside a job: just show it
        shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        print(f"report: step {step}/{total} {shown}".replace(" None", " -"))
        return
    records.emit("report", step=step, total=total, metrics=values, rank=rank())


def _whole(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"report(): {name} must be a whole number, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"report(): {name} must be a whole number, got {value!r}") from None


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
