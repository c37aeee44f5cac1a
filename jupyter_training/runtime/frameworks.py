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
