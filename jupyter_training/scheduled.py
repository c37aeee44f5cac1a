"""Which jupyter-scheduler job, if any, is running this notebook's kernel.

jupyter-scheduler's executor runs a copy of the notebook with its kernel's working
directory set to ``<staging area>/<job id>/`` (the staging area is
``<jupyter data dir>/scheduler_staging_area`` unless configured), and sets no variable
of its own. A job launched from such a kernel is tagged :data:`SCHEDULER_TAG` = that id,
so the history and the sidebar say which scheduled run it belongs to. An executor that
knows better (a custom ``execution_manager_class``, a remote runner) sets
:data:`SCHEDULER_ENV` instead.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

#: The tag a job launched from a scheduled notebook carries.
SCHEDULER_TAG = "scheduler_job_id"
#: Set by an executor to name its job explicitly (it wins over the staging layout).
SCHEDULER_ENV = "JUPYTER_SCHEDULER_JOB_ID"
#: The staging area's default folder name (jupyter-scheduler's ``Scheduler.staging_path``).
STAGING_DIR_NAME = "scheduler_staging_area"


def scheduler_job_id(cwd: Path | None = None) -> str | None:
    """The jupyter-scheduler job id of the run this kernel belongs to, or None."""
    explicit = os.environ.get(SCHEDULER_ENV, "").strip()
    if explicit:
        return explicit
    here = cwd or Path.cwd()
    if here.parent.name != STAGING_DIR_NAME:
        return None
    try:
        uuid.UUID(here.name)
    except ValueError:
        return None
    return here.name


def scheduler_tags(cwd: Path | None = None) -> dict[str, str]:
    """``{SCHEDULER_TAG: id}`` under jupyter-scheduler, else nothing."""
    job_id = scheduler_job_id(cwd)
    return {SCHEDULER_TAG: job_id} if job_id else {}
