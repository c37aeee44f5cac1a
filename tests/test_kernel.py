"""A real ipykernel: interrupting the kernel while the cell waits cancels the job."""

import queue

import pytest
from jupyter_client.manager import start_new_kernel

from jupyter_training.client import TrainingClient
from jupyter_training.events import CANCELLED, RUNNING

from conftest import processes_of, wait_until


@pytest.fixture
def kernel(jupyter_dirs):
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def reply_to(client, msg_id, timeout=60):
    """The shell reply to ``msg_id`` (a slow start can leave extra kernel_info replies first)."""
    while True:
        reply = client.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


def execute(client, code, timeout=60):
    return reply_to(client, client.execute(code), timeout)


def test_interrupt_cancels_the_job_and_leaves_no_process(kernel, settings):
    manager, client = kernel
    assert execute(client, "%load_ext jupyter_training")["content"]["status"] == "ok"
    msg_id = client.execute("%%train_distributed -w 2 --name sleepy\nimport time\ntime.sleep(600)")
    store = TrainingClient(settings)
    record = wait_until(lambda: (store.list() or [None])[0])
    wait_until(lambda: store.get(record.id).phase == RUNNING)
    wait_until(lambda: len(processes_of(record.id)) >= 3)
    manager.interrupt_kernel()
    reply = reply_to(client, msg_id)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    # The reply may come a moment before the cancel completes (the widget view lets the
    # kernel process messages while it waits), so wait for the phase.
    wait_until(lambda: store.get(record.id).phase == CANCELLED, timeout=30)
    wait_until(lambda: processes_of(record.id) == [], timeout=10)
    printed = []
    while True:
        try:
            msg = client.get_iopub_msg(timeout=1)
        except queue.Empty:
            break
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])
    assert "interrupted: cancelling job" in "".join(printed)  # (job id or "being launched")
