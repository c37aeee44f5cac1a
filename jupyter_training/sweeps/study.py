"""The Optuna side of a sweep: its study (a SQLite file beside the job store), sampler
and pruner. The only module that imports Optuna."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..spec import SpecError
from .options import SweepSpec
from .space import Param


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise SpecError(
            "%%train_sweep",
            "sweeps search with Optuna, which is not installed: "
            "pip install 'jupyter-training[sweeps]'",
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep view says it all
    return optuna


def check_installed() -> None:
    """Raise a clear error now, not after the sweep was recorded, when Optuna is missing."""
    _optuna()


def study_path(store_path: Path, sweep_id: str) -> Path:
    """Where the sweep's study lives: ``<store dir>/sweeps/<id>.db``."""
    return Path(store_path).parent / "sweeps" / f"{sweep_id}.db"


def open_study(path: Path, sweep_id: str, spec: SweepSpec) -> Any:
    """The sweep's study, created on first use (``load_if_exists``: a resume reopens it)."""
    optuna = _optuna()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 30}}
    )
    return optuna.create_study(
        storage=storage,
        study_name=sweep_id,
        direction=spec.direction,
        sampler=make_sampler(spec),
        pruner=make_pruner(spec),
        load_if_exists=True,
    )


def distributions(params: tuple[Param, ...]) -> dict[str, Any]:
    """Each ``--param`` as an Optuna distribution."""
    dist = _optuna().distributions
    made: dict[str, Any] = {}
    for p in params:
        if p.kind == "uniform":
            made[p.name] = dist.FloatDistribution(float(p.args[0]), float(p.args[1]))
        elif p.kind == "loguniform":
            made[p.name] = dist.FloatDistribution(float(p.args[0]), float(p.args[1]), log=True)
        elif p.kind == "int":
            low, high, step = (*p.args, 1)[:3]
            made[p.name] = dist.IntDistribution(low, high, step=step)
        else:
            made[p.name] = dist.CategoricalDistribution(list(p.args))
    return made


def make_sampler(spec: SweepSpec) -> Any:
    samplers = _optuna().samplers
    if spec.sampler == "grid":
        space = {p.name: p.grid() for p in spec.params}
        return samplers.GridSampler(space, seed=spec.seed)
    if spec.sampler == "random":
        return samplers.RandomSampler(seed=spec.seed)
    # Optuna's default of 10 random trials first is most of a notebook-sized sweep.
    startup = max(2, min(10, spec.trials // 3))
    return samplers.TPESampler(seed=spec.seed, n_startup_trials=startup)


def make_pruner(spec: SweepSpec) -> Any:
    pruners = _optuna().pruners
    if spec.prune == "median":
        return pruners.MedianPruner(n_startup_trials=max(1, min(5, spec.trials // 4)))
    if spec.prune == "asha":
        return pruners.SuccessiveHalvingPruner()
    return pruners.NopPruner()


def trial_handle(study: Any, trial_id: int) -> Any:
    """A live ``optuna.Trial`` for a trial started earlier (a resumed sweep adopting it)."""
    return _optuna().trial.Trial(study, trial_id)


def trial_state(name: str) -> Any:
    """``optuna.trial.TrialState[name]`` (COMPLETE, PRUNED, FAIL, RUNNING, ...)."""
    return _optuna().trial.TrialState[name]
