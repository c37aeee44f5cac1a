"""Framed records: structured messages a worker writes into its own output.

A record is one line ``<RS>jupyter-training <json>``; log readers turn it into an
event and ordinary prints pass through untouched. Using the output stream means
no extra network path: it works the same for a local process and a pod.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

PREFIX = "\x1ejupyter-training "


def emit(kind: str, stream: TextIO | None = None, **data: Any) -> None:
    """Write a ``kind`` record with ``data`` on its own line and flush."""
    out = stream or sys.__stdout__
    if sys.stdout is not out:
        sys.stdout.flush()  # a record follows the prints before it
    out.write(PREFIX + json.dumps({"type": kind, **data}, default=str) + "\n")
    out.flush()


def split(line: str) -> tuple[str, dict[str, Any] | None]:
    """Split one output line into its ordinary text and the record it ends with.

    A record may follow text the cell printed without a newline; that text is
    returned as-is, and a malformed record is treated as ordinary text.
    """
    start = line.find(PREFIX)
    if start < 0:
        return line, None
    try:
        record = json.loads(line[start + len(PREFIX) :])
    except ValueError:
        return line, None
    if not isinstance(record, dict) or "type" not in record:
        return line, None
    return line[:start], record
