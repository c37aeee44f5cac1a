"""zero_copy: 4 ranks restoring a 1 GB notebook array and reading their quarter of it.

Ours: the payload as the project writes it (buffers page-aligned, mapped copy-on-write
by every rank) with warm workers. Baseline, interleaved: what a job did before, a
version-1 payload (every rank reads its own copy of every buffer) with cold workers.
Both submit the same captured payload through the local backend. Each rank reads its
shard, notes when the cell's first line ran, and waits; with all four waiting, their
summed PSS (``/proc/<pid>/smaps_rollup``) is read, then they leave.
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

from common import median, paired_ratio, result, scratch, training_client

RANKS = 4
ARRAY_BYTES, QUICK_ARRAY_BYTES = 1 << 30, 64 << 20
REPS, QUICK_REPS = 3, 1
CELL = """\
import json, os, time
started = time.time()
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
shard = data[rank * len(data) // world : (rank + 1) * len(data) // world]
total = float(shard.sum())
with open(os.path.join(out, f"{rank}.json"), "w") as note:
    json.dump({"pid": os.getpid(), "started": started, "total": total}, note)
while not os.path.exists(os.path.join(out, "go")):
    time.sleep(0.01)
"""


def _write_v1(payload, path: Path) -> None:
    """The version-1 file: manifest of sizes, then each pickle and buffer back to back."""
    from jupyter_training.runtime.payload import MAGIC_V1

    manifest = payload._manifest(
        [(v.name, len(v.data), [b.nbytes for b in v.buffers]) for v in payload.values]
    )
    with open(path, "wb") as out:
        out.write(MAGIC_V1)
        pickle.dump(manifest, out, protocol=4)
        for value in payload.values:
            out.write(value.data)
            for buffer in value.buffers:
                out.write(buffer)


def _pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise KeyError("Pss")


def run(quick: bool) -> list[dict]:
    import numpy as np

    from jupyter_training.capture import capture_cell
    from jupyter_training.runtime.payload import Payload
    from jupyter_training.spec import JobSpec

    class CopyingPayload(Payload):
        def write(self, path: Path) -> None:
            _write_v1(self, path)

    size = QUICK_ARRAY_BYTES if quick else ARRAY_BYTES
    data = np.ones(size // 8, dtype=np.float64)
    warm, cold = training_client(), training_client()
    cold.settings.warm_workers = False
    warm.backend("local").warm_up("pytorch")
    samples: dict[str, dict[str, list[float]]] = {
        k: {"pss": [], "first": []} for k in ("ours", "copying")
    }

    def once(variant: str) -> None:
        out = scratch("zero-copy")
        payload = capture_cell(CELL, {"data": data, "out": str(out)}, max_bytes=4 << 30)
        if variant == "copying":
            payload = CopyingPayload(**payload.__dict__)
        client = warm if variant == "ours" else cold
        backend = client.backend("local")
        spec = JobSpec(workers=RANKS)
        launched = time.time()
        record = backend.submit(spec, payload, cell=CELL)
        notes = []
        deadline = time.time() + 300
        while len(notes) < RANKS:
            if time.time() > deadline or client.get(record.id).is_terminal:
                raise RuntimeError(
                    f"zero-copy job {record.id} ended early: {client.get(record.id)}"
                )
            time.sleep(0.02)
            notes = [
                json.loads(path.read_text())
                for path in sorted(out.glob("*.json"))
                if path.read_text().endswith("}")
            ]
        pss = sum(_pss_mb(note["pid"]) for note in notes)
        (out / "go").write_text("")
        for _ in client.events(record.id):
            pass
        if client.get(record.id).phase != "Succeeded" or {n["total"] for n in notes} != {
            float(len(data) // RANKS)
        }:
            raise RuntimeError(f"zero-copy job {record.id} went wrong: {client.get(record.id)}")
        samples[variant]["pss"].append(pss)
        samples[variant]["first"].append(max(n["started"] for n in notes) - launched)

    for rep in range(QUICK_REPS if quick else REPS):
        for variant in ("ours", "copying") if rep % 2 == 0 else ("copying", "ours"):
            once(variant)
    array_mb = size / 1e6
    ours, copying = samples["ours"], samples["copying"]
    pss_ratio = median(ours["pss"]) / array_mb
    first_ratio = paired_ratio(ours["first"], copying["first"])
    detail = {"ranks": RANKS, "array_mb": array_mb, "reps": len(ours["pss"])}
    return [
        result(
            "zero_copy.pss_vs_array",
            median(ours["pss"]),
            "MB",
            array_mb,
            pss_ratio,
            "ratio <= 1.3",
            pss_ratio <= 1.3,
            {
                **detail,
                "vs": "the array's size",
                "copying_pss_mb": median(copying["pss"]),
                "copying_vs_array": median(copying["pss"]) / array_mb,
                "ours_pss_mb": ours["pss"],
            },
        ),
        result(
            "zero_copy.first_line_vs_copying",
            median(ours["first"]),
            "s",
            median(copying["first"]),
            first_ratio,
            "ratio <= 0.2",
            first_ratio <= 0.2,
            {
                **detail,
                "vs": "version-1 payload, cold workers",
                "ours_s": ours["first"],
                "copying_s": copying["first"],
            },
        ),
    ]
