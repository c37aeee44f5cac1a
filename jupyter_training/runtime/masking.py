"""Secret values masked in a worker's output: ``--secret-env`` values never reach its logs.

The worker learns which variables are secret from ``JUPYTER_TRAINING_SECRET_ENV``
(names only) and replaces their values with ``***`` in everything Python writes
to stdout and stderr, line by line, and in the failure record. Output written
straight to the file descriptors (C extensions, subprocesses) is not filtered.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping
from typing import TextIO

MASK = "***"
ENV_NAMES = "JUPYTER_TRAINING_SECRET_ENV"
#: Values shorter than this are not masked: masking "1" would garble every number.
MIN_LENGTH = 4


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values to mask, longest first (so a value containing another wins)."""
    env = os.environ if environ is None else environ
    names = [n for n in env.get(ENV_NAMES, "").split(",") if n]
    values = {env[n] for n in names if len(env.get(n, "")) >= MIN_LENGTH}
    return sorted(values, key=len, reverse=True)


def mask(text: str, values: list[str]) -> str:
    """``text`` with every occurrence of ``values`` replaced by ``***``."""
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


class MaskingStream(io.TextIOBase):
    """A text stream that masks secrets in whole lines before passing them on.

    A partial line waits for its newline (or an explicit flush), so a value
    printed in pieces by one ``print`` call is still masked.
    """

    def __init__(self, stream: TextIO, values: list[str]) -> None:
        self.stream = stream
        self.values = values
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            cut = self._pending.rfind("\n") + 1
            if cut:
                lines, self._pending = self._pending[:cut], self._pending[cut:]
                self.stream.write(mask(lines, self.values))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self.stream.write(mask(self._pending, self.values))
                self._pending = ""
            self.stream.flush()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.stream.encoding
