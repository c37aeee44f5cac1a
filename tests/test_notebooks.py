"""The quickstart notebooks, executed end to end on the local backend: the PyTorch one by
``jupyter execute`` (the quick start's own command), the XGBoost one by ``jupyter nbconvert
--execute``, the others by nbclient, and then converted to markdown by ``jupyter nbconvert``.

In a kernel the job view is an ipywidgets view, so the executed notebook holds
widget views and (with ``store_widget_state``) their state: phases, progress
bars and the log pane. Nobody answers the view's probe in these headless runs, so the
training cell's output also holds the job's log as the text view prints it, and the
widget's readable record stands in for it in markdown. The cells after the training
cell use the returned values.
"""

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def execute(name: str, tmp_path: Path) -> tuple[nbformat.NotebookNode, str, list[dict]]:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    return notebook, *texts_and_states(notebook)


def texts_and_states(notebook: nbformat.NotebookNode) -> tuple[str, list[dict]]:
    """Everything the cells printed (no cell may have failed), and the widgets' states."""
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output
            texts.append(output.get("text", ""))
    states = list(notebook.metadata["widgets"][WIDGET_STATE]["state"].values())
    return "".join(texts), states


def execute_cli(name: str, tmp_path: Path) -> tuple[nbformat.NotebookNode, str, list[dict], str]:
    """Run a copy of the quickstart ``name`` through a real headless CLI and convert the
    result to markdown with ``jupyter nbconvert``: (notebook, printed text, widget states,
    markdown)."""
    shutil.copy(NOTEBOOKS / name, tmp_path / name)
    bin_dir = Path(sys.executable).parent
    if name == "quickstart_pytorch.ipynb":
        command = [bin_dir / "jupyter-execute", "--output", "executed", name]
    else:
        command = [bin_dir / "jupyter-nbconvert", "--execute", "--to", "notebook"]
        command += ["--output", "executed", name]
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    subprocess.run(
        [bin_dir / "jupyter-nbconvert", "--to", "markdown", "executed.ipynb"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    notebook = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    return notebook, *texts_and_states(notebook), (tmp_path / "executed.md").read_text()


def printed_log(cell: dict) -> str:
    """What the training cell printed (the text view's lines), apart from the widget."""
    return "".join(o.get("text", "") for o in cell.outputs if o["output_type"] == "stream")


def training_cell(notebook: nbformat.NotebookNode) -> dict:
    return next(c for c in notebook.cells if c.source.startswith("%%train_distributed"))


def widget_html(states: list[dict]) -> str:
    return html.unescape("\n".join(str(s["state"].get("value", "")) for s in states))


def test_quickstart_pytorch(tmp_path):
    pytest.importorskip("torch")
    notebook, out, states, markdown = execute_cli("quickstart_pytorch.ipynb", tmp_path)
    cell = training_cell(notebook)
    views = [o for o in cell.outputs if WIDGET_VIEW in o.get("data", {})]
    assert len(views) == 1
    record = views[0]["data"]["text/plain"]  # what stands in for the widget when saved
    assert re.match(r"\S+ \(\w{12}\): Succeeded · pytorch · 2 workers", record)
    assert "rank 1: Exited · step 5/5 · loss=" in record
    assert re.search(r"\[rank [01]\] epoch 4 loss [\d.]+", record)
    log = printed_log(cell)  # headless: the job's log printed under the widget as well
    for rank in (0, 1):
        assert len(re.findall(rf"^\[rank {rank}\] epoch \d+ loss [\d.]+$", log, re.M)) == 5
    assert re.search(r"Succeeded in [\d.]+ s$", log, re.M)
    # Converted to markdown: the outcome, each rank's state and the last lines, no repr.
    assert "Succeeded · pytorch · 2 workers" in markdown and "VBox(" not in markdown
    assert "rank 0: Exited · step 5/5" in markdown
    assert re.search(r"\[rank 1\] epoch 4 loss [\d.]+", markdown)
    shown = widget_html(states)
    for rank in (0, 1):
        losses = [float(v) for v in re.findall(rf"\[rank {rank}\] epoch \d+ loss ([\d.]+)", shown)]
        assert len(losses) == 5 and losses[-1] < losses[0]
    assert "Succeeded" in shown
    assert "loss (last" in shown  # the metric chart
    bars = [s["state"] for s in states if s["model_name"] == "FloatProgressModel"]
    assert [b["value"] for b in bars] == [1.0, 1.0] and {b["description"] for b in bars} == {"5/5"}
    assert "returned losses, trained from rank 0" in out
    final = float(re.search(r"final loss ([\d.]+) after 5 epochs", out).group(1))
    assert final < 1.0
    assert re.search(r"held-out MSE [\d.]+", out)


def test_quickstart_xgboost(tmp_path):
    pytest.importorskip("xgboost")
    notebook, out, states, markdown = execute_cli("quickstart_xgboost.ipynb", tmp_path)
    cell = training_cell(notebook)
    assert any(WIDGET_VIEW in o.get("data", {}) for o in cell.outputs)
    assert re.search(r"\[rank 1\] rank 1 of 2: 2000 rows, model \w+", printed_log(cell))
    assert "Succeeded · xgboost · 2 workers" in markdown and "VBox(" not in markdown
    assert re.search(r"\[rank 0\] rank 0 of 2: 2000 rows, model \w+", markdown)
    shown = widget_html(states)
    fingerprints = dict(re.findall(r"\[rank (\d)\] rank \d of 2: 2000 rows, model (\w+)", shown))
    assert set(fingerprints) == {"0", "1"} and fingerprints["0"] == fingerprints["1"]
    assert "returned booster from rank 0" in out
    accuracy = float(re.search(r"20 rounds, training accuracy ([\d.]+)", out).group(1))
    assert accuracy > 0.8


def test_quickstart_compare(tmp_path):
    notebook, out, states = execute("quickstart_compare.ipynb", tmp_path)
    cells = {c.source.splitlines()[0]: c for c in notebook.cells if c.cell_type == "code"}
    table = next(c for s, c in cells.items() if s.startswith("table = jt.runs"))
    shown = table.outputs[0]["data"]["text/plain"]
    names = re.findall(r"lr-0-\d+", shown)
    assert names == ["lr-0-1", "lr-0-01", "lr-0-001"]  # ranked by final loss
    compare = next(c for s, c in cells.items() if s.startswith("%train_compare"))
    assert WIDGET_VIEW in compare.outputs[0]["data"]  # the compare widget
    page = next(s["state"]["value"] for s in states if "jt-compare-view" in str(s["state"]))
    assert page.count("<polyline") == 3 and "&#9733; best" in page and "jt-differs" in page
    assert "best by loss:min: lr-0-1" in compare.outputs[0]["data"]["text/plain"]
    assert "lr-0-1 400 points from ranks [0, 1]" in out
    assert "['w-rank0.txt', 'w-rank1.txt']" in out


def test_quickstart_sweep(tmp_path):
    notebook, out, states = execute("quickstart_sweep.ipynb", tmp_path)
    sweep_cell = next(c for c in notebook.cells if c.source.startswith("%%train_sweep"))
    views = [o for o in sweep_cell.outputs if WIDGET_VIEW in o.get("data", {})]
    assert len(views) == 1  # the sweep view, and its table wherever it cannot render
    table_text = views[0]["data"]["text/plain"]
    assert re.match(r"lr-search \(\w+\) Succeeded: 12/12 trials; best t\d+ loss=", table_text)
    assert len(re.findall(r"^\*?t\d+ ", table_text, re.M)) == 12
    assert re.search(r"^\[lr-search\] t0 started: lr=", printed_log(sweep_cell), re.M)
    shown = widget_html(states)
    assert "lr-search" in shown and "Succeeded" in shown and "★" in shown
    assert "loss per trial" in shown  # the objective chart
    best = float(re.search(r"best lr ([\d.]+)", out).group(1))
    assert abs(best - 0.5) < 0.2  # the known optimum of the fit
    cells = {c.source.splitlines()[0]: c for c in notebook.cells if c.cell_type == "code"}
    table = cells["best = _"].outputs[-1]["data"]["text/plain"]
    assert len(re.findall(r"lr-search-t\d+", table)) == 12
    compare = next(c for s, c in cells.items() if s.startswith("%train_compare"))
    assert "best by loss:min: lr-search-t" in compare.outputs[0]["data"]["text/plain"]
