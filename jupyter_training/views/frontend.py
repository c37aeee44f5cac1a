"""Is someone watching? Asking the notebook page whether it shows this kernel's widgets.

A kernel cannot tell a JupyterLab page from nbclient, papermill or jupyter-scheduler's
executor: all of them run it, and only a page renders widgets. So the kernel asks.
It opens a comm to :data:`PROBE_TARGET`, which the JupyterLab extension (also loaded by
Notebook 7) registers on every notebook's kernel connection and answers at once with
``{"live": true}``. No answer within :data:`PROBE_SECONDS` means no page of ours shows the
output: a headless run, or a frontend without the extension (VS Code, Voila), where the
job's log is then also printed so that nothing depends on a widget rendering.
"""

from __future__ import annotations

import time

from .uipoll import current_kernel, ui_events

#: The comm target the JupyterLab extension registers (labextension/src/frontend.ts).
PROBE_TARGET = "jupyter_training.frontend"
#: How long a headless kernel waits for an answer no one will send.
PROBE_SECONDS = 0.5


def frontend_is_live(timeout: float = PROBE_SECONDS) -> bool:
    """True when a JupyterLab (or Notebook 7) page with this extension answers the probe.

    Outside a kernel, or where comms or UI polling are unavailable, the answer is False:
    the caller then prints what it would otherwise only draw.
    """
    if current_kernel() is None:
        return False
    try:
        from comm import create_comm
    except ImportError:
        return False
    answers: list[object] = []
    try:
        probe = create_comm(target_name=PROBE_TARGET, data={"question": "live"})
    except Exception:  # a kernel without comm support
        return False
    probe.on_msg(lambda msg: answers.append(msg["content"]["data"]))
    deadline = time.monotonic() + timeout
    try:
        with ui_events() as poll:
            while not answers and time.monotonic() < deadline:
                poll()
                time.sleep(0.01)
    finally:
        probe.close()
    return any(isinstance(a, dict) and a.get("live") is True for a in answers)
