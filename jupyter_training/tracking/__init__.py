"""Runs you can compare: every job's params, full metric history, artifacts and context.

``runs()`` is a table of jobs (MLflow's column names), ``run(ID)`` one job with
its history; :mod:`.recorder` keeps them in the store as jobs are followed,
:mod:`.compare` backs ``%train_compare``, and :mod:`.mlflow` (the only module
that imports MLflow) logs every job as an MLflow run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Run", "run", "runs"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import query

        return getattr(query, name)
    raise AttributeError(f"module 'jupyter_training.tracking' has no attribute {name!r}")
