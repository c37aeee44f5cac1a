"""Checkpoints: ``checkpoint_dir()``, ``save_checkpoint()``, ``latest_checkpoint()``.

The directory belongs to the job's lineage (the job, its restarts and every job
resumed from it), is the same path on every rank and outlives the job. A
checkpoint is one file, ``step-<12 digits>.<format>``, written under a hidden
temporary name, flushed to disk and renamed into place: a kill mid-write
leaves only the temporary file, which is never taken for a checkpoint. PyTorch
objects (state dicts, modules, anything holding a tensor) are written with
``torch.save``, XGBoost boosters with ``save_model`` (resume with
``xgb.train(..., xgb_model=ckpt.path)``), anything else with pickle.

Stdlib-only: torch and xgboost are used when the cell has imported them.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import sys
import time
from pathlib import Path
from typing import Any

from . import records
from .context import rank
from .reporting import job_directory

CHECKPOINT_ENV = "JUPYTER_TRAINING_CHECKPOINT_DIR"
#: Set where a job cannot keep checkpoints: the message ``checkpoint_dir()`` raises.
CHECKPOINT_REFUSAL_ENV = "JUPYTER_TRAINING_CHECKPOINT_REFUSAL"
#: The attempt, set for every framework; torchrun's name is read where it is alone.
RESTART_COUNT_ENV = "JUPYTER_TRAINING_RESTART_COUNT"
_TORCHRUN_RESTART_COUNT_ENV = "TORCHELASTIC_RESTART_COUNT"
_NAME = re.compile(r"^step-(\d{12})\.(pt|ubj|pkl)$")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint: its ``step``, its file ``path`` and the ``format`` it was
    written in (``pt``, ``ubj`` or ``pkl``)."""

    step: int
    path: Path
    format: str

    def load(self, **torch_load: Any) -> Any:
        """The saved object: what ``torch.load`` gives (``map_location=...`` is passed
        on), an ``xgboost.Booster``, or the unpickled object."""
        if self.format == "pt":
            import torch

            torch_load.setdefault("weights_only", False)
            return torch.load(self.path, **torch_load)
        if self.format == "ubj":
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(str(self.path))
            return booster
        with open(self.path, "rb") as source:
            return pickle.load(source)


def checkpoint_dir() -> Path:
    """The lineage's checkpoint directory (created on first use).

    Locally it lives under the job store; on Kubernetes on the job's
    ``--volume`` or ``--checkpoint`` claim. Outside a job: ``./checkpoints``.
    """
    return job_directory(CHECKPOINT_ENV, CHECKPOINT_REFUSAL_ENV, "checkpoints", "checkpoint_dir")


def restart_count() -> int:
    """Which attempt this is: 0 for the first, 1 after the first restart, ..."""
    value = os.environ.get(RESTART_COUNT_ENV) or os.environ.get(_TORCHRUN_RESTART_COUNT_ENV)
    try:
        return int(value or 0)
    except ValueError:
        return 0


def save_checkpoint(
    obj: Any, step: int, *, keep: int | None = None, every_rank: bool = False
) -> Path | None:
    """Write ``obj`` as the checkpoint of ``step`` and return its path.

    Only rank 0 writes unless ``every_rank`` (then each rank writes under its own
    ``rank-<r>`` subdirectory); other ranks return None. ``keep=K`` removes all but
    the K newest checkpoints. The step is recorded with the run's metrics.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise TypeError(f"save_checkpoint(): step must be a whole number >= 0, got {step!r}")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ValueError(f"save_checkpoint(): keep must be 1 or more, got {keep!r}")
    if rank() != 0 and not every_rank:
        return None
    directory = _rank_dir(every_rank)
    directory.mkdir(parents=True, exist_ok=True)
    form = _format_of(obj)
    final = directory / f"step-{step:012d}.{form}"
    staged = directory / f".step-{step:012d}.{form}.{os.getpid()}.tmp"
    try:
        _write(obj, form, staged)
        with open(staged, "rb") as written:
            os.fsync(written.fileno())
        os.replace(staged, final)  # complete, or not there at all
    finally:
        if staged.exists():
            staged.unlink()
    _sync_dir(directory)
    if keep is not None:
        for old in _complete(directory)[:-keep]:
            old.path.unlink(missing_ok=True)
    if "JUPYTER_TRAINING_JOB_ID" in os.environ and rank() == 0:
        # The worker's clock makes the mark the same for every follower of the job.
        records.emit("checkpoint", step=step, path=str(final), time=time.time(), rank=0)
    return final


def latest_checkpoint(*, every_rank: bool = False) -> Checkpoint | None:
    """The newest complete checkpoint of this lineage, or None (a fresh start)."""
    directory = _rank_dir(every_rank)
    if not directory.is_dir():
        return None
    found = _complete(directory)
    return found[-1] if found else None


def _rank_dir(every_rank: bool) -> Path:
    base = checkpoint_dir()
    return base / f"rank-{rank()}" if every_rank else base


def _complete(directory: Path) -> list[Checkpoint]:
    found = []
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match and entry.is_file():
            found.append(Checkpoint(int(match.group(1)), entry, match.group(2)))
    return sorted(found, key=lambda c: c.step)


def _format_of(obj: Any) -> str:
    xgboost = sys.modules.get("xgboost")
    if xgboost is not None and isinstance(obj, xgboost.Booster):
        return "ubj"
    torch = sys.modules.get("torch")
    if torch is not None and _holds_torch(obj, torch):
        return "pt"
    return "pkl"


def _holds_torch(obj: Any, torch: Any, depth: int = 0) -> bool:
    if isinstance(obj, torch.Tensor | torch.nn.Module) or hasattr(obj, "state_dict"):
        return True
    if depth > 3:
        return False
    if isinstance(obj, dict):
        return any(_holds_torch(v, torch, depth + 1) for v in obj.values())
    if isinstance(obj, list | tuple):
        return any(_holds_torch(v, torch, depth + 1) for v in obj[:100])
    return False


def _write(obj: Any, form: str, path: Path) -> None:
    if form == "pt":
        import torch

        torch.save(obj, path)
    elif form == "ubj":
        path.write_bytes(bytes(obj.save_raw(raw_format="ubj")))
    else:
        with open(path, "wb") as out:
            pickle.dump(obj, out, protocol=pickle.HIGHEST_PROTOCOL)


def _sync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
