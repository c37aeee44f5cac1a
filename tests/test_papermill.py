"""A notebook with a training cell run by real papermill with injected parameters."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import papermill

from jupyter_training.client import TrainingClient


def notebook_with_parameters(path: Path) -> None:
    cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_training"),
        nbformat.v4.new_code_cell("lr = 0.1\nepochs = 2", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "%%train_distributed --workers 2 --name pm-run\n"
            "import jupyter_training as jt\n"
            "for step in range(epochs):\n"
            "    jt.report(step=step + 1, total=epochs, loss=lr / (step + 1))\n"
            "print(f'lr {lr} on rank {jt.rank()}')\n"
        ),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)


def test_papermill_parameters_travel_and_the_output_notebook_holds_the_record(tmp_path, settings):
    source, output = tmp_path / "train.ipynb", tmp_path / "out.ipynb"
    notebook_with_parameters(source)
    papermill.execute_notebook(
        str(source),
        str(output),
        parameters={"lr": 0.01},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    executed = nbformat.read(output, as_version=4)
    training = next(c for c in executed.cells if c.source.startswith("%%train_distributed"))
    records = [o["data"]["text/plain"] for o in training.outputs if "data" in o]
    (record,) = [r for r in records if "pm-run" in r]
    assert re.match(r"pm-run \(\w{12}\): Succeeded · pytorch · 2 workers", record)
    assert "[rank 0] lr 0.01 on rank 0" in record and "[rank 1] lr 0.01 on rank 1" in record
    assert "rank 1: Exited · step 2/2 · loss=0.005" in record
    printed = "".join(o.get("text", "") for o in training.outputs if o["output_type"] == "stream")
    assert "[rank 1] lr 0.01 on rank 1" in printed  # headless: the log is printed too
    assert re.search(r"\[pm-run\] Succeeded in [\d.]+ s", printed)
    (job,) = [r for r in TrainingClient(settings).find(limit=10) if r.name == "pm-run"]
    assert job.params["lr"] == 0.01 and job.params["epochs"] == 2  # papermill's, not the cell's
