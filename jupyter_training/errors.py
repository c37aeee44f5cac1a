"""Exceptions a cell raises when its job does not succeed."""

from __future__ import annotations

import builtins
import sys
from collections.abc import Mapping
from typing import Any

from .store import JobRecord, SweepRecord


class JobFailedError(RuntimeError):
    """The job failed: names the failing rank, its exit code and its traceback's end."""

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        failure = record.failure or {}
        self.rank = failure.get("rank")
        self.exit_code = failure.get("exit_code")
        self.remote_type = failure.get("exc_type")
        self.remote_message = failure.get("message")
        super().__init__(self._describe())

    def _describe(self) -> str:
        failure = self.record.failure or {}
        lines = [f"job {self.record.id} ({self.record.name}) failed: {self.record.message}"]
        trace = failure.get("traceback")
        if trace:
            tail = trace.rstrip("\n").splitlines()[-60:]
            lines.append(f"--- remote traceback (rank {self.rank}) ---")
            lines.extend(tail)
        elif failure.get("log_tail"):
            lines.append(f"--- rank {self.rank} output (last lines) ---")
            lines.extend(failure["log_tail"][-12:])
        lines.append(
            f"full logs: %train_logs {self.record.id} --rank {self.rank}"
            if self.rank is not None
            else f"full logs: %train_logs {self.record.id}"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.args[0] if self.args else ""

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of our own (uninteresting) stack."""
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class JobResultError(RuntimeError):
    """The job succeeded but some ``--out`` values could not come back."""

    def __init__(self, record: JobRecord, problems: list[str]) -> None:
        self.record = record
        self.problems = problems
        super().__init__(f"job {record.id} ({record.name}) succeeded, but: " + "; ".join(problems))

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class JobCancelledError(RuntimeError):
    """The job was cancelled (or, a sweep's trial, pruned) before it finished."""

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        how = "pruned by its sweep" if record.phase == "Pruned" else "cancelled"
        super().__init__(f"job {record.id} ({record.name}) was {how}")

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class SweepFailedError(RuntimeError):
    """A sweep ended without running its trials (too many failures, cancelled, refused)."""

    def __init__(self, sweep: SweepRecord) -> None:
        self.sweep = sweep
        super().__init__(f"sweep {sweep.id} ({sweep.name}) {sweep.phase}: {sweep.message}")

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


def job_error(record: JobRecord, namespace: Mapping[str, Any] | None = None) -> JobFailedError:
    """The error to raise for a failed job.

    When the failing rank raised an exception whose class can be found here
    (a builtin, an importable module's, or a notebook class), the error is also
    an instance of that class, so ``except ValueError:`` catches a remote
    ``ValueError``; its message carries the remote traceback.
    """
    failure = record.failure or {}
    remote = _remote_class(failure, namespace or {})
    if remote is None or issubclass(JobFailedError, remote):
        return JobFailedError(record)
    try:
        cls = type(
            remote.__name__,
            (JobFailedError, remote),
            {
                "__module__": remote.__module__,
                "__qualname__": remote.__qualname__,
                "__init__": JobFailedError.__init__,
                "__str__": JobFailedError.__str__,
            },
        )
        return cls(record)
    except TypeError:  # incompatible layouts (e.g. OSError): keep the plain error
        return JobFailedError(record)


def _remote_class(failure: Mapping[str, Any], namespace: Mapping[str, Any]) -> type | None:
    name = failure.get("exc_type")
    module = failure.get("exc_module") or "builtins"
    qualname = failure.get("exc_qualname") or name
    if not name or not qualname:
        return None
    if module == "builtins":
        found = getattr(builtins, qualname, None)
    elif module == "__main__":
        found = namespace.get(qualname)
    else:
        found = sys.modules.get(module)  # never import a module just to name an error
        try:
            for part in qualname.split("."):
                found = getattr(found, part)
        except AttributeError:
            return None
    return found if isinstance(found, type) and issubclass(found, Exception) else None
