"""Exceptions a cell raises when its job does not succeed."""

from __future__ import annotations

from .store import JobRecord


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
            tail = trace.rstrip("\n").splitlines()[-12:]
            lines.append(f"--- rank {self.rank} traceback (last lines) ---")
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

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of our own (uninteresting) stack."""
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class JobCancelledError(RuntimeError):
    """The job was cancelled before it finished."""

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        super().__init__(f"job {record.id} ({record.name}) was cancelled")

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]
