"""The payload file: one copy-on-write map shared by ranks, shards read by page, v1 still read."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from jupyter_training.runtime.payload import MAGIC_V1, PAGE, Payload, ValueBlob


def array_payload(array: np.ndarray, name: str = "data") -> Payload:
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(array, protocol=5, buffer_callback=buffers.append)
    blob = ValueBlob(name, data, [b.raw() for b in buffers])
    return Payload(cell="pass", values=[blob])


def mapping_kib(path: Path, field: str, pid: str = "self") -> int:
    """``field`` (Rss, Pss, ...) in KiB summed over the mappings of ``path`` in ``pid``."""
    total, inside = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and len(head) >= 5:  # a mapping's header line
            inside = line.endswith(str(path))
        elif inside and head[0] == f"{field}:":
            total += int(head[1])
    return total


def test_arrays_are_writable_and_writes_stay_private(tmp_path):
    path = tmp_path / "payload.bin"
    array_payload(np.arange(1_000_000, dtype=np.float64)).write(path)
    first, second = Payload.read(path), Payload.read(path)
    mine = first.load_value(first.values[0])
    theirs = second.load_value(second.values[0])
    assert mine.flags.writeable
    mine[:10] = -1.0
    assert theirs[:10].tolist() == list(range(10))
    reread = Payload.read(path)
    assert reread.load_value(reread.values[0])[:10].tolist() == list(range(10))


def test_large_buffers_start_on_a_page_small_payloads_stay_small(tmp_path):
    path = tmp_path / "payload.bin"
    array_payload(np.ones(1_000_000)).write(path)
    blob = Payload.read(path).values[0]
    (view,) = blob.buffers
    assert view.nbytes == 8_000_000
    raw = path.read_bytes()
    offset = raw.index(np.ones(1, dtype=np.float64).tobytes() * 512)
    assert offset % PAGE == 0
    small = array_payload(np.ones(100))
    assert len(small.to_bytes()) < 2000  # no page padding where a ConfigMap carries it
    assert len(Payload(cell="pass").to_bytes()) < 400


def test_a_rank_reading_a_shard_touches_only_that_shard(tmp_path):
    path = tmp_path / "payload.bin"
    array_payload(np.ones(8_000_000)).write(path)  # 64 MB
    payload = Payload.read(path)
    array = payload.load_value(payload.values[0])
    before = mapping_kib(path, "Rss")
    shard = array[: len(array) // 4]
    assert float(shard.sum()) == len(shard)
    touched = mapping_kib(path, "Rss") - before
    assert 15_000 < touched < 20_000  # 16 MB of 64 MB


def test_ranks_share_the_pages_they_only_read(tmp_path):
    path = tmp_path / "payload.bin"
    array_payload(np.ones(4_000_000)).write(path)  # 32 MB
    reader = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from jupyter_training.runtime.payload import Payload
        payload = Payload.read(Path({str(path)!r}))
        array = payload.load_value(payload.values[0])
        print(float(array.sum()), flush=True)
        sys.stdin.readline()
        """
    )
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", reader],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        assert [r.stdout.readline().strip() for r in ranks] == ["4000000.0"] * 2
        pss = [mapping_kib(path, "Pss", str(r.pid)) for r in ranks]
        rss = [mapping_kib(path, "Rss", str(r.pid)) for r in ranks]
    finally:
        for rank in ranks:
            rank.communicate("\n", timeout=30)
    assert min(rss) > 30_000  # each rank read all 32 MB ...
    assert sum(pss) < 1.2 * 32_000  # ... and the two hold one copy between them


def test_version_1_payloads_are_still_read(tmp_path):
    array = np.arange(10_000, dtype=np.int64)
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(array, protocol=5, buffer_callback=buffers.append)
    manifest = {
        "cell": "print(data.sum())",
        "filename": "<cell>",
        "imports": [],
        "definitions": [],
        "values": [("data", len(data), [b.raw().nbytes for b in buffers])],
        "files": [("notes.txt", b"hi")],
    }
    path = tmp_path / "payload.bin"
    path.write_bytes(
        MAGIC_V1
        + pickle.dumps(manifest, protocol=4)
        + data
        + b"".join(bytes(b.raw()) for b in buffers)
    )
    payload = Payload.read(path)
    restored = payload.load_value(payload.values[0])
    assert restored.tolist() == array.tolist() and restored.flags.writeable
    assert payload.files == [("notes.txt", b"hi")]


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "payload.bin"
    array_payload(np.ones(100_000)).write(path)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(ValueError, match="truncated"):
        Payload.read(path)
    path.write_bytes(b"#!/bin/sh\n")
    with pytest.raises(ValueError, match="not a jupyter-training payload"):
        Payload.read(path)


def test_torch_tensors_travel_out_of_band_and_share_the_map(ip, tmp_path):
    torch = pytest.importorskip("torch")
    from jupyter_training.capture import capture_cell

    ip.run_cell(
        store_history=True,
        raw_cell="import torch\n"
        "weights = torch.arange(1_000_000, dtype=torch.float32).reshape(1000, 1000)\n"
        "half = torch.ones(100_000, dtype=torch.bfloat16)\n"
        "tiny = torch.ones(3)\n",
    )
    payload = capture_cell(
        "print(float(weights.double().sum()), float(half.double().sum()),"
        " tiny.tolist(), weights.shape)",
        ip.user_ns,
        history=ip.history_manager.input_hist_raw,
    )
    sizes = {v.name: (len(v.data), sum(b.nbytes for b in v.buffers)) for v in payload.values}
    assert sizes["weights"][1] == 4_000_000 and sizes["weights"][0] < 1000
    assert sizes["half"][1] == 200_000
    assert sizes["tiny"][1] == 0  # small tensors keep torch's own pickling
    path = tmp_path / "payload.bin"
    payload.write(path)
    read = Payload.read(path)
    weights = read.load_value(next(v for v in read.values if v.name == "weights"))
    assert weights.dtype == torch.float32 and weights.shape == (1000, 1000)
    view = next(v for v in read.values if v.name == "weights").buffers[0]
    assert weights.data_ptr() == np.frombuffer(view, dtype=np.uint8).ctypes.data  # no copy
    weights[0, 0] = 7.0  # writable, privately
    result = subprocess.run(
        [sys.executable, "-m", "jupyter_training.runtime", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(maxsplit=3)[:3] == [
        str(float(sum(range(1_000_000)))),
        "100000.0",
        "[1.0,",
    ]
