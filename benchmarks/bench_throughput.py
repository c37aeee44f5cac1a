"""throughput: training speed and output speed under our runtime.

* ``throughput.ddp``: steps/s of a small CPU DDP loop (2 ranks, gloo, ~3 s), timed inside the
  workers, under our runtime vs the same script under bare ``torchrun``; interleaved.
* ``throughput.print``: seconds a rank takes to print K lines as fast as it can under our
  supervisor (while this process follows the job's events, as the notebook does) vs the same
  script run as ``python script.py > file``; interleaved. The detail also has the file run
  with our workers' ``PYTHONUNBUFFERED=1``, to tell buffering from supervision.
"""

from __future__ import annotations

import os
import subprocess

from common import (
    BIN,
    PYTHON,
    free_port,
    interleave,
    median,
    paired_ratio,
    result,
    run_job,
    scratch,
    training_client,
)

EXIT = "import os, sys\nsys.stdout.flush()\nsys.stderr.flush()\nos._exit(0)\n"


def ddp_cell(seconds: float) -> str:
    """A DDP loop timed for about ``seconds``; rank 0 decides when all ranks stop."""
    return f"""\
import time
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

dist.init_process_group("gloo")
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
model = DistributedDataParallel(net)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(64, 128), torch.randint(0, 10, (64,))


def step():
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


for _ in range(10):
    step()
dist.barrier()
stop, steps = torch.zeros(1), 0
started = time.perf_counter()
while not stop.item():
    for _ in range(5):
        step()
    steps += 5
    stop.fill_(float(time.perf_counter() - started > {seconds}))
    dist.broadcast(stop, 0)
elapsed = time.perf_counter() - started
if dist.get_rank() == 0:
    print(f"steps_per_s {{steps / elapsed:.3f}}")
dist.destroy_process_group()
"""


def print_cell(lines: int) -> str:
    return f"""\
import time
started = time.perf_counter()
for i in range({lines}):
    print(f"step {{i}}: loss=0.1234 accuracy=0.9876 lr=0.001 (a typical progress line)")
print(f"print_seconds {{time.perf_counter() - started:.6f}}")
"""


def _value(text: str, key: str) -> float:
    for line in reversed(text.splitlines()):
        if line.startswith(key + " "):
            return float(line.split()[1])
    raise RuntimeError(f"no {key!r} line in the output:\n{text[-2000:]}")


def _job_output(client, cell: str, workers: int) -> str:
    lines: list[str] = []

    def collect(event) -> None:
        if event.kind == "log" and event.rank == 0:
            lines.append(event.data["line"])

    run_job(client, cell, workers=workers, on_event=collect)
    return "\n".join(lines[-5:])


def run(quick: bool) -> list[dict]:
    work = scratch("throughput")
    client = training_client()
    reps = 1 if quick else 9  # the DDP loop's speed swings +-20% between runs on this machine
    seconds = 0.3 if quick else 3.0
    cell = ddp_cell(seconds)
    script = work / "ddp.py"
    script.write_text(cell + EXIT)

    def ours_ddp() -> float:
        return _value(_job_output(client, cell, 2), "steps_per_s")

    def torchrun_ddp() -> float:
        command = [
            str(BIN / "torchrun"),
            "--nproc-per-node=2",
            f"--master-port={free_port()}",
            str(script),
        ]
        out = subprocess.run(command, capture_output=True, text=True, cwd=work, check=True)
        return _value(out.stdout, "steps_per_s")

    ddp = interleave(reps, {"ours": ours_ddp, "torchrun": torchrun_ddp})
    ratio = paired_ratio(ddp["ours"], ddp["torchrun"])
    results = [
        result(
            "throughput.ddp",
            median(ddp["ours"]),
            "steps/s",
            median(ddp["torchrun"]),
            ratio,
            "ratio >= 0.97",
            ratio >= 0.97,
            {
                "vs": "torchrun",
                "seconds": seconds,
                "reps": reps,
                "ours": ddp["ours"],
                "torchrun": ddp["torchrun"],
            },
        )
    ]

    lines = 50_000 if quick else 300_000
    cell = print_cell(lines)
    printer = work / "printer.py"
    printer.write_text(cell)

    delivered: list[int] = []

    def ours_print() -> float:
        count = [0]

        def collect(event) -> None:
            count[0] += event.kind == "log"

        record = run_job(client, cell, workers=1, on_event=collect)
        delivered.append(count[0])
        # The rank's log file, not the event stream, has the figure: see lines_delivered.
        log = client.backend("local").files(record.id).rank_log(0)
        return _value(log.read_text(), "print_seconds")

    def file_print(unbuffered: bool = False) -> float:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        if unbuffered:
            env["PYTHONUNBUFFERED"] = "1"
        out = work / "printer.out"
        with open(out, "wb") as sink:
            subprocess.run([PYTHON, str(printer)], stdout=sink, env=env, check=True)
        return _value(out.read_text(), "print_seconds")

    variants = {"ours": ours_print, "file": file_print}
    if not quick:  # a detail only: tells buffering from supervision
        variants["file_unbuffered"] = lambda: file_print(unbuffered=True)
    printing = interleave(reps, variants)
    unbuffered = printing.get("file_unbuffered")
    slowdown = paired_ratio(printing["ours"], printing["file"])
    results.append(
        result(
            "throughput.print",
            median(printing["ours"]),
            "s",
            median(printing["file"]),
            slowdown,
            "ratio <= 1.05, every line delivered",
            slowdown <= 1.05 and min(delivered) == lines + 1,
            {
                "vs": "python > file",
                "lines": lines,
                "lines_printed": lines + 1,
                "lines_delivered_min": min(delivered),
                "reps": reps,
                "file_unbuffered_s": median(unbuffered) if unbuffered else None,
                "ratio_vs_file_unbuffered": (
                    paired_ratio(printing["ours"], unbuffered) if unbuffered else None
                ),
                "ours_lines_per_s": lines / median(printing["ours"]),
            },
        )
    )
    return results
