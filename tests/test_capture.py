"""Cell capture: which notebook names travel, how, and the errors for those that cannot."""

import subprocess
import sys

import pytest

from jupyter_training.capture import CaptureError, capture_cell
from jupyter_training.runtime.payload import Payload


def run_payload(payload: Payload, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "payload.bin"
    payload.write(path)
    return subprocess.run(
        [sys.executable, "-m", "jupyter_training.runtime", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def capture_from(ip, cell, **kwargs):
    return capture_cell(cell, ip.user_ns, history=ip.history_manager.input_hist_raw, **kwargs)


def test_functions_classes_values_and_imports_travel(ip, tmp_path):
    ip.run_cell(
        store_history=True,
        raw_cell="import numpy as np\n"
        "from os.path import join as pj\n"
        "factor = 3\n"
        "def helper(x):\n"
        "    return x * factor\n"
        "def scale(x):\n"
        "    return helper(x) + 1\n"
        "class Box:\n"
        "    def __init__(self, v):\n"
        "        self.v = v\n"
        "    def doubled(self):\n"
        "        return Box(self.v * 2)\n"
        "box = Box(5)\n"
        "weights = np.arange(4.0)\n",
    )
    cell = "print(scale(2), box.doubled().v, float(weights.sum()), pj('a', 'b'), np.__name__)"
    payload = capture_from(ip, cell)
    assert {n for n, *_ in payload.imports} == {"np", "pj"}
    assert {n for n, _ in payload.definitions} == {"scale", "helper", "Box"}
    assert {v.name for v in payload.values} == {"box", "weights", "factor"}
    result = run_payload(payload, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "10", "6.0", "a/b", "numpy"]


def test_base_classes_and_decorators_are_defined_first(ip, tmp_path):
    ip.run_cell(
        store_history=True,
        raw_cell="import functools\n"
        "def loud(fn):\n"
        "    @functools.wraps(fn)\n"
        "    def wrapper(*a):\n"
        "        return fn(*a).upper()\n"
        "    return wrapper\n"
        "class Base:\n"
        "    greeting = 'hi'\n"
        "class Child(Base):\n"
        "    @loud\n"
        "    def say(self):\n"
        "        return self.greeting\n",
    )
    result = run_payload(capture_from(ip, "print(Child().say())"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "HI"


def test_names_the_cell_assigns_before_reading_stay_behind(ip):
    ip.run_cell(store_history=True, raw_cell="import threading\nmodel = threading.Lock()\nlr = 0.1")
    payload = capture_from(ip, "model = lr * 2\nprint(model)")
    assert [v.name for v in payload.values] == ["lr"]


def test_augmented_assignment_reads_the_notebook_value(ip):
    ip.run_cell(store_history=True, raw_cell="total = 5")
    payload = capture_from(ip, "total += 1")
    assert [v.name for v in payload.values] == ["total"]


def test_unpicklable_value_is_refused_by_name(ip):
    ip.run_cell(store_history=True, raw_cell="import threading\nlock = threading.Lock()")
    with pytest.raises(CaptureError) as caught:
        capture_from(ip, "print(lock)")
    assert "'lock'" in str(caught.value)
    assert "_thread.lock" in str(caught.value)
    assert "inside the cell" in str(caught.value)


def test_lambda_is_refused_with_the_fix(ip):
    ip.run_cell(store_history=True, raw_cell="square = lambda x: x * x")
    with pytest.raises(CaptureError, match=r"define it with `def square"):
        capture_from(ip, "print(square(3))")


def test_syntax_error_names_the_line(ip):
    with pytest.raises(CaptureError, match=r"syntax error on line 2") as caught:
        capture_from(ip, "x = 1\ny = (\n")
    assert "y = (" in str(caught.value)


def test_size_limit_names_the_largest_values(ip):
    ip.run_cell(
        store_history=True, raw_cell="import numpy as np\nbig = np.zeros(1_000_000)\nsmall = 1"
    )
    with pytest.raises(CaptureError) as caught:
        capture_from(ip, "print(big.sum(), small)", max_bytes=1_000_000)
    message = str(caught.value)
    assert "big (8.0 MB)" in message
    assert "max_payload_bytes" in message


def test_hidden_names_and_builtins_are_not_shipped(ip):
    payload = capture_cell("print(len(In), exit)", ip.user_ns, hidden={"In", "exit"})
    assert payload.names() == []


def test_large_arrays_travel_out_of_band_and_intact(ip, tmp_path):
    ip.run_cell(
        store_history=True,
        raw_cell="import numpy as np\ndata = np.arange(2_000_000, dtype=np.float64)",
    )
    payload = capture_from(ip, "print(float(data.sum()), data.flags.writeable)")
    (blob,) = payload.values
    assert len(blob.data) < 1000  # the array's bytes are a separate buffer, not copied in
    assert sum(b.nbytes for b in blob.buffers) == 16_000_000
    result = run_payload(payload, tmp_path)
    assert result.stdout.split() == [str(float(sum(range(2_000_000)))), "True"]


def test_missing_module_in_worker_is_a_clear_error(tmp_path):
    payload = Payload(cell="print(mod)", imports=[("mod", "no_such_module_xyz", None)])
    result = run_payload(payload, tmp_path)
    assert result.returncode == 1
    assert "notebook name 'mod' needs no_such_module_xyz" in result.stderr


def test_worker_traceback_shows_cell_lines_not_runtime_frames(tmp_path):
    result = run_payload(Payload(cell="x = 1\nraise KeyError('nope')\n"), tmp_path)
    assert result.returncode == 1
    assert 'File "<cell>", line 2' in result.stderr
    assert "raise KeyError('nope')" in result.stderr
    assert "jupyter_training/runtime" not in result.stderr.split("\x1e")[0]


def test_trainjob_names_complete_the_contract():
    from jupyter_training.runtime.context import complete_env

    torch_pod = {
        "PET_NODE_RANK": "2",
        "PET_NNODES": "4",
        "PET_MASTER_ADDR": "tj-node-0-0.tj",
        "PET_MASTER_PORT": "29500",
    }
    complete_env(torch_pod)
    assert (torch_pod["RANK"], torch_pod["WORLD_SIZE"]) == ("2", "4")
    assert (torch_pod["MASTER_ADDR"], torch_pod["MASTER_PORT"]) == ("tj-node-0-0.tj", "29500")
    assert torch_pod["LOCAL_RANK"] == "0"
    assert "DMLC_TASK_ID" not in torch_pod
    xgb_v1_pod = {
        "RANK": "1",
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "j-master-0",
        "MASTER_PORT": "9999",
    }
    complete_env(xgb_v1_pod, framework="xgboost")
    assert (xgb_v1_pod["DMLC_TASK_ID"], xgb_v1_pod["DMLC_TRACKER_URI"]) == ("1", "j-master-0")
    assert (xgb_v1_pod["DMLC_NUM_WORKER"], xgb_v1_pod["DMLC_TRACKER_PORT"]) == ("2", "9999")


def test_files_travel_and_are_importable(ip, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "helpers.py").write_text("def twice(x):\n    return 2 * x\n")
    (project / "pkg" / "__init__.py").write_text("NAME = 'pkg'\n")
    (project / "pkg" / "data.txt").write_text("payload data")
    payload = capture_cell(
        "import helpers, pkg\nprint(helpers.twice(21), pkg.NAME, open('pkg/data.txt').read())",
        {},
        files=["helpers.py", "pkg"],
        root=project,
    )
    assert sorted(p for p, _ in payload.files) == ["helpers.py", "pkg/__init__.py", "pkg/data.txt"]
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    monkeypatch.delenv("JUPYTER_TRAINING_FILES_DIR", raising=False)
    result = run_payload(payload, worker_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["42", "pkg", "payload", "data"]


def test_missing_or_escaping_files_are_refused(tmp_path):
    with pytest.raises(CaptureError, match=r"--files: 'nope.py' does not exist"):
        capture_cell("pass", {}, files=["nope.py"], root=tmp_path)
    (tmp_path / "inner").mkdir()
    with pytest.raises(CaptureError, match="leaves the working directory"):
        capture_cell("pass", {}, files=["../inner"], root=tmp_path / "inner")
