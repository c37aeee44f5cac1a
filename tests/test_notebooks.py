"""The quickstart notebooks, executed end to end by nbclient on the local backend."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, tmp_path: Path) -> str:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output
            texts.append(output.get("text", ""))
    return "".join(texts)


def test_quickstart_pytorch(tmp_path):
    pytest.importorskip("torch")
    out = execute("quickstart_pytorch.ipynb", tmp_path)
    for rank in (0, 1):
        losses = [float(v) for v in re.findall(rf"\[rank {rank}\] epoch \d+ loss ([\d.]+)", out)]
        assert len(losses) == 5
        assert losses[-1] < losses[0]
        assert f"[rank {rank}] rank {rank} of 2 done" in out
    assert "Succeeded in" in out


def test_quickstart_xgboost(tmp_path):
    pytest.importorskip("xgboost")
    out = execute("quickstart_xgboost.ipynb", tmp_path)
    fingerprints = dict(re.findall(r"\[rank (\d)\] rank \d of 2: 2000 rows, model (\w+)", out))
    assert set(fingerprints) == {"0", "1"}
    assert fingerprints["0"] == fingerprints["1"]
    assert "Succeeded in" in out
