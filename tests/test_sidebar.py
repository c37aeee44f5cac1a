"""The JupyterLab sidebar in real headless Chromium against a real ``jupyter lab``.

Launches the active notebook cell from the sidebar's form (through the kernel, so
notebook names are captured), watches it reach Succeeded, reads a rank's logs,
and cancels a second job; charts a job's metrics per rank, filters and sorts the
job list, and compares three runs that differ only in a notebook value ``lr``; shows a
sweep as one row that opens into its trials.
Set ``JT_SCREENSHOTS=<dir>`` to save screenshots.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from jupyter_training.scheduled import SCHEDULER_TAG

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LABEXTENSION = Path(__file__).resolve().parents[1] / "jupyter_training" / "labextension"
TOKEN = "sidebar-test"
#: In the kernels' environment of the ``lab`` server; launched with "Secret env".
SECRET = "sidebar-secret-4f9c1e"


#: The training cell of the compare scenario: ``lr`` is the notebook's.
LR_CELL = (
    "import jupyter_training\n"
    "for i in range(50):\n"
    "    jupyter_training.report(step=i, loss=(1 - lr) ** i)"
)
LR_CELLS = (3, 4)  # the ``lr = ...`` cell and the training cell
#: The resume scenario's training cell: a checkpoint a step; it fails at steps 2 and 5
#: unless the file ``MARK`` (a notebook value) exists, and a resumed run starts after the
#: last checkpoint.
RESUME_CELL = (
    "import os, jupyter_training as jt\n"
    "ckpt = jt.latest_checkpoint()\n"
    "start = ckpt.step + 1 if ckpt else 0\n"
    "for step in range(start, 9):\n"
    "    jt.save_checkpoint({'step': step}, step)\n"
    "    jt.report(step=step, total=9, loss=1 / (step + 1))\n"
    "    if step in (2, 5) and not os.path.exists(MARK):\n"
    "        raise RuntimeError('preempted')\n"
)
RESUME_CELLS = (5, 6)  # the ``MARK = ...`` cell and the training cell
#: The live-page scenario: the probe asked directly, then a job run by the magic.
PROBE_CELL = "from jupyter_training.views.frontend import frontend_is_live\nfrontend_is_live()"
WATCHED_CELL = (
    "%%train_distributed --workers 2\n"
    "import jupyter_training as jt\n"
    "for i in range(3):\n"
    "    print('watched in the page', i, jt.rank())\n"
    "    jt.report(step=i + 1, total=3, loss=1 / (i + 1))"
)
WATCHED_CELLS = (7, 8)
#: A job that runs until its view's Cancel button is clicked.
CANCEL_CELL = (
    "%%train_distributed --workers 1\n"
    "import time\n"
    "print('waiting for cancel', flush=True)\n"
    "time.sleep(600)"
)
CANCEL_CELL_INDEX = 9
#: The file whose absence fails the resume scenario's job, in the lab's root directory.
RESUME_MARK = "resume-mark"
expect = playwright.expect


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_training\nfactor = 3"),
        nbformat.v4.new_code_cell(
            "import os, jupyter_training as jt\n"
            "print('sidebar launch', jt.rank() * factor)\n"
            "print('token', os.environ.get('JT_SIDEBAR_TOKEN'))\n"
            "jt.report(step=1, total=1, loss=0.25)"
        ),
        nbformat.v4.new_code_cell("import time\ntime.sleep(600)"),
        nbformat.v4.new_code_cell("lr = 0.1"),
        nbformat.v4.new_code_cell(LR_CELL),
        nbformat.v4.new_code_cell(f"import os\nMARK = os.path.abspath({RESUME_MARK!r})"),
        nbformat.v4.new_code_cell(RESUME_CELL),
        nbformat.v4.new_code_cell(PROBE_CELL),
        nbformat.v4.new_code_cell(WATCHED_CELL),
        nbformat.v4.new_code_cell(CANCEL_CELL),
    ]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)


class LabServer:
    """A real Jupyter server (``app``: jupyterlab or notebook) in its own directories."""

    def __init__(
        self, tmp_path_factory, app: str, base_url: str, *extra: str, **environ: str
    ) -> None:
        if not Path(CHROMIUM).exists():
            pytest.fail("chromium is not installed: apt-get install -y chromium (see README)")
        if not (LABEXTENSION / "package.json").exists():
            pytest.fail("the labextension is not built: pip install -e . builds it")
        self.app, self.base_url, self.extra = app, base_url, extra
        self.base = base = tmp_path_factory.mktemp("lab")
        self.env = env = dict(os.environ, **environ)
        env.pop("JUPYTER_PLATFORM_DIRS", None)
        # The labextension linked below wins over an older copy installed in the venv.
        env["JUPYTER_PREFER_ENV_PATH"] = "0"
        for name in (
            "JUPYTER_CONFIG_DIR",
            "JUPYTER_DATA_DIR",
            "JUPYTER_RUNTIME_DIR",
            "IPYTHONDIR",
            "XDG_CONFIG_HOME",
            "XDG_CACHE_HOME",
        ):
            (base / name.lower()).mkdir()
            env[name] = str(base / name.lower())
        settings = base / "lab-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false"})
        )
        env["JUPYTERLAB_SETTINGS_DIR"] = str(base / "lab-settings")
        extensions = base / "jupyter_data_dir" / "labextensions"
        extensions.mkdir()
        (extensions / "jupyter-training").symlink_to(LABEXTENSION)
        (base / "jupyter_config_dir" / "jupyter_server_config.json").write_text(
            json.dumps({"FileContentsManager": {"delete_to_trash": False}})
        )
        self.root = base / "work"
        self.root.mkdir()
        _notebook(self.root / "train.ipynb")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}{base_url}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LabServer:
        """Start the server (again, on the same port and directories) and wait for it."""
        with (self.base / "lab.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    self.app,
                    "--no-browser",
                    "--allow-root",
                    f"--port={self.port}",
                    "--port-retries=0",
                    f"--IdentityProvider.token={TOKEN}",
                    f"--ServerApp.root_dir={self.root}",
                    f"--ServerApp.base_url={self.base_url}",
                    *self.extra,
                ],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        return self

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.process is not None:
            self.process.send_signal(signum)
            self.process.wait(30)
            self.process = None

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        """Call the training REST API with the token."""
        request = urllib.request.Request(
            f"{self.url}jupyter-training/api/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def _serve(tmp_path_factory, app: str, base_url: str, *extra: str, **environ: str):
    server = LabServer(tmp_path_factory, app, base_url, *extra, **environ).start()
    try:
        yield server.url, server.base
    finally:
        server.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab under a base_url prefix, as behind JupyterHub (its kernels have a token)."""
    yield from _serve(tmp_path_factory, "jupyterlab", "/prefix/", JT_SIDEBAR_TOKEN=SECRET)


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory):
    """Jupyter Notebook 7."""
    yield from _serve(tmp_path_factory, "notebook", "/")


@pytest.fixture(scope="module")
def lab_without_server_extension(tmp_path_factory):
    """JupyterLab with the sidebar but without the server extension."""
    yield from _serve(
        tmp_path_factory,
        "jupyterlab",
        "/",
        "--ServerApp.jpserver_extensions=jupyter_training=False",
    )


@pytest.fixture
def page(lab):
    url, _ = lab
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}lab/tree/train.ipynb?token={TOKEN}")
        page.wait_for_selector("text=Python 3 (ipykernel) | Idle", timeout=60_000)
        yield page
        browser.close()


def screenshot(page, name: str) -> None:
    directory = os.environ.get("JT_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / name))


def select_cell(page, index: int) -> None:
    page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").nth(index).click()


def open_sidebar(page) -> None:
    """Show the sidebar; JupyterLab may have restored it open from an earlier page."""
    sidebar = page.get_by_test_id("jt-sidebar")
    if not sidebar.is_visible():
        page.locator(".jp-SideBar [data-id='jupyter-training:sidebar']").click()
    sidebar.wait_for(timeout=10_000)


def launch(page, workers: int) -> None:
    page.get_by_test_id("jt-launch-workers").fill(str(workers))
    page.get_by_test_id("jt-launch-button").click()


def test_launch_watch_logs_and_cancel(page):
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Shift+Enter")  # %load_ext and a notebook variable the job will use
    page.wait_for_selector(
        ".jp-Notebook .jp-Cell >> nth=0 >> .jp-InputPrompt >> text=[1]", timeout=30_000
    )
    open_sidebar(page)
    # The framework list comes from the server (one entry per frameworks/ module).
    options = page.get_by_test_id("jt-launch-framework").locator("option")
    options.nth(3).wait_for(state="attached", timeout=10_000)
    assert options.all_inner_texts() == ["JAX", "PyTorch", "TensorFlow", "XGBoost"]
    assert page.get_by_test_id("jt-launch-framework").input_value() == "pytorch"
    select_cell(page, 1)
    page.get_by_test_id("jt-launch-secret-env").fill("JT_SIDEBAR_TOKEN")
    launch(page, workers=2)
    done = page.locator("[data-testid='jt-job-row'][data-phase='Succeeded']")
    done.first.wait_for(timeout=90_000)
    screenshot(page, "sidebar-jobs.png")
    done.first.click()
    page.get_by_test_id("jt-details").wait_for()
    page.get_by_test_id("jt-log-rank").select_option("1")
    log = page.get_by_test_id("jt-log")
    log.get_by_text("sidebar launch 3").wait_for(timeout=30_000)
    assert "sidebar launch 0" not in log.inner_text()
    assert "token ***" in log.inner_text()  # the kernel's secret reached the job, masked
    assert SECRET not in page.content()
    assert page.locator("[data-testid='jt-rank-row']").count() == 2
    screenshot(page, "sidebar-details.png")
    page.get_by_test_id("jt-back").click()
    page.get_by_test_id("jt-launch-secret-env").fill("")

    select_cell(page, 2)
    launch(page, workers=2)
    running = page.locator("[data-testid='jt-job-row'][data-phase='Running']")
    running.first.wait_for(timeout=90_000)
    running.first.click()
    page.get_by_test_id("jt-cancel").click()
    page.get_by_test_id("jt-back").click()
    page.locator("[data-testid='jt-job-row'][data-phase='Cancelled']").first.wait_for(
        timeout=60_000
    )
    screenshot(page, "sidebar-cancelled.png")


def rest(url: str, path: str, body: dict | None = None, method: str | None = None):
    """Call the training REST API of the server at ``url`` with the token (POST with a
    body, or ``method``)."""
    request = urllib.request.Request(
        f"{url}jupyter-training/api/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
    return json.loads(text) if text else None


def set_cell(page, index: int, source: str) -> None:
    """Replace a cell's source and run it (Shift+Enter)."""
    page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").nth(index).click()
    page.keyboard.press("Control+A")
    page.keyboard.type(source)
    page.keyboard.press("Shift+Enter")


def widen_sidebar(page, width: int) -> None:
    """Drag the left sidebar's edge out to ``width`` pixels, as a user would."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(width, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()


def legend(page, chart) -> list[str]:
    """The line labels of a uPlot chart's legend (it has no row for x: the legend is not live)."""
    return [text.strip() for text in chart.locator(".u-legend .u-series").all_inner_texts()]


#: The sidebar's first line colours (rank 0, 1, 2 or the first, second and third run).
BLUE, ORANGE, GREEN = (31, 119, 180), (255, 127, 14), (44, 160, 44)


def line_pixels(chart, rgb: tuple[int, int, int]) -> int:
    """How many pixels of the chart's canvas uPlot painted in (about) colour ``rgb``."""
    return chart.locator("canvas").evaluate(
        """(canvas, [r, g, b]) => {
            const { width, height } = canvas;
            const { data } = canvas.getContext('2d').getImageData(0, 0, width, height);
            let count = 0;
            for (let i = 0; i < data.length; i += 4) {
                const off =
                    Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b);
                if (data[i + 3] > 200 && off < 40) count++;
            }
            return count;
        }""",
        list(rgb),
    )


def row_ids(page, among: list[str]) -> list[str]:
    ids = page.locator("[data-testid='jt-job-row']").evaluate_all(
        "rows => rows.map(row => row.dataset.jobId)"
    )
    return [job_id for job_id in ids if job_id in among]


def test_metrics_filters_and_compare_three_lr_runs(page, lab):
    """Three runs differing only in the notebook's ``lr``: charted per rank, sorted by their
    final loss, and told apart and ranked in the compare view with their full loss history."""
    url, _ = lab
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_sidebar(page)
    page.get_by_test_id("jt-launch-framework").locator("option").nth(1).wait_for(
        state="attached", timeout=10_000
    )
    lr_cell, train_cell = LR_CELLS
    runs: dict[float, dict] = {}
    for lr in (0.1, 0.3, 0.5):
        before = {job["id"] for job in rest(url, "jobs?limit=500")["jobs"]}
        set_cell(page, lr_cell, f"lr = {lr}")
        select_cell(page, train_cell)
        launch(page, workers=2)
        deadline = time.monotonic() + 60
        while not (new := [j for j in rest(url, "jobs")["jobs"] if j["id"] not in before]):
            assert time.monotonic() < deadline, "the launch made no job"
            time.sleep(0.2)
        runs[lr] = new[0]
    ids = [run["id"] for run in runs.values()]
    for job_id in ids:
        page.locator(
            f"[data-testid='jt-job-row'][data-job-id='{job_id}'][data-phase='Succeeded']"
        ).wait_for(timeout=90_000)
    for lr, run in runs.items():  # the notebook's value is each run's param
        assert rest(url, f"jobs/{run['id']}")["params"]["lr"] == lr
    best, worst = runs[0.5], runs[0.1]

    # The list: filtered by phase, sorted by the final loss, then by name (substring and glob).
    page.get_by_test_id("jt-filter-phase").select_option("Succeeded")
    page.get_by_test_id("jt-sort").select_option("metrics.loss")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('[data-testid=jt-job-row]')]"
        f".map(r => r.dataset.jobId).filter(id => {json.dumps(ids)}.includes(id))"
        f".join() === {json.dumps(','.join(ids[::-1]))}"
    )
    assert row_ids(page, ids) == [runs[0.5]["id"], runs[0.3]["id"], runs[0.1]["id"]]
    page.get_by_test_id("jt-sort-order").click()
    expect(page.get_by_test_id("jt-sort-order")).to_have_attribute("data-order", "desc")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('[data-testid=jt-job-row]')]"
        f".map(r => r.dataset.jobId).filter(id => {json.dumps(ids)}.includes(id))"
        f".join() === {json.dumps(','.join(ids))}"
    )
    notebook = rest(url, f"jobs/{best['id']}")["notebook"]
    assert notebook.endswith("train.ipynb")
    page.get_by_test_id("jt-filter-notebook").select_option(notebook)
    expect(page.locator(f"[data-testid='jt-job-row'][data-job-id='{best['id']}']")).to_be_visible()
    assert row_ids(page, ids) == ids  # still by loss, highest first
    page.get_by_test_id("jt-filter-notebook").select_option("")
    page.get_by_test_id("jt-filter-name").fill(runs[0.3]["name"].upper())
    expect(page.locator("[data-testid='jt-job-row']")).to_have_count(1)
    assert row_ids(page, ids) == [runs[0.3]["id"]]
    page.get_by_test_id("jt-filter-name").fill(runs[0.3]["name"][:-3] + "*")
    expect(
        page.locator(f"[data-testid='jt-job-row'][data-job-id='{runs[0.3]['id']}']")
    ).to_be_visible()
    page.get_by_test_id("jt-filter-clear").click()
    expect(page.get_by_test_id("jt-filter-name")).to_have_value("")

    # Details: a chart per metric, rank 0 by default; any rank, or all ranks overlaid.
    widen_sidebar(page, 560)
    page.locator(f"[data-testid='jt-job-row'][data-job-id='{best['id']}']").click()
    chart = page.locator("[data-testid='jt-metric-chart'][data-metric='loss']")
    expect(chart).to_have_attribute("data-series", "1")
    expect(chart).to_have_attribute("data-points", "50")
    assert legend(page, chart) == ["rank 0"]
    assert line_pixels(chart, BLUE) > 50 and line_pixels(chart, ORANGE) == 0
    page.get_by_test_id("jt-metric-rank").select_option("all")
    expect(chart).to_have_attribute("data-series", "2")
    assert legend(page, chart) == ["rank 0", "rank 1"]
    assert line_pixels(chart, ORANGE) > 50  # rank 1 drawn over rank 0 (the same values)
    page.get_by_test_id("jt-metric-rank").select_option("1")
    expect(chart).to_have_attribute("data-series", "1")
    assert legend(page, chart) == ["rank 1"]
    assert line_pixels(chart, ORANGE) > 50 and line_pixels(chart, BLUE) == 0
    page.get_by_test_id("jt-metric-rank").select_option("all")
    page.get_by_test_id("jt-chart-log").check()
    expect(chart).to_have_attribute("data-series", "2")
    screenshot(page, "sidebar-metrics.png")
    page.get_by_test_id("jt-back").click()

    # Compare: tick the three runs.
    for job_id in ids:
        page.locator(f"[data-testid='jt-job-select'][data-job-id='{job_id}']").check()
    compare = page.get_by_test_id("jt-compare-button")
    expect(compare).to_have_text("Compare 3")
    compare.click()
    view = page.get_by_test_id("jt-compare")
    columns = view.get_by_test_id("jt-compare-run")
    expect(columns).to_have_count(3)
    assert columns.evaluate_all("cs => cs.map(c => c.dataset.jobId)") == ids
    differing = view.locator("[data-testid='jt-compare-param-row'][data-differing='true']")
    expect(differing).to_have_count(1)
    assert differing.get_attribute("data-param") == "lr"
    assert differing.locator("td").all_inner_texts() == ["0.1", "0.3", "0.5"]
    assert "jp-mod-differing" in differing.get_attribute("class")
    assert page.get_by_test_id("jt-compare-objective").input_value() == "loss"
    marked = view.locator("[data-testid='jt-compare-run'][data-best='true']")
    expect(marked).to_have_count(1)
    assert marked.get_attribute("data-job-id") == best["id"]
    assert view.get_by_test_id("jt-compare-best").count() == 1
    loss_row = view.locator("[data-testid='jt-compare-metric-row'][data-metric='loss']")
    final = [float(text) for text in loss_row.locator("td").all_inner_texts()]
    assert final == sorted(final, reverse=True) and final[0] == pytest.approx(0.9**49, rel=1e-3)
    curves = view.locator("[data-testid='jt-metric-chart'][data-metric='loss']")
    expect(curves).to_have_attribute("data-series", "3")
    expect(curves).to_have_attribute("data-points", "50")  # the full history of every run
    names = [run["name"] for run in runs.values()]
    assert legend(page, curves) == [names[0], names[1], names[2] + " ★"]
    page.get_by_test_id("jt-chart-log").check()
    for color in (BLUE, ORANGE, GREEN):  # a line per run, each of its own colour
        assert line_pixels(curves, color) > 50
    screenshot(page, "sidebar-compare.png")
    # Higher is better: the ranking turns over.
    page.get_by_test_id("jt-compare-mode").select_option("max")
    expect(marked).to_have_attribute("data-job-id", worst["id"])
    page.get_by_test_id("jt-compare-only-differing").check()
    expect(view.get_by_test_id("jt-compare-param-row")).to_have_count(1)
    page.get_by_test_id("jt-compare-back").click()
    page.get_by_test_id("jt-compare-clear").click()
    expect(page.get_by_test_id("jt-compare-button")).to_have_count(0)
    assert errors == []


def stored_points(url: str, job_id: str, metric: str, rank: str = "0") -> int:
    """How many points of ``metric`` the server has stored for ``rank`` of the job."""
    for entry in rest(url, f"jobs/{job_id}/metrics")["metrics"]:
        if entry["name"] == metric:
            return entry["ranks"].get(rank, 0)
    return 0


def test_a_live_chart_is_the_downsampled_history_plus_each_new_point_once(page, lab):
    """Details of a running job: the server's thinned history (at most 1,000 points), then
    the live reports appended, each once although the subscription replays from the start."""
    url, base = lab
    go = base / "go-live"
    cell = (
        "import os, time, jupyter_training as jt\n"
        "for i in range(3000):\n"
        "    jt.report(step=i, acc=i / 3000)\n"
        # The server's recorder writes on the next report a second later: give it one.
        "time.sleep(1.2)\n"
        "jt.report(step=3000, acc=1.0)\n"
        f"while not os.path.exists({str(go)!r}):\n"
        "    time.sleep(0.05)\n"
        "for i in range(3001, 3021):\n"
        "    jt.report(step=i, acc=i / 3000)\n"
        "    time.sleep(0.02)\n"
    )
    job = rest(url, "jobs", {"spec": {"workers": 1, "name": "live-chart"}, "cell": cell})
    try:
        deadline = time.monotonic() + 60
        while stored_points(url, job["id"], "acc") < 3001:
            assert time.monotonic() < deadline, "the history never reached 3001 points"
            time.sleep(0.2)
        open_sidebar(page)
        page.locator(f"[data-testid='jt-job-row'][data-job-id='{job['id']}']").click()
        chart = page.locator("[data-testid='jt-metric-chart'][data-metric='acc']")
        chart.wait_for(timeout=30_000)
        time.sleep(1)  # the replay of 3,000 reports has arrived: none of them is added again
        fetched = int(chart.get_attribute("data-points"))
        assert 300 <= fetched <= 1000  # thinned by the server (max_points=1000)
        go.touch()
        expect(chart).to_have_attribute("data-points", str(fetched + 20), timeout=30_000)
        expect(page.get_by_test_id("jt-details").get_by_test_id("jt-job-phase")).to_have_text(
            "Succeeded", timeout=30_000
        )
        assert int(chart.get_attribute("data-points")) == fetched + 20
    finally:
        go.touch()


#: A trial's cell: lr=0.01 is best, lr=10 fails, and the others trail from their first
#: report, so the median pruner stops them once one trial has finished.
SWEEP_CELL = (
    "import math, time\n"
    "from jupyter_training import report\n"
    "if lr > 5:\n"
    "    raise ValueError(f'lr {lr} is too high')\n"
    "for step in range(8):\n"
    "    report(step=step, total=8, loss=(math.log10(lr) + 2) ** 2 + 0.01 * (8 - step))\n"
    "    time.sleep(0.15)\n"
)
#: One trial at a time, in the grid order seed 4 gives: lr=0.01 first (it sets the bar).
SWEEP_FLAGS = (
    "--param lr=choice(0.01,0.1,1.0,10.0) --sampler grid --seed 4 --trials 4 --parallel 1 "
    "--objective loss:min --prune median -w 1 --progress text --name lr-sweep"
)


def test_a_sweep_is_one_row_that_opens_into_its_trials(page, lab, ip, monkeypatch):
    """A %%train_sweep run from a kernel on the lab's store: the list shows it as one row,
    live, then with its progress and best value; opened, its trials, the best starred,
    pruned and failed ones as such, each trial's details a click away."""
    url, base = lab
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(base / "jupyter_data_dir"))  # the lab's store
    open_sidebar(page)
    outcome: list[object] = []
    sweep_thread = threading.Thread(
        target=lambda: outcome.append(ip.run_cell_magic("train_sweep", SWEEP_FLAGS, SWEEP_CELL))
    )
    sweep_thread.start()
    try:
        row = page.locator("[data-testid='jt-sweep-row']", has_text="lr-sweep")
        expect(row).to_have_attribute("data-phase", "Running", timeout=30_000)
        expect(row.get_by_test_id("jt-sweep-progress")).to_contain_text("/4 trials")
    finally:
        sweep_thread.join(120)
    assert outcome == [{"lr": 0.01}]
    sweep = rest(url, "sweeps/lr-sweep")
    jobs = {job["params"]["lr"]: job for job in sweep["jobs"]}
    assert {lr: job["phase"] for lr, job in jobs.items()} == {
        0.01: "Succeeded",
        0.1: "Pruned",
        1.0: "Pruned",
        10.0: "Failed",
    }
    best = jobs[0.01]
    assert sweep["best"]["job"] == best["id"]

    # One row, pushed to its end; its trials are not rows of their own.
    row = page.locator(f"[data-testid='jt-sweep-row'][data-sweep-id='{sweep['id']}']")
    expect(row).to_have_attribute("data-phase", "Succeeded", timeout=30_000)
    expect(row.get_by_test_id("jt-sweep-progress")).to_contain_text("4/4 trials · loss:min")
    trial_number = sweep["best"]["trial"]
    expect(row.get_by_test_id("jt-sweep-best")).to_have_text(
        f"★ best loss 0.01 (t{trial_number}) · lr=0.01"
    )
    expect(row.get_by_test_id("jt-trial-row")).to_have_count(0)
    for job in sweep["jobs"]:
        expect(
            page.locator(f"[data-testid='jt-job-row'][data-job-id='{job['id']}']")
        ).to_have_count(0)

    # Opened: every trial by number, the best starred, pruned and failed ones as such.
    widen_sidebar(page, 480)
    row.get_by_test_id("jt-sweep-toggle").click()
    expect(row).to_have_attribute("aria-expanded", "true")
    trials = row.get_by_test_id("jt-trial-row")
    expect(trials).to_have_count(4)
    assert trials.evaluate_all("rows => rows.map(r => r.dataset.jobId)") == [
        job["id"] for job in sweep["jobs"]
    ]
    for job in sweep["jobs"]:
        trial = row.locator(f"[data-testid='jt-trial-row'][data-job-id='{job['id']}']")
        expect(trial).to_have_attribute("data-phase", job["phase"])
        expect(trial.get_by_test_id("jt-job-phase")).to_have_text(job["phase"])
        expect(trial.locator(".jp-TrainingJobRow-params")).to_have_text(
            f"lr={job['params']['lr']:g}"
        )
    starred = row.locator("[data-testid='jt-trial-row'][data-best='true']")
    expect(starred).to_have_count(1)
    assert starred.get_attribute("data-job-id") == best["id"]
    expect(starred.get_by_test_id("jt-trial-best")).to_have_text("★ best")
    pruned_badge = row.locator("[data-testid='jt-trial-row'][data-phase='Pruned']").first
    pruned_badge = pruned_badge.get_by_test_id("jt-job-phase")
    assert "jp-TrainingPhase-Pruned" in pruned_badge.get_attribute("class")
    colors = pruned_badge.evaluate(
        "badge => [getComputedStyle(badge).color, getComputedStyle(badge).borderTopStyle]"
    )
    assert colors[1] == "solid"  # drawn as an outline: stopped early, not failed
    expect(row.get_by_test_id("jt-sweep-cancel")).to_have_count(0)  # it has ended
    screenshot(page, "sidebar-sweep.png")

    # A trial's details, and back to the sweep still open.
    pruned = jobs[0.1]
    row.locator(f"[data-testid='jt-trial-row'][data-job-id='{pruned['id']}']").click()
    details = page.get_by_test_id("jt-details")
    expect(details).to_have_attribute("data-job-id", pruned["id"])
    expect(details.get_by_test_id("jt-job-phase")).to_have_text("Pruned")
    expect(details).to_contain_text("pruned at step 0")
    page.get_by_test_id("jt-back").click()
    expect(row.get_by_test_id("jt-trial-row")).to_have_count(4)

    # Filtered by phase, trials are runs like any other: listed flat.
    page.get_by_test_id("jt-filter-phase").select_option("Pruned")
    flat = page.locator("[data-testid='jt-job-row'][data-phase='Pruned']")
    expect(flat).to_have_count(2)
    expect(page.get_by_test_id("jt-sweep-row")).to_have_count(0)
    page.get_by_test_id("jt-filter-clear").click()
    row.get_by_test_id("jt-sweep-toggle").click()
    expect(row).to_have_attribute("aria-expanded", "false")
    expect(row.get_by_test_id("jt-trial-row")).to_have_count(0)
    assert errors == []


#: The colour of the checkpoint markers on a chart (the light theme's --jp-warn-color1).
MARKER = (245, 124, 0)


def new_job(url: str, before: set[str], timeout: float = 60) -> dict:
    """The job that is not among ``before`` (ids), once the server lists it."""
    deadline = time.monotonic() + timeout
    while not (new := [j for j in rest(url, "jobs")["jobs"] if j["id"] not in before]):
        assert time.monotonic() < deadline, "no new job came"
        time.sleep(0.2)
    return new[0]


def test_a_failed_job_is_resumed_from_the_sidebar_through_the_kernel(page, lab):
    """A job that saved checkpoints fails: its details show them (and mark them on the
    chart); Resume runs %train_resume in the notebook's kernel and opens the new job, which
    starts after the last checkpoint, fails again and is resumed again, then succeeds: each
    says what it resumed, and the chain of three is listed. A refusal shows under the button."""
    url, base = lab
    mark = base / "work" / RESUME_MARK
    mark.unlink(missing_ok=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_sidebar(page)
    page.get_by_test_id("jt-launch-framework").locator("option").nth(1).wait_for(
        state="attached", timeout=10_000
    )
    mark_cell, train_cell = RESUME_CELLS
    select_cell(page, mark_cell)
    page.keyboard.press("Shift+Enter")  # MARK, a notebook value the job reads
    expect(page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").nth(mark_cell)).to_have_text(
        re.compile(r"\[\d+\]"), timeout=30_000
    )
    before = {job["id"] for job in rest(url, "jobs?limit=500")["jobs"]}
    select_cell(page, train_cell)
    launch(page, workers=1)
    first = new_job(url, before)
    failed_row = page.locator(
        f"[data-testid='jt-job-row'][data-job-id='{first['id']}'][data-phase='Failed']"
    )
    failed_row.wait_for(timeout=90_000)
    expect(failed_row.get_by_test_id("jt-job-resumed")).to_have_count(0)

    # Its details: three checkpoints, the latest step 2, marked on the loss chart.
    widen_sidebar(page, 520)
    failed_row.click()
    details = page.get_by_test_id("jt-details")
    expect(details).to_have_attribute("data-job-id", first["id"])
    checkpoints = details.get_by_test_id("jt-checkpoints")
    expect(checkpoints).to_have_text("◆ 3 checkpoints · latest step 2")
    expect(checkpoints).to_have_attribute("data-latest-step", "2")
    chart = details.locator("[data-testid='jt-metric-chart'][data-metric='loss']")
    expect(chart).to_have_attribute("data-checkpoints", "0,1,2")
    expect(chart).to_have_attribute("data-points", "3")
    assert line_pixels(chart, MARKER) > 20  # the dashed markers are drawn
    expect(details.get_by_test_id("jt-lineage")).to_have_count(0)  # it resumed nothing
    resume = details.get_by_test_id("jt-resume")
    expect(resume).to_be_enabled()
    expect(resume).to_have_text("Resume")

    # Resume (the mark still absent): a new job in the notebook's kernel, opened at once.
    before = {job["id"] for job in rest(url, "jobs?limit=500")["jobs"]}
    resume.click()
    expect(details).not_to_have_attribute("data-job-id", first["id"], timeout=60_000)
    second = new_job(url, before)
    expect(details).to_have_attribute("data-job-id", second["id"])
    assert (second["parent_id"], second["lineage"]) == (first["id"], first["id"])
    assert second["notebook"].endswith("train.ipynb")  # run through the notebook's kernel
    expect(details.get_by_test_id("jt-resumed-from")).to_have_text(
        f"↻ Resumed from {first['name']} ({first['id']})"
    )
    expect(details.get_by_test_id("jt-job-phase").first).to_have_text("Failed", timeout=90_000)
    expect(checkpoints).to_have_text("◆ 3 checkpoints · latest step 5", timeout=30_000)
    expect(chart).to_have_attribute("data-checkpoints", "3,4,5")
    expect(page.get_by_test_id("jt-resume-error")).to_have_count(0)

    # Resume again, the mark there: it carries on from step 6 and succeeds.
    mark.touch()
    before = {job["id"] for job in rest(url, "jobs?limit=500")["jobs"]}
    details.get_by_test_id("jt-resume").click()
    expect(details).not_to_have_attribute("data-job-id", second["id"], timeout=60_000)
    third = new_job(url, before)
    expect(details).to_have_attribute("data-job-id", third["id"])
    expect(details.get_by_test_id("jt-job-phase").first).to_have_text("Succeeded", timeout=90_000)
    expect(details.get_by_test_id("jt-resumed-from")).to_contain_text(
        f"Resumed from {second['name']} ({second['id']})"
    )
    expect(checkpoints).to_have_text("◆ 3 checkpoints · latest step 8", timeout=30_000)
    expect(chart).to_have_attribute("data-checkpoints", "6,7,8")
    expect(details.get_by_test_id("jt-resume")).to_be_disabled()  # nothing left to resume
    details.locator(".jp-TrainingLineage-chain summary").click()
    chain = details.get_by_test_id("jt-lineage-chain").locator("li")
    expect(chain).to_have_count(3)
    assert chain.evaluate_all("items => items.map(i => i.dataset.jobId)") == [
        first["id"],
        second["id"],
        third["id"],
    ]
    assert [text.split()[-1] for text in chain.all_inner_texts()] == [
        "Failed",
        "Failed",
        "Succeeded",
    ]

    # The parent's link: the job before, resumed as this one.
    details.get_by_test_id("jt-lineage-parent").click()
    expect(details).to_have_attribute("data-job-id", second["id"])
    resumed_as = details.get_by_test_id("jt-resumed-as")
    expect(resumed_as).to_contain_text(f"Resumed as {third['name']} ({third['id']})")
    expect(resumed_as.get_by_test_id("jt-job-phase")).to_have_text("Succeeded")
    expect(details.get_by_test_id("jt-resume")).to_be_enabled()  # it failed: resumable again
    details.locator(".jp-TrainingLineage-chain summary").click()
    expect(
        details.get_by_test_id("jt-lineage-chain").locator("li.jp-mod-current")
    ).to_have_attribute("data-job-id", second["id"])
    screenshot(page, "sidebar-resume.png")
    assert rest(url, f"jobs/{third['id']}")["lineage_jobs"][0]["id"] == first["id"]

    # A refusal of the kernel shows under the button: the job was removed from the history.
    gone = rest(url, "jobs", {"spec": {"workers": 1}, "cell": "raise ValueError('x')"})
    page.get_by_test_id("jt-back").click()
    for job in (second, third):  # the list tells resumed jobs
        expect(
            page.locator(f"[data-testid='jt-job-row'][data-job-id='{job['id']}']").get_by_test_id(
                "jt-job-resumed"
            )
        ).to_have_text("· ↻ resumed")
    row = page.locator(f"[data-testid='jt-job-row'][data-job-id='{gone['id']}']")
    expect(row).to_have_attribute("data-phase", "Failed", timeout=60_000)
    row.click()
    with sqlite3.connect(base / "jupyter_data_dir" / "training" / "jobs.db") as db:
        db.execute("DELETE FROM jobs WHERE id = ?", (gone["id"],))
    details.get_by_test_id("jt-resume").click()
    expect(page.get_by_test_id("jt-resume-error")).to_contain_text(
        "is neither a job id nor a job name", timeout=30_000
    )
    expect(details).to_have_attribute("data-job-id", gone["id"])
    assert errors == []


#: A cell's prompt once it has run.
DONE = re.compile(r"\[\d+\]")


def run_cell(page, index: int) -> None:
    """Run a cell (select it, Shift+Enter) and wait until it has run."""
    select_cell(page, index)
    page.keyboard.press("Shift+Enter")
    expect(page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").nth(index)).to_have_text(
        DONE, timeout=30_000
    )


def test_a_job_watched_in_the_page_is_shown_by_its_widget_only(page):
    """A JupyterLab page answers the kernel's probe, so the magic's job is drawn by its
    widget alone: the log is in the widget's pane, not printed again under it (the
    headless counterpart, where nobody answers, is in test_headless.py)."""
    probe_cell, job_cell = WATCHED_CELLS
    cells = page.locator(".jp-Notebook .jp-Cell")
    run_cell(page, 0)  # %load_ext
    select_cell(page, probe_cell)
    page.keyboard.press("Shift+Enter")
    expect(cells.nth(probe_cell).locator(".jp-OutputArea-output")).to_have_text(
        "True", timeout=30_000
    )
    select_cell(page, job_cell)
    page.keyboard.press("Shift+Enter")
    widget = cells.nth(job_cell).locator(".jupyter-widgets").first
    expect(widget).to_contain_text("Succeeded", timeout=90_000)
    expect(widget).to_contain_text("watched in the page 2 1")  # rank 1's last line, in the pane
    expect(cells.nth(job_cell).locator(".jp-InputPrompt")).to_have_text(DONE, timeout=30_000)
    outputs = cells.nth(job_cell).locator(".jp-OutputArea-output")
    assert "[rank 1] watched in the page" not in " ".join(outputs.all_inner_texts()).replace(
        widget.inner_text(), ""
    )
    stdout = cells.nth(job_cell).locator("[data-mime-type='application/vnd.jupyter.stdout']")
    expect(stdout).to_have_count(0)


def test_the_job_views_buttons_work_while_the_cell_runs(page, lab):
    """Clicks reach the kernel while the training cell runs (ipykernel 7 dropped what
    jupyter-ui-poll relies on; views/uipoll.py reads them itself). Detach ends the cell and
    a cell queued meanwhile then runs, once, with its output in its own cell; Cancel stops
    a job (and, as an error does, the cells queued after it)."""
    url, _ = lab
    probe_cell, _ = WATCHED_CELLS
    cells = page.locator(".jp-Notebook .jp-Cell")
    run_cell(page, 0)  # %load_ext
    job = cells.nth(CANCEL_CELL_INDEX)
    widget = job.locator(".jupyter-widgets").first
    select_cell(page, CANCEL_CELL_INDEX)
    page.keyboard.press("Shift+Enter")
    expect(widget).to_contain_text("waiting for cancel", timeout=90_000)
    detached_id = widget.locator("code").first.inner_text()
    select_cell(page, probe_cell)
    page.keyboard.press("Shift+Enter")  # queued behind the training cell
    expect(cells.nth(probe_cell).locator(".jp-InputPrompt")).to_have_text("[*]:")
    widget.get_by_role("button", name="Detach").click()
    expect(job.locator(".jp-OutputArea-output").last).to_contain_text(
        f"detached; the job keeps running: %train_attach {detached_id}", timeout=30_000
    )
    probe_output = cells.nth(probe_cell).locator(".jp-OutputArea-output")
    expect(probe_output).to_have_text("True", timeout=30_000)
    expect(probe_output).to_have_count(1)
    assert rest(url, f"jobs/{detached_id}")["phase"] == "Running"

    select_cell(page, CANCEL_CELL_INDEX)
    page.keyboard.press("Shift+Enter")
    expect(widget).not_to_contain_text(detached_id, timeout=30_000)
    expect(widget).to_contain_text("waiting for cancel", timeout=90_000)
    cancelled_id = widget.locator("code").first.inner_text()
    widget.get_by_role("button", name="Cancel").click()
    expect(widget).to_contain_text("Cancelled", timeout=30_000)
    expect(job.locator(".jp-OutputArea-output").last).to_contain_text("JobCancelledError")
    assert rest(url, f"jobs/{cancelled_id}")["phase"] == "Cancelled"
    rest(url, f"jobs/{detached_id}", method="DELETE")


def test_a_job_from_a_scheduled_run_says_so(page, lab):
    """A job tagged with a jupyter-scheduler job id (as the kernel of a scheduled run tags
    its jobs, see test_scheduler.py) is marked in its row and named in its details."""
    url, _ = lab
    scheduler_job = "5b1f0c9e-0d4c-4a57-9d0e-8f3b2a61c7aa"
    created = rest(
        url,
        "jobs",
        {
            "spec": {"workers": 1, "name": "scheduled-row", "tags": {SCHEDULER_TAG: scheduler_job}},
            "cell": "print('from a scheduled run')",
        },
    )
    open_sidebar(page)
    row = page.locator(f"[data-testid='jt-job-row'][data-job-id='{created['id']}']")
    expect(row.get_by_test_id("jt-job-scheduled")).to_have_text(" · ⏱ scheduled 5b1f0c9e")
    row.click()
    expect(page.get_by_test_id("jt-job-scheduler-id")).to_have_text(
        f"scheduled run: jupyter-scheduler job {scheduler_job}"
    )
    plain = page.locator("[data-testid='jt-job-row'] [data-testid='jt-job-scheduled']")
    page.get_by_test_id("jt-back").click()
    expect(plain).to_have_count(1)  # the other jobs carry no such mark


def test_sidebar_in_notebook7(notebook7):
    url, _ = notebook7
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}notebooks/train.ipynb?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_selector("text=Python 3 (ipykernel)", timeout=60_000)
        time.sleep(1)
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.keyboard.press("Shift+Enter")
        page.get_by_role("menuitem", name="View").click()
        page.locator(".lm-Menu-itemLabel", has_text="Left Sidebar").hover()
        page.locator(".lm-Menu-itemLabel", has_text="Training jobs").first.click()
        page.get_by_test_id("jt-sidebar").wait_for(timeout=10_000)
        assert page.get_by_test_id("jt-banner").count() == 0  # the server extension answered
        select_cell(page, 1)
        launch(page, workers=1)
        page.locator("[data-testid='jt-job-row'][data-phase='Succeeded']").first.wait_for(
            timeout=90_000
        )
        browser.close()


def test_missing_server_extension_is_said_plainly(lab_without_server_extension):
    url, _ = lab_without_server_extension
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}lab?token={TOKEN}")
        open_sidebar(page)
        banner = page.get_by_test_id("jt-banner")
        banner.wait_for(timeout=30_000)
        assert "server extension is not installed or not enabled" in banner.inner_text()
        browser.close()


def test_a_job_survives_a_server_restart_and_the_sidebar_shows_it_again(tmp_path_factory):
    """The server dies (SIGKILL) mid-job; a new one on the same store and port serves the
    job again, and the open sidebar reconnects by itself and follows it to the end."""
    server = LabServer(tmp_path_factory, "jupyterlab", "/").start()
    go = server.base / "go"
    cell = (
        "import os, time\n"
        f"while not os.path.exists({str(go)!r}):\n"
        "    time.sleep(0.05)\n"
        "print('after the restart')\n"
    )
    try:
        job = server.request(
            "POST", "jobs", {"spec": {"workers": 2, "name": "survivor"}, "cell": cell}
        )
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{server.url}lab?token={TOKEN}")
            open_sidebar(page)
            row = page.locator(f"[data-testid='jt-job-row'][data-job-id='{job['id']}']")
            page.locator(
                f"[data-testid='jt-job-row'][data-job-id='{job['id']}'][data-phase='Running']"
            ).wait_for(timeout=60_000)
            server.stop(signal.SIGKILL)
            page.locator(".jp-TrainingStream-closed").wait_for(timeout=30_000)
            server.start()
            assert server.request("GET", f"jobs/{job['id']}")["phase"] == "Running"
            page.locator(".jp-TrainingStream-open").wait_for(timeout=60_000)
            go.touch()
            page.locator(
                f"[data-testid='jt-job-row'][data-job-id='{job['id']}'][data-phase='Succeeded']"
            ).wait_for(timeout=60_000)
            row.click()
            page.get_by_test_id("jt-log").get_by_text("after the restart").first.wait_for(
                timeout=30_000
            )
            browser.close()
    finally:
        go.touch()
        server.stop()
