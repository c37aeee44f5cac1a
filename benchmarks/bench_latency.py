"""latency: a line printed by a worker until a subscriber has it, 4 ranks x 1,000 lines/s.

Every line carries its send time. Subscribers, all on the same job at once: the kernel-side
``Follower`` feeding a view (what the widget and the text view read), and the server
extension's WebSocket (what the sidebar reads; it forwards at most 500 lines/s per
subscription and counts the rest). Baseline, interleaved: the same script in 4 bare
processes whose stdout is a pipe read line by line by this process (the floor).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from typing import Any

from common import (
    PYTHON,
    JupyterServer,
    interleave,
    median,
    percentile,
    result,
    scratch,
    training_client,
)

RANKS, RATE = 4, 1000
START_DELAY = 0.5  # seconds before the first line, so every subscriber is attached


def printer(seconds: float) -> str:
    """The cell: print RATE stamped lines a second for ``seconds``, paced."""
    return f"""\
import os, time
rank = int(os.environ.get("RANK", "0"))
time.sleep({START_DELAY})
start = time.time()
for i in range(int({RATE} * {seconds})):
    delay = start + i / {RATE} - time.time()
    if delay > 0:
        time.sleep(delay)
    print(f"lat {{rank}} {{i}} {{time.time():.6f}}")
"""


def _latency(line: str, received: float) -> float | None:
    if not line.startswith("lat "):
        return None
    return received - float(line.rsplit(" ", 1)[1])


class _View:
    """A job view that records how late each stamped line arrives (the Follower's client)."""

    cancel_requested = False
    detach_requested = False

    def __init__(self) -> None:
        self.latencies: list[float] = []

    def handle(self, event: Any) -> None:
        if event.kind == "log":
            late = _latency(event.data.get("line", ""), time.time())
            if late is not None:
                self.latencies.append(late)

    def tick(self) -> None:
        pass


class _Socket:
    """The sidebar's side: the server's event WebSocket subscribed to one job."""

    def __init__(self, server: JupyterServer) -> None:
        import websocket

        self.ws = websocket.create_connection(
            server.ws_url, header=[f"Authorization: token {server.token}"], timeout=60
        )
        self.latencies: list[float] = []

    def follow(self, job_id: str) -> threading.Thread:
        self.ws.send(json.dumps({"subscribe": job_id}))
        thread = threading.Thread(target=self._read, daemon=True)
        thread.start()
        return thread

    def _read(self) -> None:
        while True:
            message = json.loads(self.ws.recv())
            received = time.time()
            if message.get("type") != "event":
                continue
            event = message["event"]
            if event["kind"] == "log":
                line = event["data"].get("line", "")
                late = _latency(line, received)
                if late is not None:
                    self.latencies.append(late)
            if event["kind"] == "phase" and event["data"].get("phase") in (
                "Succeeded",
                "Failed",
                "Cancelled",
            ):
                return

    def close(self) -> None:
        self.ws.close()


def run(quick: bool) -> list[dict]:
    from jupyter_training.spec import JobSpec
    from jupyter_training.views.follow import Follower

    seconds = 1.0 if quick else 5.0
    reps = 1 if quick else 3
    cell = printer(seconds)
    work = scratch("latency")
    script = work / "printer.py"
    script.write_text(cell)
    client = training_client()
    collected: dict[str, list[float]] = {"follower": [], "websocket": [], "pipe": []}
    with JupyterServer(
        work / "server", store_dir=client.settings.store_dir, others=False
    ) as server:

        def ours() -> float:
            socket = _Socket(server)
            try:
                record = client.submit(JobSpec(workers=RANKS), cell, {})
                reader = socket.follow(record.id)
                view = _View()
                Follower(client, record.id, view).run()
                reader.join(60)
            finally:
                socket.close()
            collected["follower"] += view.latencies
            collected["websocket"] += socket.latencies
            if len(view.latencies) != RANKS * int(RATE * seconds):
                raise RuntimeError(f"the follower got {len(view.latencies)} lines")
            return median(view.latencies)

        def pipe() -> float:
            latencies: list[float] = []
            processes = [
                subprocess.Popen(
                    [PYTHON, "-u", str(script)],
                    env={**os.environ, "RANK": str(rank)},
                    stdout=subprocess.PIPE,
                )
                for rank in range(RANKS)
            ]

            def read(process: subprocess.Popen[bytes]) -> None:
                assert process.stdout is not None
                for raw in process.stdout:
                    late = _latency(raw.decode().rstrip("\n"), time.time())
                    if late is not None:
                        latencies.append(late)

            readers = [threading.Thread(target=read, args=(p,)) for p in processes]
            for thread in readers:
                thread.start()
            for thread, process in zip(readers, processes, strict=True):
                thread.join()
                process.wait()
            collected["pipe"] += latencies
            return median(latencies)

        interleave(reps, {"ours": ours, "pipe": pipe})

    ms = {name: [x * 1000 for x in values] for name, values in collected.items()}
    pipe_p50, pipe_p95 = percentile(ms["pipe"], 50), percentile(ms["pipe"], 95)
    results = []
    for name in ("follower", "websocket"):
        p50, p95 = percentile(ms[name], 50), percentile(ms[name], 95)
        detail = {
            "vs": "pipe",
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": percentile(ms[name], 99),
            "max_ms": max(ms[name]),
            "lines": len(ms[name]),
            "pipe_p50_ms": pipe_p50,
            "pipe_p95_ms": pipe_p95,
            "ranks": RANKS,
            "lines_per_s_per_rank": RATE,
            "seconds": seconds,
            "reps": reps,
        }
        if name == "websocket":
            detail["lines_not_forwarded"] = len(ms["follower"]) - len(ms["websocket"])
        results.append(
            result(
                f"latency.{name}.p50",
                p50,
                "ms",
                pipe_p50,
                p50 / pipe_p50,
                "p50 <= 50 ms",
                p50 <= 50,
                detail,
            )
        )
        results.append(
            result(
                f"latency.{name}.p95",
                p95,
                "ms",
                pipe_p95,
                p95 / pipe_p95,
                "p95 <= 200 ms",
                p95 <= 200,
                {"vs": "pipe"},
            )
        )
    return results
