"""The state of a job as a viewer sees it, built from its event stream.

One model for every view: the ipywidgets job view and the text view render
it, and tests check it after a scripted event stream. Memory is bounded: the
log keeps the last ``max_lines`` lines (counting the dropped ones) and each
metric series keeps at most ``max_points`` points, thinned evenly.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque

from ..events import PENDING, TERMINAL_PHASES, Event
from ..store import JobRecord

DEFAULT_MAX_LINES = 2000
DEFAULT_MAX_POINTS = 1000


@dataclasses.dataclass
class RankState:
    """One worker's latest state."""

    phase: str = PENDING
    step: int | None = None
    total: int | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    detail: str = ""

    @property
    def fraction(self) -> float | None:
        """Progress in [0, 1] from the last report's step/total, if both are known."""
        if self.step is None or not self.total:
            return None
        return max(0.0, min(1.0, self.step / self.total))


class JobProgress:
    """Phase, per-rank progress, metric series and a bounded log of one job."""

    def __init__(
        self,
        record: JobRecord,
        max_lines: int = DEFAULT_MAX_LINES,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> None:
        self.record = record
        self.phase = record.phase
        self.message = record.message
        self.started = record.started
        self.finished = record.finished
        self.ranks: dict[int, RankState] = {r: RankState() for r in range(record.world_size)}
        self.series: dict[str, dict[int, list[tuple[float, float]]]] = {}
        self.max_points = max_points
        self.lines: deque[tuple[int | None, str]] = deque(maxlen=max_lines)
        self.dropped_lines = 0
        self.total_lines = 0
        #: Steps of the checkpoints saved so far (``save_checkpoint()``), oldest first.
        self.checkpoints: list[int] = [m["step"] for m in record.checkpoints or []]
        self.version = 0  # bumps on every change; views redraw when it moves

    @property
    def is_finished(self) -> bool:
        return self.phase in TERMINAL_PHASES

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since the job started running (0 before)."""
        if self.started is None:
            return 0.0
        return (self.finished or now or time.time()) - self.started

    def apply(self, event: Event) -> None:
        """Fold one event into the state."""
        self.version += 1
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event)

    def _on_checkpoint(self, event: Event) -> None:
        step = event.data.get("step")
        if isinstance(step, int) and (not self.checkpoints or self.checkpoints[-1] != step):
            self.checkpoints.append(step)

    def _on_phase(self, event: Event) -> None:
        self.phase = event.data["phase"]
        self.message = event.data.get("message") or ""
        if self.started is None and self.phase != PENDING:
            self.started = event.time
        if self.is_finished:
            self.finished = event.time
            for state in self.ranks.values():
                if state.phase not in TERMINAL_PHASES and state.phase != "Exited":
                    state.phase = self.phase

    def _on_worker(self, event: Event) -> None:
        if event.rank is None:
            return
        state = self.ranks.setdefault(event.rank, RankState())
        data = event.data
        kind = data.get("state")
        if kind == "started" or kind == "running":
            state.phase, state.detail = "Running", ""
        elif kind == "exited":
            code = data.get("exit_code")
            state.phase = "Exited" if code == 0 else "Failed"
            state.detail = "" if code == 0 else f"exit code {code} {data.get('reason') or ''}"
        elif kind in ("pending", "waiting"):
            state.phase = "Pending"
            state.detail = data.get("reason") or ""
        elif kind == "restarted":
            state.detail = f"restarted ({data.get('restarts')})"

    def _on_log(self, event: Event) -> None:
        if len(self.lines) == self.lines.maxlen:
            self.dropped_lines += 1
        self.lines.append((event.rank, event.data.get("line", "")))
        self.total_lines += 1

    def _on_error(self, event: Event) -> None:
        if event.rank is not None:
            state = self.ranks.setdefault(event.rank, RankState())
            state.detail = f"{event.data.get('exc_type')}: {event.data.get('message')}"

    def _on_report(self, event: Event) -> None:
        rank = event.rank if event.rank is not None else int(event.data.get("rank", 0))
        state = self.ranks.setdefault(rank, RankState())
        step, total = event.data.get("step"), event.data.get("total")
        if step is not None:
            state.step = step
        if total is not None:
            state.total = total
        metrics = event.data.get("metrics") or {}
        state.metrics.update(metrics)
        for name, value in metrics.items():
            points = self.series.setdefault(name, {}).setdefault(rank, [])
            x = float(step) if step is not None else float(points[-1][0] + 1 if points else 0)
            points.append((x, float(value)))
            if len(points) > self.max_points:
                del points[1::2]  # keep every other point (and the first): the shape stays

    def log_lines(self, rank: int | None = None) -> list[str]:
        """The kept log lines, prefixed by rank; only ``rank``'s when given."""
        return [f"[rank {r}] {line}" for r, line in self.lines if rank is None or r == rank]

    def last_metrics(self) -> dict[str, float]:
        """Rank 0's latest metrics (for job tables)."""
        state = self.ranks.get(0)
        return dict(state.metrics) if state else {}
