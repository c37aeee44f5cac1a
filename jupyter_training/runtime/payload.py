"""The payload file: a cell, its imports, notebook definitions and pickled values.

Stdlib-only: the worker runtime reads it inside any framework image.

Layout: a magic line, one pickled manifest of plain types, then each value's
pickle bytes followed by its out-of-band buffers, in manifest order.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b"JUPYTER-TRAINING-PAYLOAD 1\n"


@dataclasses.dataclass
class ValueBlob:
    """One pickled notebook value: its pickle stream and out-of-band buffers."""

    name: str
    data: bytes
    buffers: list[memoryview] = dataclasses.field(default_factory=list)

    def nbytes(self) -> int:
        return len(self.data) + sum(b.nbytes for b in self.buffers)


@dataclasses.dataclass
class Payload:
    """Everything a worker needs to run a captured cell."""

    cell: str
    filename: str = "<cell>"
    imports: list[tuple[str, str, str | None]] = dataclasses.field(default_factory=list)
    definitions: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    values: list[ValueBlob] = dataclasses.field(default_factory=list)
    files: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)

    def nbytes(self) -> int:
        code = len(self.cell) + sum(len(src) for _, src in self.definitions)
        shipped = sum(len(data) for _, data in self.files)
        return code + shipped + sum(v.nbytes() for v in self.values)

    def names(self) -> list[str]:
        """Every notebook name this payload restores."""
        return (
            [n for n, *_ in self.imports]
            + [n for n, _ in self.definitions]
            + [v.name for v in self.values]
        )

    def _manifest(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "filename": self.filename,
            "imports": self.imports,
            "definitions": self.definitions,
            "values": [(v.name, len(v.data), [b.nbytes for b in v.buffers]) for v in self.values],
            "files": self.files,
        }

    def write(self, path: Path) -> None:
        """Write the payload to ``path`` with mode 0600."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            self.write_to(out)

    def to_bytes(self) -> bytes:
        """The payload file's bytes (for shipping in a ConfigMap)."""
        buffer = io.BytesIO()
        self.write_to(buffer)
        return buffer.getvalue()

    def write_to(self, out: BinaryIO) -> None:
        """Write the payload to a binary stream."""
        out.write(MAGIC)
        pickle.dump(self._manifest(), out, protocol=4)
        for value in self.values:
            out.write(value.data)
            for buffer in value.buffers:
                out.write(buffer)

    @classmethod
    def read(cls, path: Path) -> Payload:
        """Read a payload written by :meth:`write`."""
        with open(path, "rb") as source:
            if source.readline() != MAGIC:
                raise ValueError(f"{path} is not a jupyter-training payload")
            manifest = pickle.load(source)
            values = [
                ValueBlob(
                    name,
                    _read_exact(source, size),
                    [memoryview(bytearray(_read_exact(source, n))) for n in buffer_sizes],
                )
                for name, size, buffer_sizes in manifest["values"]
            ]
        return cls(
            cell=manifest["cell"],
            filename=manifest["filename"],
            imports=[tuple(i) for i in manifest["imports"]],
            definitions=[tuple(d) for d in manifest["definitions"]],
            values=values,
            files=[tuple(f) for f in manifest.get("files", [])],
        )

    def write_files(self, directory: Path) -> None:
        """Materialize the shipped ``--files`` under ``directory``."""
        for relative, data in self.files:
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(f".{target.name}.{os.getpid()}")
            staged.write_bytes(data)
            os.replace(staged, target)  # ranks sharing a directory never see a partial file

    def load_value(self, blob: ValueBlob) -> Any:
        """Unpickle one value (its classes must already be importable)."""
        return pickle.loads(blob.data, buffers=blob.buffers)


def _read_exact(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise ValueError("payload file is truncated")
    return data
