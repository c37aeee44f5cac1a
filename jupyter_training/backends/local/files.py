"""A local job's directory: payload, event journal and one log per rank.

``jobs/<id>/payload.bin``, ``events.jsonl`` (written by the supervisor),
``rank-<r>.log`` (each worker's stdout and stderr) and ``artifacts/`` (the
run's ``artifacts_dir()``). Files are 0600 in a 0700
directory. :meth:`JobFiles.follow` tails them into the one event stream.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from ...events import Event, LineSplitter, output_events
from ...runtime import records

TAIL_SECONDS = 0.02
TAIL_BYTES = 64 * 1024
READ_LIMIT = 4 * 1024 * 1024


class JobFiles:
    """Paths and file operations of one local job directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def payload(self) -> Path:
        return self.root / "payload.bin"

    @property
    def shipped(self) -> Path:
        """Where workers materialize the job's ``--files``."""
        return self.root / "files"

    @property
    def artifacts(self) -> Path:
        """Where ``artifacts_dir()`` points every rank (created by the first rank using it)."""
        return self.root / "artifacts"

    @property
    def stop_request(self) -> Path:
        """How a stop should end the job (``{"phase", "message"}``), written before SIGTERM."""
        return self.root / "stop.json"

    @property
    def event_journal(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    def rank_log(self, rank: int) -> Path:
        return self.root / f"rank-{rank}.log"

    def create(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=False)

    def _open_private(self, path: Path) -> IO[bytes]:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "ab")

    def open_rank_log(self, rank: int) -> IO[bytes]:
        return self._open_private(self.rank_log(rank))

    def open_supervisor_log(self) -> IO[bytes]:
        return self._open_private(self.supervisor_log)

    def append_event(self, event: Event) -> None:
        with self._open_private(self.event_journal) as journal:
            journal.write(json.dumps(event.to_dict(), default=str).encode() + b"\n")

    def rank_log_mtime(self, rank: int) -> float:
        try:
            return self.rank_log(rank).stat().st_mtime
        except OSError:
            return float("inf")

    def rank_log_tail(self, rank: int, lines: int = 20) -> tuple[list[str], dict[str, Any] | None]:
        """The last ``lines`` output lines of ``rank`` and its last ``error`` record."""
        try:
            with open(self.rank_log(rank), "rb") as log:
                start = max(0, log.seek(0, os.SEEK_END) - TAIL_BYTES)
                log.seek(start)
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return [], None
        if start > 0:  # the first line is cut (often the end of a long reports record)
            text = text.partition("\n")[2]
        plain, error = [], None
        for line in text.split("\n"):  # not splitlines(): records start with \x1e
            body, record = records.split(line)
            if record is not None and record.get("type") == "error":
                error = record
            if body:
                plain.append(body)
        return plain[-lines:], error

    def follow(
        self,
        job_id: str,
        ranks: int,
        *,
        follow: bool = True,
        alive: Callable[[], bool] | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Events from the journal and rank logs, from the start.

        With ``follow`` it keeps tailing until the journal's terminal phase event
        (or until ``alive()`` turns False), then drains the logs and stops.
        """
        journal = _Tail(self.event_journal)
        logs = {rank: _Tail(self.rank_log(rank)) for rank in range(ranks)}
        last_alive_check = time.monotonic()
        terminal: Event | None = None
        while stop is None or not stop.is_set():
            produced = False
            for line in journal.read_lines():
                produced = True
                event = Event.from_dict(json.loads(line))
                if event.is_terminal:
                    terminal = event  # yielded after the last log lines
                else:
                    yield event
            ending = terminal is not None or not follow
            for rank, tail in logs.items():
                while True:  # when ending, read every rank's log to its very end
                    for line in tail.read_lines(final=ending):
                        produced = True
                        yield from output_events(job_id, rank, line)
                    if not ending or tail.at_end:
                        break
            if terminal is not None:
                yield terminal
                return
            if not follow:
                return
            if not produced:
                if alive is not None and time.monotonic() - last_alive_check > 1.0:
                    last_alive_check = time.monotonic()
                    if not alive():
                        follow = False
                        continue
                time.sleep(TAIL_SECONDS)


class _Tail:
    """Reads the complete lines appended to a file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.splitter = LineSplitter()
        self.at_end = True

    def read_lines(self, final: bool = False) -> list[str]:
        """Up to READ_LIMIT bytes of new lines; ``final`` also returns an unterminated
        last line, but only once the end of the file has been reached."""
        try:
            with open(self.path, "rb") as source:
                source.seek(self.offset)
                chunk = source.read(READ_LIMIT)
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        self.at_end = len(chunk) < READ_LIMIT
        lines = self.splitter.feed(chunk)
        return lines + self.splitter.flush() if final and self.at_end else lines
