"""Creating, cancelling and checking sweeps: what the magic, the CLI and REST share."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..backends.local.host import process_start_time
from ..client import TrainingClient
from ..events import CANCELLED, FAILED, PENDING, SUCCEEDED
from ..spec import SpecError
from ..store import JobNotFound, SweepRecord, new_job_id
from . import study as optuna_study
from .driver import sweep_dir
from .objective import check_objective
from .options import SweepSpec


def create_sweep(
    client: TrainingClient,
    spec: SweepSpec,
    cell: str,
    namespace: Mapping[str, Any],
    *,
    hidden: Iterable[str] = (),
    history: Iterable[str] = (),
    notebook: str | None = None,
    workdir: str | None = None,
) -> SweepRecord:
    """Check the sweep, capture the cell once (its trials share the capture) and record it.

    Raises ``SpecError`` or ``CaptureError`` before any trial starts; the refused
    sweep is recorded (phase Failed, with its cell) all the same.
    """
    sweep_id = new_job_id()
    name = spec.job.name or f"sweep-{sweep_id[:6]}"
    try:
        optuna_study.check_installed()
        # The searched names resolve to a placeholder while capturing; each trial
        # replaces it with its own value.
        placeholders = {p.name: (p.grid() or [p.args[0]])[0] for p in spec.params}
        payload = client.capture(
            spec.job,
            cell,
            {**namespace, **placeholders},
            hidden=hidden,
            history=history,
            workdir=workdir,
        )
        check_objective(spec.metric, [cell, *(source for _, source in payload.definitions)])
    except (SpecError, ValueError, OSError) as err:  # CaptureError is a ValueError
        record_refused_sweep(client, sweep_id, name, cell, notebook, spec.to_dict(), err)
        raise
    params = client.notebook_params(spec.job, payload, namespace)
    params = {k: v for k, v in params.items() if k not in placeholders}
    directory = sweep_dir(client.store.path, sweep_id)
    directory.mkdir(mode=0o700, parents=True, exist_ok=False)
    payload.write(directory / "payload.bin")
    (directory / "params.json").write_text(json.dumps(params))
    sweep = SweepRecord(
        id=sweep_id,
        name=name,
        phase=PENDING,
        spec=spec.to_dict(),
        cell=cell,
        notebook=notebook,
    )
    return client.store.add_sweep(sweep)


def record_refused_sweep(
    client: TrainingClient,
    sweep_id: str | None,
    name: str | None,
    cell: str,
    notebook: str | None,
    spec: dict[str, Any],
    err: Exception,
) -> SweepRecord:
    """Keep a sweep that was refused before any trial started, with its cell and flags."""
    sweep_id = sweep_id or new_job_id()
    sweep = SweepRecord(
        id=sweep_id,
        name=name or f"sweep-{sweep_id[:6]}",
        phase=FAILED,
        spec=spec,
        cell=cell,
        notebook=notebook,
        message=f"not started: {err}",
        finished=time.time(),
    )
    return client.store.add_sweep(sweep)


def driver_alive(sweep: SweepRecord) -> bool:
    """Is the process that drives the sweep still running?"""
    if sweep.driver_pid is None:
        return False
    return process_start_time(sweep.driver_pid) == sweep.driver_start


def check_resumable(sweep: SweepRecord) -> SweepSpec:
    """The sweep's spec if ``--resume`` may continue it; else a ``SpecError`` saying why."""
    if sweep.phase == SUCCEEDED:
        raise SpecError("--resume", f"sweep {sweep.name} ({sweep.id}) has run all its trials")
    if not sweep.is_terminal and driver_alive(sweep) and sweep.driver_pid != os.getpid():
        raise SpecError(
            "--resume",
            f"sweep {sweep.name} ({sweep.id}) is running in another kernel "
            f"(pid {sweep.driver_pid}); %train_attach {sweep.id} shows it",
        )
    try:
        return SweepSpec.from_dict(sweep.spec)
    except (KeyError, TypeError, SpecError) as err:
        raise SpecError(
            "--resume", f"sweep {sweep.name} ({sweep.id}) was refused at the start ({err})"
        ) from None


def cancel_sweep(client: TrainingClient, ref: str) -> SweepRecord:
    """Cancel a sweep: no more trials start and every running trial's job is stopped."""
    sweep = client.store.get_sweep(ref)
    client.store.set_sweep_phase(sweep.id, CANCELLED, "cancelled by user")
    for record in client.store.sweep_jobs(sweep.id):
        if not record.is_terminal:
            client.cancel(record.id)
    return client.store.get_sweep(sweep.id)


def find_sweep(client: TrainingClient, ref: str) -> SweepRecord | None:
    """The sweep ``ref`` names (id, id prefix or name), or None."""
    try:
        return client.store.get_sweep(ref)
    except JobNotFound:
        return None
