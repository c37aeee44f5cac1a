"""Every job as an MLflow run: a background exporter that follows the job store.

The store is the record; MLflow is a copy made off the job's path. One daemon
thread per job reads the job's row and its metric points from the store and
sends them with ``MlflowClient``: the run is created once (its id kept in the
store's ``exports`` row, so a second follower or a re-attached kernel
continues it), points go in batches behind a watermark, and the run ends when
the job has ended and its whole history is stored. A lease in the store lets
one process export a job at a time; a batch sent again after a crash is
harmless because MLflow ignores a point it already has.

A down or slow MLflow costs the job nothing: our calls run with short HTTP
timeouts and no MLflow-level retries (see :func:`_use_thread_settings`), we
retry with backoff up to ``give_up_after`` seconds, and the user sees one
logged warning per tracking URI. This is the only module that imports
``mlflow``, and only inside functions.
"""

from __future__ import annotations

import logging
import math
import os
import posixpath
import re
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..events import CANCELLED, FAILED, PRUNED, SUCCEEDED
from ..store import JobNotFound, JobRecord, JobStore

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
POLL_SECONDS = 0.5
GIVE_UP_SECONDS = 300.0
#: MLflow's own limits (``mlflow.utils.validation``).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
#: MLflow settings our export threads use where the user has not set them: short HTTP
#: timeouts, no retries inside MLflow (we back off ourselves), and no "View run at" lines
#: printed from a background thread into whatever cell is running.
THREAD_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": 10,
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 0,
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": 0,
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": True,
}
JOB_ID_TAG = "jupyter_training.job_id"
RUN_STATUS = {SUCCEEDED: "FINISHED", FAILED: "FAILED", CANCELLED: "KILLED", PRUNED: "KILLED"}
#: MLflow error codes that another try will not fix.
PERMANENT_ERRORS = frozenset(
    {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED", "UNAUTHENTICATED"}
)

_exporters: dict[tuple[str, str], MlflowExporter] = {}
_warned: set[str] = set()
_registry_lock = threading.Lock()


def exporter_for(store: JobStore, tracking_uri: str) -> MlflowExporter:
    """The one exporter of this process for ``store`` and ``tracking_uri`` (made on first use)."""
    key = (str(Path(store.path).resolve()), tracking_uri)
    with _registry_lock:
        exporter = _exporters.get(key)
        if exporter is None or exporter.closed:
            exporter = _exporters[key] = MlflowExporter(store, tracking_uri)
        return exporter


class MlflowExporter:
    """Copies jobs of ``store`` to the MLflow tracking server at ``tracking_uri``.

    :meth:`start` follows a job in a daemon thread and returns at once; the
    thread exports the job's history, waits for new points while it runs, ends
    the run when it ends, and marks the export done. ``owner`` names this
    exporter in the store's lease (default: host, pid and a random suffix).
    ``give_up_after`` bounds how long an unreachable MLflow is retried, and how
    long an ended job's history is waited for; the store keeps everything, so a
    later :meth:`start` (here or in another process) carries on.
    """

    def __init__(
        self,
        store: JobStore,
        tracking_uri: str,
        owner: str | None = None,
        *,
        lease_seconds: float = LEASE_SECONDS,
        poll_seconds: float = POLL_SECONDS,
        give_up_after: float = GIVE_UP_SECONDS,
        batch_size: int = MAX_METRICS_PER_BATCH,
    ) -> None:
        self.store = store
        self.tracking_uri = tracking_uri
        #: Key of the store's ``exports`` rows: the URI without any password in it.
        self.target = _redacted(tracking_uri)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.give_up_after = give_up_after
        self.batch_size = min(batch_size, MAX_METRICS_PER_BATCH)
        self.stopping = threading.Event()
        self._lock = threading.Lock()  # threads; never held across I/O, so start() is instant
        self._client_lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._gave_up: dict[str, float] = {}
        self._client: Any = None
        self._experiments: dict[str, str] = {}

    @property
    def closed(self) -> bool:
        return self.stopping.is_set()

    def start(self, job_id: str) -> None:
        """Export ``job_id`` in the background; a no-op while it is already being followed here
        (and for ``give_up_after`` seconds after MLflow failed for it)."""
        with self._lock:
            thread = self._threads.get(job_id)
            if self.closed or (thread is not None and thread.is_alive()):
                return
            gave_up = self._gave_up.get(job_id)
            if gave_up is not None and time.monotonic() - gave_up < self.give_up_after:
                return
            thread = threading.Thread(
                target=self._follow, args=(job_id,), name=f"jt-mlflow-{job_id}", daemon=True
            )
            self._threads[job_id] = thread
        thread.start()

    def wait(self, job_id: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``job_id``'s export to be done (by any process);
        False at the deadline, or as soon as this exporter's thread for it has stopped short."""
        deadline = time.monotonic() + timeout
        while True:
            if self.is_done(job_id):
                return True
            thread = self._threads.get(job_id)
            if (thread is not None and not thread.is_alive()) or time.monotonic() >= deadline:
                return self.is_done(job_id)
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def is_done(self, job_id: str) -> bool:
        """Whether ``job_id``'s run is complete in MLflow."""
        state = self.store.export_state(job_id, self.target)
        return bool(state and state["done"])

    def run_id(self, job_id: str) -> str | None:
        """The MLflow run of ``job_id``, once created (by any process)."""
        state = self.store.export_state(job_id, self.target)
        return state["run_id"] if state else None

    def close(self, timeout: float = 15.0) -> None:
        """Stop every thread (each hands its lease back) and wait up to ``timeout`` seconds."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- shared by the job threads --------------------------------------------------------------

    def client(self) -> Any:
        """The ``MlflowClient`` every job thread of this exporter shares."""
        with self._client_lock:
            if self._client is None:
                from mlflow import MlflowClient

                self._client = MlflowClient(self.tracking_uri)
            return self._client

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created when missing."""
        with self._client_lock:
            if name in self._experiments:
                return self._experiments[name]
        from mlflow.exceptions import MlflowException

        client = self.client()
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                experiment_id = client.create_experiment(name)
            except MlflowException as error:  # another process created it just now
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment_id = client.get_experiment_by_name(name).experiment_id
        else:
            experiment_id = experiment.experiment_id
        with self._client_lock:
            self._experiments[name] = experiment_id
        return experiment_id

    def warn(self, error: BaseException) -> None:
        """Log the one warning this process gives for this tracking URI."""
        with _registry_lock:
            if self.target in _warned:
                return
            _warned.add(self.target)
        log.warning(
            "Exporting jobs to MLflow at %s failed (%s); jobs run as usual and keep their "
            "metrics in the job store; the export retries in the background for up to %.0f s.",
            self.target,
            _summary(error),
            self.give_up_after,
        )

    def _follow(self, job_id: str) -> None:
        export = _JobExport(self, job_id)
        try:
            export.run()
        except Exception:
            log.debug("MLflow export of job %s stopped", job_id, exc_info=True)
        finally:
            export.release()
            if export.gave_up:
                with self._lock:
                    self._gave_up[job_id] = time.monotonic()


class _LeaseLost(Exception):
    """Another exporter holds this job's export now."""


class _JobExport:
    """One job's export, run by one thread of an :class:`MlflowExporter`."""

    def __init__(self, exporter: MlflowExporter, job_id: str) -> None:
        self.exporter = exporter
        self.store = exporter.store
        self.job_id = job_id
        self.holding = False
        self.renew_at = 0.0
        self.run_id: str | None = None
        self.watermark = 0
        self.gave_up = False
        self.keys: dict[tuple[str, int], str] = {}
        self.failing_since: float | None = None
        self.delay = 0.5
        #: Since when the job has ended with its history not yet all stored.
        self.waiting_since: float | None = None

    def run(self) -> None:
        while not self.exporter.stopping.is_set():
            try:
                pause = self.attempt()
            except _LeaseLost:
                self.holding, pause = False, 0.0
            except JobNotFound:
                return
            except Exception as error:
                pause = self.failed(error)
            if pause is None:
                return
            try:
                self.pause(pause)
            except _LeaseLost:
                self.holding = False

    def attempt(self) -> float | None:
        """Export what there is; the seconds to wait before the next try, None when finished."""
        exporter = self.exporter
        _use_thread_settings()
        if not self.hold():
            if exporter.is_done(self.job_id):
                return None
            return min(exporter.lease_seconds / 2, 5.0)  # standby: take over after a lapse
        record = self.store.get(self.job_id)  # before the points: see step()
        self.step(record)
        self.failing_since, self.delay = None, 0.5
        if record.is_terminal and record.history_done:
            self.finish(record)
            return None
        if record.is_terminal:  # its follower still has to store the whole history
            self.waiting_since = self.waiting_since or time.monotonic()
            if time.monotonic() - self.waiting_since > exporter.give_up_after:
                log.info("job %s ended without its full history; export paused", self.job_id)
                return None
        return exporter.poll_seconds

    def failed(self, error: Exception) -> float | None:
        """Back off after ``error``: the seconds to wait, or None to give up."""
        exporter = self.exporter
        exporter.warn(error)
        self.failing_since = self.failing_since or time.monotonic()
        left = exporter.give_up_after - (time.monotonic() - self.failing_since)
        if _is_permanent(error) or left <= 0:
            log.info(
                "gave up exporting job %s to MLflow at %s: %s",
                self.job_id,
                exporter.target,
                _summary(error),
            )
            self.gave_up = True
            return None
        delay, self.delay = min(self.delay, left), min(self.delay * 2, 30.0)
        return delay

    # -- the lease ------------------------------------------------------------------------------

    def hold(self) -> bool:
        """Take or renew the lease when due; on taking it, load where the export stands."""
        if self.holding and time.monotonic() < self.renew_at:
            return True
        exporter = self.exporter
        claimed = self.store.claim_export(
            self.job_id, exporter.target, exporter.owner, exporter.lease_seconds
        )
        if claimed and not self.holding:
            state = self.store.export_state(self.job_id, exporter.target) or {}
            self.run_id, self.watermark = state.get("run_id"), int(state.get("watermark") or 0)
        self.holding = claimed
        self.renew_at = time.monotonic() + exporter.lease_seconds / 3
        return claimed

    def save(self, **fields: Any) -> None:
        exporter = self.exporter
        if not self.store.update_export(self.job_id, exporter.target, exporter.owner, **fields):
            raise _LeaseLost(self.job_id)

    def renew(self) -> None:
        if not self.hold():
            raise _LeaseLost(self.job_id)

    def release(self) -> None:
        if self.holding:
            exporter = self.exporter
            self.store.update_export(self.job_id, exporter.target, exporter.owner, lease=0)
            self.holding = False

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds`` (less if closing), renewing a held lease on the way."""
        deadline = time.monotonic() + seconds
        while not self.exporter.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.exporter.stopping.wait(min(left, self.exporter.lease_seconds / 3))
            if self.holding and not self.exporter.stopping.is_set():
                self.renew()

    # -- the run --------------------------------------------------------------------------------

    def step(self, record: JobRecord) -> None:
        """Open the run if need be and send every point stored so far.

        ``record`` was read before the points: when it says the whole history is
        stored, the points read afterwards are all of them.
        """
        if self.run_id is None:
            self.open_run(record)
        self.send_points()

    def open_run(self, record: JobRecord) -> None:
        client = self.exporter.client()
        experiment_id = self.exporter.experiment_id(experiment_name(record))
        # A run created just before a crash (its id never stored) is found by its tag.
        found = client.search_runs(
            [experiment_id], filter_string=f"tags.`{JOB_ID_TAG}` = '{record.id}'", max_results=1
        )
        if found:
            run_id = found[0].info.run_id
        else:
            self.renew()
            run = client.create_run(
                experiment_id,
                start_time=_ms(record.started or record.created),
                tags=run_tags(record),
                run_name=record.name,
            )
            run_id = run.info.run_id
        self.save(run_id=run_id)
        self.run_id = run_id
        self.log_details(record)

    def send_points(self) -> None:
        from mlflow.entities import Metric

        client = self.exporter.client()
        while True:
            points = self.store.points_after(self.job_id, self.watermark, self.exporter.batch_size)
            if not points:
                return
            metrics = [
                Metric(
                    self.key(name, rank), _value(value), _ms(when), seq if step is None else step
                )
                for _, name, rank, when, seq, step, value in points
            ]
            self.renew()
            client.log_batch(self.run_id, metrics=metrics, synchronous=True)
            self.watermark = points[-1][0]
            self.save(watermark=self.watermark)

    def key(self, name: str, rank: int) -> str:
        key = self.keys.get((name, rank))
        if key is None:
            key = self.keys[(name, rank)] = _safe_key(name if rank == 0 else f"rank{rank}/{name}")
        return key

    def log_details(self, record: JobRecord) -> None:
        """Params not yet on the run (params are immutable in MLflow) and the cell's source."""
        from mlflow.entities import Param

        client = self.exporter.client()
        present = client.get_run(self.run_id).data.params
        new = [Param(k, v) for k, v in run_params(record).items() if k not in present]
        for start in range(0, len(new), MAX_PARAMS_TAGS_PER_BATCH):
            batch = new[start : start + MAX_PARAMS_TAGS_PER_BATCH]
            client.log_batch(self.run_id, params=batch, synchronous=True)
        with tempfile.TemporaryDirectory(prefix="jt-mlflow-") as folder:
            cell = Path(folder, "cell.py")
            cell.write_text(record.cell, encoding="utf-8")
            client.log_artifact(self.run_id, str(cell))

    def finish(self, record: JobRecord) -> None:
        """Bring params and tags up to date, upload the job's files, end the run."""
        from mlflow.entities import RunTag

        client = self.exporter.client()
        self.renew()
        self.log_details(record)
        tags = [RunTag(k, v) for k, v in run_tags(record).items()]
        for start in range(0, len(tags), MAX_PARAMS_TAGS_PER_BATCH):
            batch = tags[start : start + MAX_PARAMS_TAGS_PER_BATCH]
            client.log_batch(self.run_id, tags=batch, synchronous=True)
        files = local_artifacts(record)
        if files is not None:
            self.renew()
            client.log_artifacts(self.run_id, str(files))
        client.set_terminated(
            self.run_id, RUN_STATUS[record.phase], end_time=_ms(record.finished or time.time())
        )
        self.save(done=1)


# -- what a job becomes in MLflow -----------------------------------------------------------------


def experiment_name(record: JobRecord) -> str:
    """The spec's experiment, else the notebook's name without ``.ipynb``, else
    ``jupyter-training``."""
    name = record.spec.to_dict().get("experiment")
    if not name and record.notebook:
        notebook = Path(record.notebook)
        name = notebook.stem if notebook.suffix == ".ipynb" else notebook.name
    return str(name or "jupyter-training")[:MAX_EXPERIMENT_NAME_LENGTH]


def run_params(record: JobRecord) -> dict[str, str]:
    """The job's params as MLflow takes them: valid keys, values as strings, cut to its limit."""
    return {_safe_key(k): _text(v, MAX_PARAM_LENGTH) for k, v in (record.params or {}).items()}


def run_tags(record: JobRecord) -> dict[str, str]:
    """The run's tags: the user's, then ours (ours win: the job id tag finds the run)."""
    tags = {_safe_key(k): _text(v, MAX_TAG_LENGTH) for k, v in (record.tags or {}).items()}
    tags.update(
        {
            JOB_ID_TAG: record.id,
            "jupyter_training.framework": record.framework,
            "jupyter_training.backend": record.backend,
            "jupyter_training.workers": str(record.workers),
            "jupyter_training.gpus": str(record.gpus),
        }
    )
    if record.notebook:
        tags["mlflow.source.name"] = _text(record.notebook, MAX_TAG_LENGTH)
        tags["mlflow.source.type"] = "NOTEBOOK"
    return tags


def local_artifacts(record: JobRecord) -> Path | None:
    """The folder of the job's ``artifacts_dir()`` files when it is on this machine."""
    if not record.artifacts or record.artifacts.startswith("pvc://"):
        return None
    folder = Path(record.artifacts)
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def _safe_key(name: Any) -> str:
    """``name`` as a valid MLflow metric/param/tag key: allowed characters, no path tricks."""
    key = re.sub(r"[^/\w.\- :]", "_", str(name))[:MAX_KEY_LENGTH]
    if posixpath.normpath(key) != key or key.startswith(("/", "..")) or key in ("", "."):
        key = "_" + key.replace("/", "_")[: MAX_KEY_LENGTH - 1]
    return key


def _text(value: Any, limit: int) -> str:
    return (value if isinstance(value, str) else str(value))[:limit]


def _value(value: float | None) -> float:
    """A stored value for MLflow: the store keeps a reported nan as NULL."""
    return math.nan if value is None else float(value)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _is_permanent(error: BaseException) -> bool:
    return isinstance(error, ImportError) or getattr(error, "error_code", None) in PERMANENT_ERRORS


def _redacted(uri: str) -> str:
    """``uri`` without a password in it."""
    parts = urlsplit(uri)
    if not parts.password:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _summary(error: BaseException) -> str:
    """A line saying what went wrong, without credentials."""
    if isinstance(error, ImportError):
        return "MLflow is not installed here; pip install mlflow-skinny"
    text = str(error)
    cause = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
    if cause:
        return cause.group(0).strip()
    if "timed out" in text.lower():
        return "timed out"
    line = (text.strip().splitlines() or [type(error).__name__])[0]
    return re.sub(r"://[^/\s:@]*:[^/\s@]*@", "://***@", line)[:200]


_export_thread = threading.local()
_settings_lock = threading.Lock()
_settings_installed: list[bool] = []


def _use_thread_settings() -> None:
    """Give MLflow calls made in this thread :data:`THREAD_SETTINGS`.

    MLflow reads ``MLFLOW_HTTP_REQUEST_TIMEOUT`` and its siblings from the
    environment at each request (defaults: 120 s and 7 retries, minutes per
    call against a down server). Setting them in ``os.environ`` would change
    the user's whole process, so instead each variable's ``get`` answers our
    value in our export threads only, and only where the user has not set the
    variable; every other thread sees MLflow's usual behaviour.
    """
    _export_thread.active = True
    if _settings_installed:
        return
    with _settings_lock:
        from mlflow import environment_variables

        for name, value in THREAD_SETTINGS.items():
            variable = getattr(environment_variables, name, None)
            if variable is None or getattr(variable, "_jupyter_training_thread_value", False):
                continue
            variable.get = _in_export_threads(variable, variable.get, value)
            variable._jupyter_training_thread_value = True
        _settings_installed.append(True)


def _in_export_threads(variable: Any, get: Any, value: Any) -> Any:
    def get_value() -> Any:
        if getattr(_export_thread, "active", False) and not variable.is_set():
            return value
        return get()

    return get_value
