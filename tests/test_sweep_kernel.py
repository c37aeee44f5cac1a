"""Sweeps in a real ipykernel: an interrupt stops every trial; a sweep outlives its kernel."""

from __future__ import annotations

import os
import queue
import signal

import pytest
from jupyter_client.manager import start_new_kernel
from test_kernel import execute, reply_to

from jupyter_training.client import TrainingClient
from jupyter_training.events import CANCELLED, SUCCEEDED

from conftest import processes_of, wait_until

#: Each trial reports ten steps, 0.3 s apart: slow enough to be caught running.
SLOW_CELL = (
    "import time\nimport jupyter_training as jt\n"
    "for step in range(10):\n"
    "    jt.report(step=step, total=10, loss=x + 1 / (step + 1))\n"
    "    time.sleep(0.3)\n"
)
SWEEP = "%%train_sweep --param x=choice(1,2,3,4) --sampler grid --seed 0 --trials 4 --parallel 2"


def start_kernel():
    manager, client = start_new_kernel(kernel_name="python3")
    assert execute(client, "%load_ext jupyter_training")["content"]["status"] == "ok"
    return manager, client


@pytest.fixture
def kernels(jupyter_dirs):
    started = []

    def start():
        started.append(start_kernel())
        return started[-1]

    yield start
    for manager, client in started:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)


def printed(client) -> str:
    text = []
    while True:
        try:
            msg = client.get_iopub_msg(timeout=1)
        except queue.Empty:
            return "".join(text)
        if msg["msg_type"] == "stream":
            text.append(msg["content"]["text"])
        elif msg["msg_type"] in ("display_data", "update_display_data", "execute_result"):
            text.append(msg["content"]["data"].get("text/plain", ""))


def running_trials(store: TrainingClient) -> list:
    return [r for r in store.list() if not r.is_terminal and len(processes_of(r.id)) >= 2]


def test_interrupt_stops_every_trial_and_resume_finishes_the_sweep(kernels, settings):
    manager, client = kernels()
    store = TrainingClient(settings)
    msg_id = client.execute(f"{SWEEP} -w 1 --name intr --progress text\n{SLOW_CELL}")
    wait_until(lambda: len(running_trials(store)) == 2, timeout=60)
    manager.interrupt_kernel()
    reply = reply_to(client, msg_id)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    sweep = store.store.get_sweep("intr")
    assert sweep.phase == CANCELLED
    trials = store.store.sweep_jobs(sweep.id)
    assert len(trials) == 2 and {t.phase for t in trials} == {CANCELLED}
    assert all(processes_of(t.id) == [] for t in trials)  # nothing left running
    printed(client)

    reply = execute(client, "%train_sweep --resume intr --progress text", timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    sweep = store.store.get_sweep("intr")
    assert sweep.phase == SUCCEEDED
    trials = store.store.sweep_jobs(sweep.id)
    done = [t for t in trials if t.phase == SUCCEEDED]
    # The two cancelled trials' values ran again: every grid point once.
    assert sorted(t.params["x"] for t in done) == [1, 2, 3, 4]
    assert sweep.best["params"] == {"x": 1}


def test_a_sweep_outlives_its_kernel_and_resumes_where_it_stopped(kernels, settings):
    # A kernel that dies (killed, out of memory) leaves its trials running; a restart
    # from JupyterLab interrupts first, which cancels them (the test above).
    manager, client = kernels()
    store = TrainingClient(settings)
    client.execute(f"{SWEEP} -w 1 --name lasting --progress text\n{SLOW_CELL}")
    wait_until(lambda: len(running_trials(store)) == 2, timeout=60)
    os.kill(manager.provisioner.pid, signal.SIGKILL)
    wait_until(lambda: not manager.is_alive(), timeout=10)
    sweep = store.store.get_sweep("lasting")
    orphans = store.store.sweep_jobs(sweep.id)
    assert len(orphans) == 2

    _, client = kernels()
    assert execute(client, "%train_attach lasting --progress text")["content"]["status"] == "ok"
    assert "%train_sweep --resume" in printed(client)
    reply = execute(client, "%train_sweep --resume lasting --progress text", timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    sweep = store.store.get_sweep("lasting")
    trials = store.store.sweep_jobs(sweep.id)
    assert sweep.phase == SUCCEEDED
    # The two trials the dead kernel started were adopted, not run again.
    assert len(trials) == 4 and {t.phase for t in trials} == {SUCCEEDED}, [
        (t.name, t.phase, t.params.get("x"), sweep.trials) for t in trials
    ]
    assert {t.id for t in orphans} <= {t.id for t in trials}
    assert sorted(t.params["x"] for t in trials) == [1, 2, 3, 4]
    assert all(sweep.trials[t.tags["trial"]]["value"] is not None for t in trials)
    assert "best: trial" in printed(client)
