"""``%%train_sweep``: hyperparameter search over Optuna, every trial a distributed job.

* :mod:`.space`: ``--param NAME=DIST(...)`` parsed and checked.
* :mod:`.options`: :class:`SweepSpec`, the validated sweep.
* :mod:`.objective`: the ``report()`` names a cell gives, checked before any trial.
* :mod:`.study`: the Optuna study, sampler and pruner (the only Optuna import).
* :mod:`.driver`: :class:`SweepDriver`, the loop that runs trials as jobs.
* :mod:`.state`: what the sweep views render.
* :mod:`.launch`: creating, resuming and cancelling sweeps.
"""

from __future__ import annotations

from .options import SweepSpec, parse_objective
from .space import Param, parse_params

__all__ = ["Param", "SweepSpec", "parse_objective", "parse_params"]
