"""The JupyterLab sidebar in real headless Chromium against a real ``jupyter lab``.

Launches the active notebook cell from the sidebar's form (through the kernel, so
notebook names are captured), watches it reach Succeeded, reads a rank's logs,
and cancels a second job. Set ``JT_SCREENSHOTS=<dir>`` to save screenshots.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

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
    page.locator(".jp-SideBar [data-id='jupyter-training:sidebar']").click()
    page.get_by_test_id("jt-sidebar").wait_for(timeout=10_000)


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
