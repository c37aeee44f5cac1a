"""REST and WebSocket handlers: parse, authorize, call the client, serialize. Nothing else.

Every route is authenticated (``@web.authenticated`` / ``@ws_authenticated``) and
authorized against the ``jupyter_training`` resource; mutating calls carry
Jupyter's XSRF check (APIHandler). Blocking work runs in a thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web, websocket
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError

from .. import frameworks
from ..backends import backend_names
from ..backends.base import SubmitError
from ..capture import CaptureError
from ..client import TrainingClient
from ..spec import JobSpec, SpecError
from ..store import JobNotFound
from ..sweeps.launch import cancel_sweep
from ..tracking.compare import compare
from ..tracking.query import run_rows
from ..tracking.where import WhereError
from .monitor import JobMonitor

AUTH_RESOURCE = "jupyter_training"
JOB_ID = r"(?P<job_id>[0-9a-f]{1,32})"
#: A sweep's id, a unique prefix of one, or its name (the newest sweep of that name).
SWEEP_ID = r"(?P<sweep_id>[0-9a-z][-0-9a-z]{0,62})"
MAX_PAGE = 500
MAX_POINTS = 20_000
MAX_COMPARE = 20


class TrainingHandler(APIHandler):
    """Shared access to the services the extension put in the settings."""

    auth_resource = AUTH_RESOURCE

    @property
    def client(self) -> TrainingClient:
        return self.settings["jupyter_training_client"]

    @property
    def monitor(self) -> JobMonitor:
        return self.settings["jupyter_training_monitor"]

    def fail(self, status: int, message: str, field: str | None = None) -> None:
        self.set_status(status)
        self.finish(json.dumps({"message": message, "field": field}))

    def int_argument(self, name: str, default: int, low: int, high: int) -> int | None:
        raw = self.get_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            self.fail(400, f"{name} must be a whole number from {low} to {high}", name)
            return None
        return value


class VersionHandler(TrainingHandler):
    @web.authenticated
    @authorized
    def get(self) -> None:
        self.finish({"version": self.settings["jupyter_training_version"]})


class JobsHandler(TrainingHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit = self.int_argument("limit", 50, 1, MAX_PAGE)
        if limit is None:
            return
        offset = self.int_argument("offset", 0, 0, 10**9)
        if offset is None:
            return
        filters = {
            key: self.get_argument(key, None) or None for key in ("phase", "backend", "notebook")
        }
        name = self.get_argument("name", None) or None
        sort = self.get_argument("sort", None) or None
        sweep = self.get_argument("sweep", None) or None
        if sweep is not None:
            try:
                filters["sweep"] = (await asyncio.to_thread(self.client.store.get_sweep, sweep)).id
            except JobNotFound as err:
                return self.fail(404, str(err), "sweep")
        if name is None and sort is None and sweep is None:
            records = await asyncio.to_thread(
                self.client.store.list, limit=limit, offset=offset, **filters
            )
        else:
            try:
                records = await asyncio.to_thread(self._find, limit, offset, name, sort, filters)
            except WhereError as err:
                return self.fail(400, str(err), "sort")
        self.finish(
            {"jobs": [self.monitor.job_json(r) for r in records], "limit": limit, "offset": offset}
        )

    def _find(
        self,
        limit: int,
        offset: int,
        name: str | None,
        sort: str | None,
        filters: dict[str, str | None],
    ) -> list[Any]:
        glob = name is not None and any(c in name for c in "*?[")
        rows = run_rows(
            self.client.store,
            name=name if glob else None,
            name_contains=None if glob else name,
            phase=filters["phase"],
            notebook=filters["notebook"],
            backend=filters["backend"],
            sweep=filters.get("sweep"),
            sort=sort or "-created",
            limit=offset + limit,
        )
        return [self.client.store.get(row["id"]) for row in rows[offset:]]

    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as err:
            return self.fail(400, f"the request body is not JSON: {err}")
        if not isinstance(body, dict) or not isinstance(body.get("cell"), str):
            return self.fail(400, 'send {"spec": {...}, "cell": "<source>"}', "cell")
        if not isinstance(body.get("notebook"), str | None):
            return self.fail(400, "notebook must be a path string", "notebook")
        try:
            spec = JobSpec.from_dict(body.get("spec") or {})
            record = await asyncio.to_thread(
                self.client.submit,
                spec,
                body["cell"],
                {},
                notebook=body.get("notebook"),
                workdir=self.settings.get("server_root_dir") or os.getcwd(),
            )
        except SpecError as err:
            return self.fail(400, str(err), err.field)
        except (CaptureError, SubmitError, TypeError) as err:
            return self.fail(400, str(err))
        self.set_status(201)
        self.finish(self.monitor.job_json(record))


class JobHandler(TrainingHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        try:
            record = await asyncio.to_thread(self.client.get, job_id)
        except JobNotFound as err:
            return self.fail(404, str(err))
        data = self.monitor.job_json(record)
        lineage = await asyncio.to_thread(self.monitor.lineage_json, record)
        data.update(spec=record.spec.to_dict(), cell=record.cell, lineage_jobs=lineage)
        self.finish(data)

    @web.authenticated
    @authorized
    async def delete(self, job_id: str) -> None:
        try:
            record = await asyncio.to_thread(self.client.cancel, job_id)
        except JobNotFound as err:
            return self.fail(404, str(err))
        except SubmitError as err:
            return self.fail(502, str(err))
        self.finish(self.monitor.job_json(record))


class LogsHandler(TrainingHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        rank = self.get_argument("rank", None)
        follow = self.get_argument("follow", "0") in ("1", "true", "yes")
        try:
            rank_number = int(rank) if rank not in (None, "") else None
            record = await asyncio.to_thread(self.client.store.get, job_id)
        except ValueError:
            return self.fail(400, "rank must be a whole number", "rank")
        except JobNotFound as err:
            return self.fail(404, str(err))
        if rank_number is not None and not 0 <= rank_number < record.world_size:
            ranks = f"0 to {record.world_size - 1}"
            return self.fail(400, f"rank must be one of this job's ranks, {ranks}", "rank")
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        stop = threading.Event()
        lines: asyncio.Queue[Any] = asyncio.Queue(maxsize=10_000)
        loop = asyncio.get_running_loop()

        def pump() -> None:
            try:
                for event in self.client.logs(record.id, rank=rank_number, follow=follow):
                    if stop.is_set():
                        break
                    asyncio.run_coroutine_threadsafe(lines.put(event), loop).result()
            finally:
                asyncio.run_coroutine_threadsafe(lines.put(None), loop)

        threading.Thread(target=pump, name=f"jt-logs-{record.id}", daemon=True).start()
        try:
            while (event := await lines.get()) is not None:
                chunk = [event]
                while not lines.empty() and chunk[-1] is not None and len(chunk) < 1000:
                    chunk.append(lines.get_nowait())
                done = chunk[-1] is None
                self.write(
                    "".join(
                        f"[rank {e.rank}] {e.data.get('line', '')}\n"
                        for e in chunk
                        if e is not None
                    )
                )
                await self.flush()
                if done:
                    break
        except StreamClosedError:
            pass  # the reader went away
        finally:
            stop.set()
        self.finish()


class MetricsHandler(TrainingHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        try:
            record = await asyncio.to_thread(self.client.store.get, job_id)
        except JobNotFound as err:
            return self.fail(404, str(err))
        names = await asyncio.to_thread(self.client.store.metric_names, record.id)
        metrics = [
            {"name": name, "ranks": {str(rank): count for rank, count in ranks.items()}}
            for name, ranks in names.items()
        ]
        self.finish({"job_id": record.id, "metrics": metrics})


class SeriesHandler(TrainingHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str, metric: str) -> None:
        max_points = self.int_argument("max_points", 1000, 2, MAX_POINTS)
        if max_points is None:
            return
        store = self.client.store
        try:
            record = await asyncio.to_thread(store.get, job_id)
        except JobNotFound as err:
            return self.fail(404, str(err))
        ranks = (await asyncio.to_thread(store.metric_names, record.id)).get(metric)
        if not ranks:
            return self.fail(404, f"job {record.id} never reported a metric {metric!r}", "name")
        wanted = self.get_argument("rank", "all") or "all"
        if wanted != "all":
            try:
                rank = int(wanted)
            except ValueError:
                return self.fail(400, "rank must be a whole number or all", "rank")
            if rank not in ranks:
                return self.fail(404, f"rank {rank} never reported {metric!r}", "rank")
            ranks = {rank: ranks[rank]}
        series = []
        for rank in ranks:
            x, y, count = await asyncio.to_thread(store.series, record.id, metric, rank, max_points)
            series.append({"rank": rank, "x": x, "y": y, "points": count})
        self.finish({"name": metric, "series": series})


class CompareHandler(TrainingHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        refs = [ref for ref in self.get_argument("ids", "").split(",") if ref.strip()]
        if not refs:
            return self.fail(400, "give the runs to compare: ids=ID,ID,... (ids or names)", "ids")
        if len(refs) > MAX_COMPARE:
            return self.fail(400, f"compare at most {MAX_COMPARE} runs at once", "ids")
        max_points = self.int_argument("max_points", 500, 2, MAX_POINTS)
        if max_points is None:
            return
        objective = self.get_argument("objective", None) or None
        try:
            comparison = await asyncio.to_thread(
                compare,
                self.client.store,
                [ref.strip() for ref in refs],
                objective=objective,
                max_points=max_points,
            )
        except JobNotFound as err:
            return self.fail(404, str(err), "ids")
        except ValueError as err:
            return self.fail(400, str(err), "objective")
        self.finish(comparison.to_json())


class SweepsHandler(TrainingHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit = self.int_argument("limit", 50, 1, MAX_PAGE)
        if limit is None:
            return
        sweeps = await asyncio.to_thread(self._sweeps, limit)
        self.finish({"sweeps": sweeps, "limit": limit})

    def _sweeps(self, limit: int) -> list[dict[str, Any]]:
        return [self.monitor.sweep_json(s) for s in self.client.store.list_sweeps(limit=limit)]


class SweepHandler(TrainingHandler):
    @web.authenticated
    @authorized
    async def get(self, sweep_id: str) -> None:
        try:
            self.finish(await asyncio.to_thread(self._sweep, sweep_id))
        except JobNotFound as err:
            return self.fail(404, str(err))

    def _sweep(self, ref: str) -> dict[str, Any]:
        store = self.client.store
        sweep = store.get_sweep(ref)
        data = self.monitor.sweep_json(sweep)
        data.update(
            cell=sweep.cell,
            jobs=[self.monitor.job_json(record) for record in store.sweep_jobs(sweep.id)],
        )
        return data


class SweepCancelHandler(TrainingHandler):
    @web.authenticated
    @authorized
    async def post(self, sweep_id: str) -> None:
        try:
            sweep = await asyncio.to_thread(cancel_sweep, self.client, sweep_id)
        except JobNotFound as err:
            return self.fail(404, str(err))
        except SubmitError as err:
            return self.fail(502, str(err))
        self.finish(self.monitor.sweep_json(sweep))


class ClusterHandler(TrainingHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(await asyncio.to_thread(describe_cluster, self.client))


class EventsSocket(JupyterHandler, websocket.WebSocketHandler):
    """Pushes job and sweep updates; ``{"subscribe": id}`` streams one job's events from its
    start."""

    auth_resource = AUTH_RESOURCE

    async def pre_get(self) -> None:
        authorized_user = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)
        )
        if not authorized_user:
            raise web.HTTPError(403)

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.pre_get()
        result = super().get(*args, **kwargs)
        if result is not None:
            await result

    @property
    def monitor(self) -> JobMonitor:
        return self.settings["jupyter_training_monitor"]

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.loop = IOLoop.current()
        self.subscription: Any = None
        self.listener = self.monitor.add_listener(self.send)
        records = self.monitor.client.store.list(limit=100)
        self.send({"type": "jobs", "jobs": [self.monitor.job_json(r) for r in records]})

    def send(self, message: dict[str, Any]) -> None:
        """Thread-safe: queue ``message`` for this socket on the server's loop."""
        self.loop.add_callback(self._write, json.dumps(message, default=str))

    def _write(self, text: str) -> None:
        try:
            self.write_message(text)
        except websocket.WebSocketClosedError:
            self.on_close()

    def on_message(self, message: str | bytes) -> None:
        try:
            request = json.loads(message)
        except ValueError:
            return self.send({"type": "error", "message": "messages must be JSON"})
        if not isinstance(request, dict):
            return self.send({"type": "error", "message": "messages must be JSON objects"})
        if "subscribe" in request or "unsubscribe" in request:
            self._unsubscribe()
            job_id = request.get("subscribe")
            if isinstance(job_id, str) and job_id:
                try:
                    record = self.monitor.client.store.get(job_id)
                except JobNotFound as err:
                    return self.send({"type": "error", "message": str(err)})
                self.subscription = self.monitor.subscribe(record.id, self.send)

    def _unsubscribe(self) -> None:
        if self.subscription is not None:
            self.subscription.set()
            self.subscription = None

    def on_close(self) -> None:
        self._unsubscribe()
        self.monitor.remove_listener(self.listener)


def _runtime(settings: Any, framework: frameworks.Framework) -> str | None:
    return settings.runtime_for(framework.name) if framework.v2_runtime else None


def describe_cluster(client: TrainingClient) -> dict[str, Any]:
    """What the launch form needs: backends and their state, frameworks, default images."""
    settings = client.settings
    backends: dict[str, Any] = {}
    for name in backend_names():
        try:
            backends[name] = client.backend(name).describe()
        except Exception as err:  # e.g. the kubernetes client is not installed
            backends[name] = {"available": False, "error": str(err)}
    known = frameworks.all_frameworks()
    return {
        "default_backend": settings.backend,
        "backends": backends,
        "frameworks": [
            {
                **f.describe(),
                "image": settings.image_for(f.name),
                "v2_runtime": _runtime(settings, f),
            }
            for f in known
        ],
        "images": {f.name: settings.image_for(f.name) for f in known},
        "limits": {
            "max_workers": settings.max_workers,
            "max_gpus_per_worker": settings.max_gpus_per_worker,
        },
    }


HANDLERS: list[tuple[str, type]] = [
    ("version", VersionHandler),
    ("jobs", JobsHandler),
    (f"jobs/{JOB_ID}", JobHandler),
    (f"jobs/{JOB_ID}/logs", LogsHandler),
    (f"jobs/{JOB_ID}/metrics", MetricsHandler),
    (f"jobs/{JOB_ID}/metrics/(?P<metric>.+)", SeriesHandler),
    ("compare", CompareHandler),
    ("sweeps", SweepsHandler),
    (f"sweeps/{SWEEP_ID}", SweepHandler),
    (f"sweeps/{SWEEP_ID}/cancel", SweepCancelHandler),
    ("cluster", ClusterHandler),
    ("events", EventsSocket),
]
