"""Letting the page's messages in while a cell runs: widget clicks and probe answers.

A kernel handles one shell message at a time, so while the training cell runs, a
click on the job view's Cancel button (a ``comm_msg``) waits for the cell to end.
:func:`ui_events` hands out a ``poll()`` that the waiting loop calls between events:

* on kernels that still offer ``do_one_iteration`` (ipykernel 6), ``jupyter-ui-poll``;
* on ipykernel 7.4+, which dropped it (``jupyter-ui-poll`` then silently does nothing),
  :class:`ShellPump`: it reads the messages queued for the kernel's main thread, handles
  the comm messages at once and hands every other message (a queued cell) back to the
  kernel's loop in order, to run after this cell as it would have.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

COMM_MESSAGES = frozenset({"comm_open", "comm_msg", "comm_close"})


@contextlib.contextmanager
def ui_events() -> Iterator[Callable[[], None]]:
    """A ``poll()`` that lets pending widget and comm messages through (a no-op outside a
    kernel, or where neither way works)."""
    kernel = current_kernel()
    if kernel is None:
        yield lambda: None
    elif hasattr(kernel, "do_one_iteration"):
        with _jupyter_ui_poll() as poll:
            yield poll
    else:
        pump = ShellPump.attach(kernel)
        if pump is None:
            yield lambda: None
            return
        try:
            yield pump.poll
        finally:
            pump.release()


class ShellPump:
    """Reads the main thread's shell queue of an ipykernel 7 kernel while a cell runs."""

    def __init__(self, kernel: Any, socket: Any, stream: Any) -> None:
        import zmq

        self.kernel = kernel
        self.socket = socket
        self.stream = stream
        self.deferred: list[Any] = []
        self._noblock = zmq.NOBLOCK

    @classmethod
    def attach(cls, kernel: Any) -> ShellPump | None:
        """The pump for ``kernel``, or None where its internals are not the known ones."""
        try:
            threads = kernel.shell_channel_thread
            if threads is not None:  # kernel subshells: the channel thread forwards to main
                socket = threads.manager.get_shell_channel_to_subshell_pair(None).to_socket
                stream = threads.manager.get_subshell_to_shell_channel_socket(None)
            else:
                socket = kernel.shell_stream.socket
                stream = kernel.shell_stream
            kernel.session.feed_identities  # noqa: B018 (the session API this relies on)
        except Exception:
            return None
        return cls(kernel, socket, stream)

    def poll(self, limit: int = 20) -> None:
        """Handle up to ``limit`` queued messages: comms now, the rest after the cell."""
        for _ in range(limit):
            try:
                frames = self.socket.recv_multipart(self._noblock, copy=False)
            except Exception:  # zmq.Again: nothing queued (or the socket is gone)
                return
            if not self._handle_comm(frames):
                self.deferred.append(frames)

    def _handle_comm(self, frames: list[Any]) -> bool:
        kernel = self.kernel
        try:  # a peek at the header (content=False leaves the signature unrecorded)
            idents, body = kernel.session.feed_identities(frames, copy=False)
            kind = kernel.session.deserialize(body, content=False, copy=False)["header"]["msg_type"]
            if kind not in COMM_MESSAGES:
                return False
            message = kernel.session.deserialize(body, content=True, copy=False)
        except Exception:
            return False
        shell_parent = kernel.get_parent("shell")
        shell_ident = kernel._get_shell_context_var(kernel._shell_parent_ident)
        try:
            kernel.set_parent(idents, message, channel="shell")
            kernel.shell_handlers[kind](self.stream, idents, message)
        except Exception:
            kernel.log.error("jupyter-training: a %s failed while a cell ran", kind, exc_info=True)
        finally:  # the cell's output keeps going to the cell
            kernel.set_parent(shell_ident, shell_parent, channel="shell")
        return True

    def release(self) -> None:
        """Give the messages that were not comms back to the kernel's loop, in order."""
        for frames in self.deferred:
            self.kernel.io_loop.add_callback(self.kernel.shell_main, None, frames)
        self.deferred.clear()


def current_kernel() -> Any:
    """The ipykernel kernel running this code, or None (a terminal IPython, plain Python)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "kernel", None) if shell is not None else None


@contextlib.contextmanager
def _jupyter_ui_poll() -> Iterator[Callable[[], None]]:
    try:
        from jupyter_ui_poll import ui_events as poll_events

        context = poll_events()
        poll = context.__enter__()
    except Exception:  # not in a kernel it supports: clicks wait for the cell
        yield lambda: None
        return
    try:
        yield lambda: poll(20)
    finally:
        context.__exit__(None, None, None)
