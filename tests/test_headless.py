"""Headless runs: nobody answers the job view's probe, so the log is printed as well.

Real clients: nbclient and the ``jupyter nbconvert --execute`` command run the kernel as
papermill and jupyter-scheduler do (the live JupyterLab page, which answers, is in
test_sidebar.py). A real kernel over jupyter_client checks that comm messages reach a
busy cell on this ipykernel and that a cell queued meanwhile still runs after it, once.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

PROBE = (
    "%load_ext jupyter_training\n"
    "import time\n"
    "from jupyter_training.views.frontend import PROBE_SECONDS, frontend_is_live\n"
    "started = time.monotonic()\n"
    "print('live', frontend_is_live(), time.monotonic() - started >= PROBE_SECONDS)"
)
TRAIN = (
    "%%train_distributed --workers 2\n"
    "import jupyter_training as jt\n"
    "for i in range(3):\n"
    "    print('headless line', i, 'of rank', jt.rank())\n"
    "    jt.report(step=i + 1, total=3, loss=1 / (i + 1))"
)
FAIL = (
    "%%train_distributed --workers 2 --name doomed\n"
    "import jupyter_training as jt\n"
    "print('about to fail on rank', jt.rank())\n"
    "if jt.rank() == 1:\n"
    "    raise ValueError('bad shard 7')"
)


def notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return nb


def stream_text(cell: dict) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o["output_type"] == "stream")


def test_nbclient_is_headless_and_the_cell_keeps_the_log(tmp_path):
    nb = notebook(PROBE, TRAIN)
    NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert stream_text(nb.cells[0]).strip() == "live False True"  # waited, nobody answered
    cell = nb.cells[1]
    views = [o for o in cell.outputs if WIDGET_VIEW in o.get("data", {})]
    assert len(views) == 1  # the widget is still there, for a page that opens it later
    log = stream_text(cell)
    for rank in (0, 1):
        lines = re.findall(rf"^\[rank {rank}\] headless line (\d) of rank {rank}$", log, re.M)
        assert lines == ["0", "1", "2"]
    assert re.search(r"rank 0: \|█+\| 3/3 \(100%\) loss=0.3333", log)
    assert re.search(r"Succeeded in [\d.]+ s$", log, re.M)
    # A few stream messages, not one per line: the view does not flush each event.
    streams = [o for o in cell.outputs if o["output_type"] == "stream"]
    assert len(streams) < 10


def test_nbconvert_execute_keeps_a_failed_job_readable(tmp_path):
    """``jupyter nbconvert --execute`` of a notebook whose job fails: the command fails
    (so a scheduler sees a failed run), and the saved notebook and its markdown say which
    rank failed and why, with the last lines."""
    nbformat.write(notebook("%load_ext jupyter_training", FAIL), tmp_path / "fails.ipynb")
    bin_dir = Path(sys.executable).parent
    run = subprocess.run(
        [bin_dir / "jupyter-nbconvert", "--execute", "--to", "notebook", "fails.ipynb"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0 and "bad shard 7" in run.stderr
    done = subprocess.run(
        [
            *(bin_dir / "jupyter-nbconvert", "--execute", "--allow-errors"),
            *("--to", "markdown", "--output", "fails-report", "fails.ipynb"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    markdown = (tmp_path / "fails-report.md").read_text()
    assert re.search(r"doomed \(\w{12}\): Failed · pytorch · 2 workers", markdown)
    assert "ValueError: bad shard 7" in markdown
    assert "[rank 1] about to fail on rank 1" in markdown
    assert "VBox(" not in markdown


@pytest.fixture
def kernel():
    manager, client = start_new_kernel(kernel_name="python3")
    yield client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def outputs_of(client, msg_id: str, timeout: float = 30) -> list[str]:
    """The stdout text of the execution ``msg_id``, once it is idle."""
    texts: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = client.get_iopub_msg(timeout=1)
        except Exception:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            texts.append(msg["content"]["text"])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return texts
    raise AssertionError(f"execution {msg_id} did not end: {texts}")


def test_comm_messages_reach_a_busy_cell_and_queued_cells_still_run(kernel):
    setup = kernel.execute(
        "got = []\n"
        "def opened(comm, msg):\n"
        "    got.append(msg['content']['data'])\n"
        "    comm.on_msg(lambda m: got.append(m['content']['data']))\n"
        "get_ipython().kernel.comm_manager.register_target('jt-test', opened)"
    )
    outputs_of(kernel, setup)
    busy = kernel.execute(
        "import time\n"
        "from jupyter_training.views.uipoll import ui_events\n"
        "with ui_events() as poll:\n"
        "    deadline = time.monotonic() + 20\n"
        "    while len(got) < 2 and time.monotonic() < deadline:\n"
        "        poll(); time.sleep(0.01)\n"
        "print('busy cell saw', got)"
    )
    time.sleep(0.5)
    queued = kernel.execute("print('queued cell ran')")
    comm_id = "c0ffee"
    for kind, content in (
        ("comm_open", {"comm_id": comm_id, "target_name": "jt-test", "data": {"n": 1}}),
        ("comm_msg", {"comm_id": comm_id, "data": {"n": 2}}),
    ):
        kernel.shell_channel.send(kernel.session.msg(kind, content))
    assert outputs_of(kernel, busy) == ["busy cell saw [{'n': 1}, {'n': 2}]\n"]
    assert outputs_of(kernel, queued) == ["queued cell ran\n"]
    again = kernel.execute("print(len(got))")
    assert outputs_of(kernel, again) == ["2\n"]
