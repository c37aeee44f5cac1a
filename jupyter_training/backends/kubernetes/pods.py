"""What a worker pod's status says: waiting reasons, exits, restarts, and who failed.

Pure functions over pod dicts (as the API returns them), shared by the watch
and by one-off status reads.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .targets import Target

#: Waiting reasons that mean the container will not start without help.
STUCK_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "Unschedulable",
    }
)


@dataclasses.dataclass(frozen=True)
class PodView:
    """The parts of a worker pod's status that users care about."""

    name: str
    rank: int | None
    container: str
    phase: str
    state: str  # waiting | running | terminated | pending
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    restarts: int = 0
    finished_at: str = ""
    last_exit_code: int | None = None
    last_reason: str = ""

    @property
    def instance(self) -> int:
        """Which container instance runs now (0 first, +1 per restart)."""
        return self.restarts

    @property
    def started(self) -> bool:
        """True once the current container has started (its log can be read)."""
        return self.state in ("running", "terminated")

    def changes_since(self, before: PodView | None) -> list[dict[str, Any]]:
        """Worker-event payloads for what changed since ``before``."""
        changes: list[dict[str, Any]] = []
        if before is not None and self.restarts > before.restarts:
            changes.append(
                {
                    "state": "restarted",
                    "pod": self.name,
                    "restarts": self.restarts,
                    "exit_code": self.last_exit_code,
                    "reason": self.last_reason,
                }
            )
        if (
            before is None
            or (self.state, self.reason) != (before.state, before.reason)
            or (self.restarts != before.restarts)
        ):
            data: dict[str, Any] = {"state": _EVENT_STATE[self.state], "pod": self.name}
            if self.reason:
                data["reason"] = self.reason
            if self.message:
                data["message"] = self.message
            if self.state == "terminated":
                data["exit_code"] = self.exit_code
            changes.append(data)
        return changes


_EVENT_STATE = {
    "pending": "pending",
    "waiting": "waiting",
    "running": "running",
    "terminated": "exited",
}


def pod_view(target: Target, pod: dict[str, Any]) -> PodView:
    """Summarize ``pod`` (an API dict) for the job's ``target`` container."""
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    mine = next((s for s in statuses if s.get("name") == target.container), None)
    if mine is None and statuses:
        mine = statuses[0]
    common = {
        "name": metadata.get("name", ""),
        "rank": target.rank_of(pod),
        "container": (mine or {}).get("name") or target.container,
        "phase": status.get("phase") or "Pending",
    }
    if mine is None:
        reason, message = _unscheduled(status)
        return PodView(
            state="waiting" if reason else "pending", reason=reason, message=message, **common
        )
    state = mine.get("state") or {}
    last = (mine.get("lastState") or {}).get("terminated") or {}
    extra = {
        "restarts": int(mine.get("restartCount") or 0),
        "last_exit_code": last.get("exitCode"),
        "last_reason": last.get("reason") or "",
    }
    if state.get("terminated"):
        done = state["terminated"]
        return PodView(
            state="terminated",
            reason=done.get("reason") or "",
            message=done.get("message") or "",
            exit_code=done.get("exitCode"),
            finished_at=done.get("finishedAt") or "",
            **common,
            **extra,
        )
    if state.get("running"):
        return PodView(state="running", **common, **extra)
    waiting = state.get("waiting") or {}
    return PodView(
        state="waiting",
        reason=waiting.get("reason") or "",
        message=waiting.get("message") or "",
        **common,
        **extra,
    )


def _unscheduled(status: dict[str, Any]) -> tuple[str, str]:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return condition.get("reason") or "Unschedulable", condition.get("message") or ""
    return "", ""


def describe_failure(
    pods: list[PodView],
    errors: dict[int, dict[str, Any]],
    tails: dict[int, list[str]],
    job_message: str,
) -> dict[str, Any]:
    """The failure record: the first rank that failed, its exit and remote exception."""
    failed = [
        p
        for p in pods
        if p.rank is not None
        and ((p.exit_code not in (None, 0)) or (p.last_exit_code not in (None, 0)))
    ]
    stuck = [p for p in pods if p.rank is not None and p.reason in STUCK_REASONS]
    failure: dict[str, Any] = {
        "reason": job_message or "the job failed",
        "rank": None,
        "exit_code": None,
        "signal": None,
    }
    if failed:
        # The rank that raised (an error record) or exited on its own comes before ranks
        # stopped afterwards by a signal (exit codes 128+N).
        def first(p: PodView) -> tuple[bool, str, bool, int]:
            code = p.exit_code if p.exit_code not in (None, 0) else p.last_exit_code
            return (p.rank not in errors, p.finished_at or "~", (code or 0) >= 128, p.rank or 0)

        pod = min(failed, key=first)
        code = pod.exit_code if pod.exit_code not in (None, 0) else pod.last_exit_code
        why = pod.reason if pod.exit_code not in (None, 0) else pod.last_reason
        if why == "OOMKilled":
            reason = f"rank {pod.rank} (pod {pod.name}) was OOMKilled (exit code {code})"
        else:
            reason = f"rank {pod.rank} (pod {pod.name}) exited with code {code}"
        failure.update(rank=pod.rank, exit_code=code, pod=pod.name, k8s_reason=why)
        error = errors.get(pod.rank)
        if error and isinstance(error.get("rank"), int) and error["rank"] != pod.rank:
            # A pod of several ranks (nprocPerNode): name the process that raised.
            failure["rank"] = error["rank"]
            reason = reason.replace(f"rank {pod.rank} (pod", f"rank {error['rank']} (pod", 1)
        if error:
            failure.update(
                exc_type=error.get("exc_type"),
                exc_module=error.get("exc_module"),
                exc_qualname=error.get("exc_qualname"),
                message=error.get("message"),
                traceback=error.get("traceback"),
            )
            reason += f": {error.get('exc_type')}: {error.get('message')}"
        failure["reason"] = reason
        failure["log_tail"] = tails.get(pod.rank, [])
    elif stuck:
        pod = min(stuck, key=lambda p: p.rank)
        failure.update(rank=pod.rank, pod=pod.name, k8s_reason=pod.reason)
        failure["reason"] = (
            f"rank {pod.rank} (pod {pod.name}) never started: {pod.reason}"
            + (f": {pod.message}" if pod.message else "")
            + (f" ({job_message})" if job_message else "")
        )
    return failure
