"""The server extension against a real jupyter_server (pytest-jupyter)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from jupyter_server.auth import Authorizer
from tornado.httpclient import HTTPClientError

from jupyter_training import __version__
from jupyter_training.errors import SweepFailedError

pytest_plugins = ["pytest_jupyter.jupyter_server"]

API = "jupyter-training/api"


def registered_routes() -> list[tuple[str, str]]:
    """(method, path) for every method of every REST route the extension registers."""
    from jupyter_training.server.handlers import HANDLERS, JOB_ID, SWEEP_ID, EventsSocket

    routes = []
    for pattern, handler in HANDLERS:
        if handler is EventsSocket:
            continue
        path = pattern.replace(JOB_ID, "abc123").replace(SWEEP_ID, "abc123")
        path = path.replace("(?P<metric>.+)", "loss")
        for method in ("get", "post", "put", "patch", "delete"):
            if method in vars(handler):
                routes.append((method.upper(), path))
    return routes


ROUTES = registered_routes()


@pytest.fixture
def store_dir(tmp_path):
    """The server's store; a kernel whose JUPYTER_DATA_DIR is its parent shares it."""
    return tmp_path / "server-data" / "training"


@pytest.fixture
def deny():
    """Parametrize with True to deny the jupyter_training resource to every user."""
    return False


@pytest.fixture
def jp_server_config(store_dir, tmp_path, deny):
    config = {
        "ServerApp": {"jpserver_extensions": {"jupyter_training": True}},
        "TrainingApp": {"store_dir": str(store_dir), "kubeconfig": str(tmp_path / "none")},
    }
    if deny:
        config["ServerApp"]["authorizer_class"] = DenyTraining
    return config


async def api(jp_fetch, method, path, body=None, **params):
    kwargs = {"method": method}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    elif method == "POST":
        kwargs["body"] = ""
    if params:
        kwargs["params"] = params
    response = await jp_fetch(*API.split("/"), *path.split("/"), **kwargs)
    return response.code, json.loads(response.body) if response.body else None


async def wait_for_phase(jp_fetch, job_id, phases, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, job = await api(jp_fetch, "GET", f"jobs/{job_id}")
        if job["phase"] in phases:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {phases}")


async def test_version(jp_fetch):
    assert await api(jp_fetch, "GET", "version") == (200, {"version": __version__})


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_refuses_unauthenticated_calls(jp_fetch, method, path):
    body = "{}" if method == "POST" else None
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(
            *API.split("/"),
            *path.split("/"),
            method=method,
            body=body,
            headers={"Authorization": ""},
        )
    assert caught.value.code in (401, 403)


async def test_websocket_refuses_unauthenticated_handshake(jp_ws_fetch):
    with pytest.raises(HTTPClientError) as caught:
        await jp_ws_fetch(*API.split("/"), "events", headers={"Authorization": ""})
    assert caught.value.code in (401, 403)


async def test_create_list_logs_events_cancel_round_trip(jp_fetch, jp_ws_fetch):
    socket = await jp_ws_fetch(*API.split("/"), "events")
    first = json.loads(await socket.read_message())
    assert first == {"type": "jobs", "jobs": []}
    cell = (
        "import jupyter_training as jt\nprint('hello from', jt.rank())\njt.report(step=1, loss=0.5)"
    )
    code, job = await api(
        jp_fetch, "POST", "jobs", {"spec": {"workers": 2, "name": "from-rest"}, "cell": cell}
    )
    assert code == 201 and job["name"] == "from-rest" and job["phase"] == "Pending"
    socket.write_message(json.dumps({"subscribe": job["id"]}))
    seen_phases, lines, job_updates = [], [], []
    deadline = time.monotonic() + 60
    while "Succeeded" not in seen_phases and time.monotonic() < deadline:
        message = json.loads(await asyncio.wait_for(socket.read_message(), 30))
        if message["type"] == "job":
            job_updates.append(message["job"]["phase"])
        elif message["type"] == "event":
            event = message["event"]
            if event["kind"] == "phase":
                seen_phases.append(event["data"]["phase"])
            elif event["kind"] == "log":
                lines.append((event["rank"], event["data"]["line"]))
    assert seen_phases[-1] == "Succeeded"
    assert sorted(lines) == [(0, "hello from 0"), (1, "hello from 1")]
    while "Succeeded" not in job_updates:  # pushed from the store's change feed, no polling
        message = json.loads(await asyncio.wait_for(socket.read_message(), 10))
        if message["type"] == "job":
            job_updates.append(message["job"]["phase"])
    assert job_updates[0] in ("Pending", "Running")
    socket.close()

    _, listing = await api(jp_fetch, "GET", "jobs")
    assert [j["id"] for j in listing["jobs"]] == [job["id"]]
    _, only_failed = await api(jp_fetch, "GET", "jobs", phase="Failed")
    assert only_failed["jobs"] == []
    _, detail = await api(jp_fetch, "GET", f"jobs/{job['id']}")
    assert detail["cell"] == cell and detail["spec"]["workers"] == 2
    response = await jp_fetch(*API.split("/"), "jobs", job["id"], "logs", params={"rank": 1})
    assert response.body.decode() == "[rank 1] hello from 1\n"

    code, running = await api(
        jp_fetch, "POST", "jobs", {"spec": {"workers": 2}, "cell": "import time\ntime.sleep(600)"}
    )
    await wait_for_phase(jp_fetch, running["id"], {"Running"})
    code, cancelled = await api(jp_fetch, "DELETE", f"jobs/{running['id']}")
    assert (code, cancelled["phase"]) == (200, "Cancelled")


async def test_logs_follow_streams_until_the_job_ends(jp_fetch):
    cell = "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.3)"
    _, job = await api(jp_fetch, "POST", "jobs", {"spec": {"workers": 1}, "cell": cell})
    response = await jp_fetch(
        *API.split("/"), "jobs", job["id"], "logs", params={"follow": 1}, request_timeout=60
    )
    assert response.body.decode().splitlines() == [f"[rank 0] tick {i}" for i in range(3)]


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"spec": {"workers": 0}, "cell": "pass"}, "--workers", "must be >= 1"),
        ({"spec": {"wrokers": 2}, "cell": "pass"}, "wrokers", "unknown setting"),
        ({"spec": {"framework": "mxnet"}, "cell": "pass"}, "--framework", "use one of"),
        ({"spec": {"workers": 1000}, "cell": "pass"}, "--workers", "limit of 64"),
        ({"spec": {}}, "cell", "send"),
        ({"spec": {}, "cell": "x = ("}, None, "syntax error on line 1"),
        (
            {"spec": {"secret_env": {"JT_NOT_IN_THE_SERVER_ENV": ""}}, "cell": "pass"},
            "--secret-env",
            "JT_NOT_IN_THE_SERVER_ENV is not set",
        ),
        (
            {"spec": {"secret_env": {"TOKEN": "creds/token"}}, "cell": "pass"},
            "--secret-env",
            "needs --backend kubernetes",
        ),
    ],
)
async def test_bad_payloads_are_400_naming_the_field(jp_fetch, body, field, text):
    with pytest.raises(HTTPClientError) as caught:
        await api(jp_fetch, "POST", "jobs", body)
    assert caught.value.code == 400
    error = json.loads(caught.value.response.body)
    assert error["field"] == field and text in error["message"]


async def test_bad_query_and_unknown_ids(jp_fetch):
    with pytest.raises(HTTPClientError) as caught:
        await api(jp_fetch, "GET", "jobs", limit="lots")
    assert caught.value.code == 400 and json.loads(caught.value.response.body)["field"] == "limit"
    for method, path in (("GET", "jobs/abcdef"), ("DELETE", "jobs/abcdef")):
        with pytest.raises(HTTPClientError) as caught:
            await api(jp_fetch, method, path)
        assert caught.value.code == 404
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(*API.split("/"), "jobs", "..%2F..%2Fetc", method="GET")
    assert caught.value.code == 404


async def test_cluster_describes_backends(jp_fetch):
    _, cluster = await api(jp_fetch, "GET", "cluster")
    assert cluster["default_backend"] == "local"
    assert cluster["backends"]["local"]["available"] is True
    assert cluster["backends"]["kubernetes"]["available"] is False
    assert "no usable Kubernetes configuration" in cluster["backends"]["kubernetes"]["error"]
    assert cluster["images"]["pytorch"].startswith("docker.io/pytorch/")
    by_name = {f["name"]: f for f in cluster["frameworks"]}
    assert list(by_name) == ["jax", "pytorch", "tensorflow", "xgboost"]
    assert (by_name["tensorflow"]["kubeflow_kind"], by_name["tensorflow"]["v2_runtime"]) == (
        "TFJob",
        None,
    )
    assert by_name["jax"]["v2_runtime"] == "jax-distributed"
    assert by_name["jax"]["image"] == cluster["images"]["jax"]


class DenyTraining(Authorizer):
    """An authorizer that allows everything but jupyter-training's resource."""

    def is_authorized(self, handler, user, action, resource):
        return resource != "jupyter_training"


@pytest.mark.parametrize("deny", [True])
@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_refuses_unauthorized_users(jp_fetch, deny, method, path):
    body = "{}" if method == "POST" else None
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(*API.split("/"), *path.split("/"), method=method, body=body)
    assert caught.value.code == 403


@pytest.mark.parametrize("deny", [True])
async def test_websocket_refuses_unauthorized_users(jp_ws_fetch, deny):
    with pytest.raises(HTTPClientError) as caught:
        await jp_ws_fetch(*API.split("/"), "events")
    assert caught.value.code == 403


async def test_mutating_calls_need_xsrf_when_authenticated_by_cookie(jp_fetch, jp_base_url):
    login = await jp_fetch(
        "login", headers={"Authorization": ""}, follow_redirects=False, raise_error=False, params={}
    )
    cookies = "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie"))
    xsrf = next(c.split("=", 1)[1] for c in cookies.split("; ") if c.startswith("_xsrf="))
    # Log in with the token the way a browser does: the server answers with a login cookie.
    token = (await jp_fetch("api", "status")).request.headers["Authorization"].split()[-1]
    logged_in = await jp_fetch(
        "login",
        method="POST",
        headers={"Authorization": "", "Cookie": cookies},
        body=f"_xsrf={xsrf}&password={token}",
        follow_redirects=False,
        raise_error=False,
    )
    session = "; ".join(
        [cookies] + [c.split(";", 1)[0] for c in logged_in.headers.get_list("Set-Cookie")]
    )
    body = json.dumps({"spec": {"workers": 1}, "cell": "pass"})
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(
            *API.split("/"),
            "jobs",
            method="POST",
            body=body,
            headers={"Authorization": "", "Cookie": session},
        )
    assert caught.value.code == 403
    accepted = await jp_fetch(
        *API.split("/"),
        "jobs",
        method="POST",
        body=body,
        headers={"Authorization": "", "Cookie": session, "X-XSRFToken": xsrf},
    )
    assert accepted.code == 201


def test_openapi_document_covers_every_route():
    import dataclasses
    from pathlib import Path

    import yaml

    from jupyter_training.events import PHASES
    from jupyter_training.server.handlers import HANDLERS, JOB_ID, SWEEP_ID
    from jupyter_training.spec import JobSpec

    document = yaml.safe_load((Path(__file__).parents[1] / "docs" / "openapi.yaml").read_text())
    documented = set(document["paths"])
    routes = {
        "/"
        + pattern.replace(JOB_ID, "{job_id}")
        .replace(SWEEP_ID, "{sweep_id}")
        .replace("(?P<metric>.+)", "{metric}")
        for pattern, _ in HANDLERS
    }
    assert documented == routes
    assert document["components"]["schemas"]["Phase"]["enum"] == list(PHASES)
    spec_fields = set(document["components"]["schemas"]["JobSpec"]["properties"])
    from jupyter_training.spec import GENERAL_FIELDS, KUBERNETES_FIELDS

    assert spec_fields == {*GENERAL_FIELDS, *KUBERNETES_FIELDS, "kubernetes"}
    assert {f.name for f in dataclasses.fields(JobSpec)} == {*GENERAL_FIELDS, "kubernetes"}


async def test_cluster_reports_kubernetes_apis_namespaces_and_gpus(
    jp_fetch, jp_serverapp, tmp_path
):
    from k8s.emulator import KubeEmulator

    kube = KubeEmulator(crds={"v1", "v2"}, namespaces=("default", "team-a")).start()
    client = jp_serverapp.web_app.settings["jupyter_training_client"]
    try:
        client.settings.kubeconfig = str(kube.write_kubeconfig(tmp_path / "kubeconfig"))
        _, cluster = await api(jp_fetch, "GET", "cluster")
    finally:
        kube.stop()
    info = cluster["backends"]["kubernetes"]
    assert info["available"] is True and info["apis"] == ["v1", "v2"]
    assert {"default", "team-a"} <= set(info["namespaces"])
    assert isinstance(info["gpus"], int)


LR_CELL = (
    "import jupyter_training as jt\n"
    "lr = {lr}\n"
    "jt.log_params(lr=lr)\n"
    "for i in range(300):\n"
    "    jt.report(step=i, loss=(1 - lr) ** i + jt.rank(), acc=i / 300)\n"
)


async def wait_recorded(jp_fetch, job_id, timeout=60):
    """The server's monitor has stored the job's whole history."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, job = await api(jp_fetch, "GET", f"jobs/{job_id}")
        if job["phase"] in ("Succeeded", "Failed") and job["metrics"] and "lr" in job["params"]:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} was never recorded")


async def test_runs_are_filtered_sorted_charted_and_compared(jp_fetch):
    ids = {}
    for lr in (0.001, 0.01, 0.1):
        name = f"lr-{str(lr).replace('.', '-')}"
        spec = {"workers": 2, "name": name, "tags": {"team": "vision"}}
        _, job = await api(jp_fetch, "POST", "jobs", {"spec": spec, "cell": LR_CELL.format(lr=lr)})
        ids[lr] = job["id"]
    for job_id in ids.values():
        await wait_recorded(jp_fetch, job_id)

    _, by_loss = await api(jp_fetch, "GET", "jobs", sort="metrics.loss")
    assert [j["id"] for j in by_loss["jobs"]] == [ids[0.1], ids[0.01], ids[0.001]]
    assert by_loss["jobs"][0]["params"]["lr"] == 0.1
    assert by_loss["jobs"][0]["tags"] == {"team": "vision"}
    _, descending = await api(jp_fetch, "GET", "jobs", sort="-metrics.loss", limit="1")
    assert [j["id"] for j in descending["jobs"]] == [ids[0.001]]
    _, named = await api(jp_fetch, "GET", "jobs", name="LR-0-0")  # a case-insensitive part
    assert {j["id"] for j in named["jobs"]} == {ids[0.001], ids[0.01]}
    _, globbed = await api(jp_fetch, "GET", "jobs", name="lr-0-1*")
    assert [j["id"] for j in globbed["jobs"]] == [ids[0.1]]

    _, metrics = await api(jp_fetch, "GET", f"jobs/{ids[0.1]}/metrics")
    assert metrics["metrics"] == [
        {"name": "loss", "ranks": {"0": 300, "1": 300}},
        {"name": "acc", "ranks": {"0": 300, "1": 300}},
    ]
    _, series = await api(jp_fetch, "GET", f"jobs/{ids[0.1]}/metrics/loss", max_points="100")
    assert [s["rank"] for s in series["series"]] == [0, 1]
    rank1 = series["series"][1]
    assert rank1["points"] == 300 and len(rank1["x"]) <= 101
    assert min(rank1["y"]) == pytest.approx(1 + 0.9**299) and max(rank1["y"]) == 2.0
    _, one = await api(jp_fetch, "GET", f"jobs/{ids[0.1]}/metrics/acc", rank="0")
    assert len(one["series"]) == 1 and one["series"][0]["x"] == list(range(300))

    _, comparison = await api(
        jp_fetch, "GET", "compare", ids=f"{ids[0.001]},lr-0-01,{ids[0.1]}", max_points="50"
    )
    assert [r["id"] for r in comparison["runs"]] == [ids[0.001], ids[0.01], ids[0.1]]
    assert comparison["differing"] == ["lr"]
    assert comparison["best"] == ids[0.1]
    assert comparison["objective"] == {"metric": "loss", "mode": "min"}
    assert [c["points"] for c in comparison["curves"]["loss"]] == [300] * 3
    _, by_acc = await api(jp_fetch, "GET", "compare", ids=ids[0.1], objective="acc:max")
    assert by_acc["best"] == ids[0.1]


@pytest.mark.parametrize(
    ("path", "params", "status", "text"),
    [
        ("compare", {}, 400, "give the runs to compare"),
        ("compare", {"ids": "nope"}, 404, "neither a job id nor a job name"),
        ("compare", {"ids": "abc", "objective": "x:up"}, 404, "neither a job id"),
        ("jobs", {"sort": "metrics loss"}, 400, "--sort: 'metrics loss' is not a column"),
        ("jobs/abc123/metrics", {}, 404, "matches no job"),
        ("jobs/abc123/metrics/loss", {}, 404, "matches no job"),
        ("jobs/abc123/metrics/loss", {"max_points": "1"}, 400, "max_points must be"),
    ],
)
async def test_run_queries_refuse_bad_input_by_name(jp_fetch, path, params, status, text):
    with pytest.raises(HTTPClientError) as caught:
        await api(jp_fetch, "GET", path, **params)
    assert caught.value.code == status
    assert text in json.loads(caught.value.response.body)["message"]


async def test_unknown_metric_and_rank_are_404(jp_fetch):
    _, job = await api(
        jp_fetch, "POST", "jobs", {"spec": {"workers": 1}, "cell": LR_CELL.format(lr=0.5)}
    )
    await wait_recorded(jp_fetch, job["id"])
    for params, text in (({}, "never reported a metric 'f1'"), ({"rank": "3"}, "rank 3 never")):
        metric = "f1" if not params else "loss"
        with pytest.raises(HTTPClientError) as caught:
            await api(jp_fetch, "GET", f"jobs/{job['id']}/metrics/{metric}", **params)
        assert caught.value.code == 404 and text in caught.value.response.body.decode()


async def test_points_of_a_job_gone_quiet_are_stored_while_it_runs(jp_fetch):
    cell = (
        "import time, jupyter_training as jt\n"
        "for i in range(5):\n"
        "    jt.report(step=i, loss=1.0 / (i + 1))\n"
        "time.sleep(30)\n"
    )
    _, job = await api(jp_fetch, "POST", "jobs", {"spec": {"workers": 1}, "cell": cell})
    deadline = time.monotonic() + 30
    counts = {}
    while time.monotonic() < deadline:
        _, metrics = await api(jp_fetch, "GET", f"jobs/{job['id']}/metrics")
        counts = {m["name"]: m["ranks"] for m in metrics["metrics"]}
        if counts.get("loss") == {"0": 5}:
            break
        await asyncio.sleep(0.2)
    assert counts == {"loss": {"0": 5}}
    _, running = await api(jp_fetch, "GET", f"jobs/{job['id']}")
    assert running["phase"] == "Running" and running["metrics"] == {"loss": 0.2}
    await api(jp_fetch, "DELETE", f"jobs/{job['id']}")


# -- sweeps ---------------------------------------------------------------------------------------

#: A trial's cell: its loss is lowest at lr=0.01, and lr=10 fails.
SWEEP_CELL = (
    "import math\n"
    "from jupyter_training import report\n"
    "if lr > 5:\n"
    "    raise ValueError(f'lr {lr} is too high')\n"
    "for step in range(3):\n"
    "    report(step=step, total=3, loss=(math.log10(lr) + 2) ** 2 + 0.01 * (3 - step))\n"
)
SWEEP_FLAGS = (
    "--param lr=choice(0.01,0.1,1.0,10.0) --sampler grid --trials 4 --parallel 2 "
    "--objective loss:min --seed 4 -w 1 --progress text"
)


@pytest.fixture
def sweep_magic(ip, jp_environ, store_dir, monkeypatch):
    """Runs ``%%train_sweep`` as a notebook would, into the server's store, on a thread (so
    the server in this event loop answers meanwhile); returns what the magic returned or
    raised."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(store_dir.parent))

    def run(line: str, cell: str):
        try:
            return ip.run_cell_magic("train_sweep", line, cell)
        except BaseException as err:  # the magic's error is what the test looks at
            return err

    async def sweep(line: str, cell: str):
        return await asyncio.to_thread(run, line, cell)

    return sweep


async def next_message(socket, kind, timeout=30):
    """The next WebSocket message of type ``kind`` (others skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(await asyncio.wait_for(socket.read_message(), timeout))
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind!r} message within {timeout} s")


async def test_a_sweep_is_listed_with_its_trials_best_and_counts(
    jp_fetch, jp_ws_fetch, sweep_magic
):
    socket = await jp_ws_fetch(*API.split("/"), "events")
    assert json.loads(await socket.read_message())["type"] == "jobs"
    best = await sweep_magic(f"{SWEEP_FLAGS} --name lrsweep", SWEEP_CELL)
    assert best == {"lr": 0.01}

    _, listing = await api(jp_fetch, "GET", "sweeps")
    assert listing["limit"] == 50 and len(listing["sweeps"]) == 1
    sweep = listing["sweeps"][0]
    assert (sweep["name"], sweep["phase"]) == ("lrsweep", "Succeeded")
    assert (sweep["done"], sweep["running"], sweep["stopped"]) == (4, 0, False)
    assert sweep["options"]["metric"] == "loss" and sweep["options"]["direction"] == "minimize"
    assert sweep["options"]["trials"] == 4 and "job" not in sweep["options"]
    assert sweep["best"]["params"] == {"lr": 0.01}
    assert sweep["best"]["value"] == pytest.approx(0.01)
    assert sweep["best"]["name"] == f"lrsweep-t{sweep['best']['trial']}"
    phases = sorted(trial["phase"] for trial in sweep["trials"].values())
    assert phases == ["Failed", "Succeeded", "Succeeded", "Succeeded"]

    # One sweep, by id, id prefix or name: every trial's job, oldest first.
    for ref in (sweep["id"], sweep["id"][:6], "lrsweep"):
        _, detail = await api(jp_fetch, "GET", f"sweeps/{ref}")
        assert detail["id"] == sweep["id"] and detail["cell"] == SWEEP_CELL
    jobs = detail["jobs"]
    assert [job["name"] for job in jobs] == [f"lrsweep-t{n}" for n in range(4)]
    assert all(job["sweep"] == sweep["id"] for job in jobs)
    assert all(job["tags"]["sweep"] == "lrsweep" for job in jobs)
    by_name = {job["name"]: job for job in jobs}
    for number, trial in sweep["trials"].items():
        assert by_name[f"lrsweep-t{number}"]["phase"] == trial["phase"]
        assert by_name[f"lrsweep-t{number}"]["id"] == trial["job"]
    assert by_name[sweep["best"]["name"]]["metrics"]["loss"] == pytest.approx(0.01)

    # The job list takes a sweep: its trials, newest first, with the other filters too.
    _, trials = await api(jp_fetch, "GET", "jobs", sweep="lrsweep")
    assert [job["id"] for job in trials["jobs"]] == [job["id"] for job in jobs[::-1]]
    _, failed = await api(jp_fetch, "GET", "jobs", sweep=sweep["id"], phase="Failed")
    assert [job["params"]["lr"] for job in failed["jobs"]] == [10.0]
    _, by_loss = await api(jp_fetch, "GET", "jobs", sweep="lrsweep", sort="metrics.loss")
    assert by_loss["jobs"][0]["id"] == sweep["best"]["job"]

    # Every change of the sweep reached the socket from the store's change feed.
    pushed = (await next_message(socket, "sweep"))["sweep"]
    assert pushed["id"] == sweep["id"]
    while not (pushed["phase"] == "Succeeded" and pushed["done"] == 4):
        pushed = (await next_message(socket, "sweep"))["sweep"]
    assert pushed == sweep
    socket.close()


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "sweeps/nosuchsweep", {}),
        ("POST", "sweeps/nosuchsweep/cancel", {}),
        ("GET", "jobs", {"sweep": "nosuchsweep"}),
    ],
)
async def test_an_unknown_sweep_is_404_saying_so(jp_fetch, method, path, params):
    with pytest.raises(HTTPClientError) as caught:
        await api(jp_fetch, method, path, **params)
    assert caught.value.code == 404
    error = json.loads(caught.value.response.body)
    assert "sweep 'nosuchsweep' matches no sweep" in error["message"]


async def test_bad_sweep_list_limit_is_400(jp_fetch):
    with pytest.raises(HTTPClientError) as caught:
        await api(jp_fetch, "GET", "sweeps", limit="0")
    assert caught.value.code == 400 and json.loads(caught.value.response.body)["field"] == "limit"


async def test_cancelling_a_sweep_stops_its_running_trials(jp_fetch, sweep_magic, tmp_path):
    go = tmp_path / "go"
    cell = (
        "import os, time\n"
        "from jupyter_training import report\n"
        "report(step=0, loss=lr)\n"
        f"while not os.path.exists({str(go)!r}):\n"
        "    time.sleep(0.05)\n"
    )
    flags = "--param lr=uniform(0,1) --trials 6 --parallel 2 --objective loss:min -w 1"
    running = asyncio.ensure_future(sweep_magic(f"{flags} --name slow --progress text", cell))
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the sweep's trials never ran"
            _, listing = await api(jp_fetch, "GET", "sweeps")
            sweeps = listing["sweeps"]
            if sweeps and sweeps[0]["running"] == 2:
                _, detail = await api(jp_fetch, "GET", "sweeps/slow")
                if [job["phase"] for job in detail["jobs"]] == ["Running", "Running"]:
                    break
            await asyncio.sleep(0.1)
        assert sweeps[0]["phase"] == "Running" and sweeps[0]["stopped"] is False
        first = [job["id"] for job in detail["jobs"]]

        code, cancelled = await api(jp_fetch, "POST", "sweeps/slow/cancel")
        assert code == 200 and cancelled["phase"] == "Cancelled"
        assert cancelled["message"] == "cancelled by user"
        for job_id in first:
            _, job = await api(jp_fetch, "GET", f"jobs/{job_id}")
            assert job["phase"] == "Cancelled"
    finally:
        go.touch()
    outcome = await asyncio.wait_for(running, 60)  # the kernel's driver saw it and stopped
    assert isinstance(outcome, SweepFailedError) and "Cancelled: cancelled by user" in str(outcome)
    _, detail = await api(jp_fetch, "GET", "sweeps/slow")
    assert detail["phase"] == "Cancelled" and detail["running"] == 0
    assert detail["stopped"] is False
    assert [job["id"] for job in detail["jobs"]] == first  # none started after the cancel
    assert [job["phase"] for job in detail["jobs"]] == ["Cancelled", "Cancelled"]
    code, again = await api(jp_fetch, "POST", f"sweeps/{detail['id']}/cancel")
    assert code == 200 and again == detail_summary(detail)  # an ended sweep is left as it is


def detail_summary(detail: dict) -> dict:
    """GET sweeps/ID less what only it has: the sweep as the list shows it."""
    return {k: v for k, v in detail.items() if k not in ("cell", "jobs")}


async def test_a_running_sweep_whose_driver_is_gone_is_stopped(jp_fetch, jp_serverapp):
    import subprocess
    import sys

    from jupyter_training.store import SweepRecord

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    store = jp_serverapp.web_app.settings["jupyter_training_client"].store
    spec = {"metric": "loss", "direction": "minimize", "trials": 3, "params": []}
    store.add_sweep(
        SweepRecord(
            id="0123456789ab",
            name="orphan",
            phase="Running",
            spec=spec,
            cell="pass",
            driver_pid=int(gone.stdout),
            driver_start="0",
            trials={"0": {"job": None, "name": "orphan-t0", "phase": "Succeeded", "value": 1.0}},
        )
    )
    _, listing = await api(jp_fetch, "GET", "sweeps")
    orphan = listing["sweeps"][0]
    assert (orphan["name"], orphan["stopped"], orphan["done"], orphan["running"]) == (
        "orphan",
        True,
        1,
        0,
    )
    _, detail = await api(jp_fetch, "GET", "sweeps/orphan")
    assert detail["jobs"] == [] and detail["stopped"] is True


async def test_the_feed_skips_ids_of_nothing_and_goes_on(jp_fetch, jp_ws_fetch, store_dir):
    socket = await jp_ws_fetch(*API.split("/"), "events")
    assert json.loads(await socket.read_message())["type"] == "jobs"
    with (store_dir / "changes.jsonl").open("a") as feed:
        feed.write('{"id": "feedfeedfeed", "time": 0}\n{"id": 7}\nnot json\n')
    _, job = await api(jp_fetch, "POST", "jobs", {"spec": {"workers": 1}, "cell": "pass"})
    message = await next_message(socket, "job")
    assert message["job"]["id"] == job["id"]
    socket.close()


#: Saves a checkpoint a step and fails at step 2 unless the file MARK (a notebook value)
#: exists; a resumed run starts after the last checkpoint and goes on to step 5.
RESUME_CELL = (
    "import os, jupyter_training as jt\n"
    "ckpt = jt.latest_checkpoint()\n"
    "start = ckpt.step + 1 if ckpt else 0\n"
    "for step in range(start, 6):\n"
    "    jt.save_checkpoint({'step': step}, step)\n"
    "    jt.report(step=step, total=6, loss=1 / (step + 1))\n"
    "    if step == 2 and not os.path.exists(MARK):\n"
    "        raise RuntimeError('preempted')\n"
)


@pytest.fixture
def kernel_magic(ip, jp_environ, store_dir, monkeypatch):
    """Runs a training magic as a notebook would, into the server's store, on a thread (so
    the server in this event loop answers meanwhile); returns what it returned or raised."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(store_dir.parent))

    def run(kind: str, name: str, line: str, cell: str | None):
        try:
            if kind == "cell":
                return ip.run_cell_magic(name, line, cell)
            return ip.run_line_magic(name, line)
        except BaseException as err:  # the magic's error is what the test looks at
            return err

    async def magic(name: str, line: str, cell: str | None = None):
        return await asyncio.to_thread(run, "line" if cell is None else "cell", name, line, cell)

    magic.ip = ip
    return magic


async def wait_for(jp_fetch, job_id, predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, job = await api(jp_fetch, "GET", f"jobs/{job_id}")
        if predicate(job):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id}: {what} never came: {job}")


def chain(detail: dict) -> list[tuple]:
    return [
        (entry["id"], entry["name"], entry["phase"], entry["parent_id"], entry["checkpoints"])
        for entry in detail["lineage_jobs"]
    ]


async def test_a_resumed_job_shows_its_lineage_checkpoints_and_attempts(
    jp_fetch, jp_ws_fetch, kernel_magic, tmp_path
):
    from jupyter_training.errors import JobFailedError

    mark = tmp_path / "mark"
    kernel_magic.ip.user_ns["MARK"] = str(mark)
    failure = await kernel_magic(
        "train_distributed", "-w 1 --name resumable --progress text", RESUME_CELL
    )
    assert isinstance(failure, JobFailedError) and "preempted" in str(failure)
    _, listing = await api(jp_fetch, "GET", "jobs")
    (listed,) = listing["jobs"]
    failed = await wait_for(
        jp_fetch, listed["id"], lambda j: len(j["checkpoints"]) == 3, "three checkpoints"
    )
    assert failed["phase"] == "Failed"
    assert (failed["parent_id"], failed["lineage"]) == (None, failed["id"])
    assert [m["step"] for m in failed["checkpoints"]] == [0, 1, 2]
    assert all(isinstance(m["time"], float) for m in failed["checkpoints"])
    assert failed["attempts"] == [{"attempt": 0, "workers": 1}]
    assert chain(failed) == [(failed["id"], "resumable", "Failed", None, 3)]
    for key in ("parent_id", "lineage", "checkpoints", "attempts"):  # the list has them too
        assert listed[key] == failed[key] or key == "checkpoints"

    socket = await jp_ws_fetch(*API.split("/"), "events")
    assert json.loads(await socket.read_message())["type"] == "jobs"
    mark.touch()
    assert await kernel_magic("train_resume", f"{failed['id']} --progress text") is None
    _, listing = await api(jp_fetch, "GET", "jobs")
    newest = listing["jobs"][0]
    assert newest["id"] != failed["id"] and newest["name"] == "resumable"
    resumed = await wait_for(
        jp_fetch,
        newest["id"],
        lambda j: j["phase"] == "Succeeded" and len(j["checkpoints"]) == 3,
        "Succeeded with three checkpoints",
    )
    assert (resumed["parent_id"], resumed["lineage"]) == (failed["id"], failed["id"])
    assert [m["step"] for m in resumed["checkpoints"]] == [3, 4, 5]  # on from the last
    assert resumed["attempts"] == [{"attempt": 0, "workers": 1}]
    both = [
        (failed["id"], "resumable", "Failed", None, 3),
        (resumed["id"], "resumable", "Succeeded", failed["id"], 3),
    ]
    assert chain(resumed) == both
    _, again = await api(jp_fetch, "GET", f"jobs/{failed['id']}")
    assert chain(again) == both  # the parent lists the job that resumed it
    assert [e["created"] for e in again["lineage_jobs"]] == [failed["created"], resumed["created"]]

    # The WebSocket's job messages carry the lineage too.
    pushed = (await next_message(socket, "job"))["job"]
    while pushed["id"] != resumed["id"]:
        pushed = (await next_message(socket, "job"))["job"]
    assert (pushed["parent_id"], pushed["lineage"]) == (failed["id"], failed["id"])
    assert "checkpoints" in pushed and "attempts" in pushed
    socket.close()


async def test_an_elastic_jobs_attempts_are_each_attempts_workers(jp_fetch, kernel_magic):
    """A rank killed in the first attempt of a --workers 1:2 job: the second attempt runs
    with the survivor, and the job JSON says so."""
    cell = (
        "import os, signal, time, jupyter_training as jt\n"
        "if jt.rank() == 1 and jt.restart_count() == 0:\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "time.sleep(0.5)\n"
    )
    outcome = await kernel_magic(
        "train_distributed", "--workers 1:2 --name elastic --progress text", cell
    )
    assert outcome is None
    _, listing = await api(jp_fetch, "GET", "jobs")
    job = await wait_for(
        jp_fetch, listing["jobs"][0]["id"], lambda j: j["phase"] == "Succeeded", ""
    )
    assert job["attempts"] == [{"attempt": 0, "workers": 2}, {"attempt": 1, "workers": 1}]
    assert job["checkpoints"] == [] and job["parent_id"] is None
    assert chain(job) == [(job["id"], "elastic", "Succeeded", None, 0)]
