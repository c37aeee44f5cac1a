"""Per-framework setup and teardown around the cell.

* XGBoost: rank 0 starts the tracker and every rank joins the collective, so a
  plain ``xgb.train(...)`` in the cell is distributed with no tracker code.
* PyTorch: the cell calls ``init_process_group`` itself; on success we leave the
  group cleanly (barrier, destroy) so ranks exit together.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator


@contextlib.contextmanager
def xgboost_collective() -> Iterator[None]:
    """Run the body inside XGBoost's collective, with the tracker on rank 0."""
    from xgboost import collective
    from xgboost.tracker import RabitTracker

    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    host = os.environ["DMLC_TRACKER_URI"]
    port = int(os.environ["DMLC_TRACKER_PORT"])
    tracker = None
    if rank == 0:
        tracker = RabitTracker(n_workers=world, host_ip=host, port=port, sortby="task")
        tracker.start()
    elif host in _LOOPBACK:
        # XGBoost retries a refused connection only after a ~2 s back-off; a local
        # worker can see when rank 0's tracker listens without connecting to it.
        wait_for_local_listener(port, timeout=120)
    args = {
        "dmlc_tracker_uri": host,
        "dmlc_tracker_port": port,
        "dmlc_task_id": str(rank),
        "dmlc_retry": 30,
        "dmlc_timeout": 600,
    }
    with collective.CommunicatorContext(**args):
        yield
    if tracker is not None:
        tracker.wait_for()


_LOOPBACK = ("127.0.0.1", "localhost")
_TCP_LISTEN = "0A"


def wait_for_local_listener(port: int, timeout: float) -> bool:
    """Wait until a socket on this host listens on ``port`` (read from /proc/net)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _is_listening(port):
            return True
        time.sleep(0.01)
    return False


def _is_listening(port: int) -> bool:
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                next(rows, None)
                for row in rows:
                    fields = row.split()
                    if fields[1].endswith(wanted) and fields[3] == _TCP_LISTEN:
                        return True
        except OSError:
            return True  # no /proc: let XGBoost's own retries do the waiting
    return False


def framework_context(framework: str) -> contextlib.AbstractContextManager[None]:
    """The context the cell runs in for ``framework``."""
    if framework == "xgboost" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return xgboost_collective()
    return contextlib.nullcontext()


def leave_torch_group() -> None:
    """Leave an initialised torch.distributed group so peers are not left waiting."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
