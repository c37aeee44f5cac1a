"""The payload file: a cell, its imports, notebook definitions and pickled values.

Stdlib-only: the worker runtime reads it inside any framework image.

Layout (version 2): a magic line, the manifest's length (8 bytes, little
endian), one pickled manifest of plain types, then the values' pickle bytes and
out-of-band buffers at the offsets the manifest names. Large buffers start on a
page boundary so a reader maps the file once (copy-on-write) and hands each rank
views of it: ranks share the pages they only read, a rank's writes stay its own,
and a rank that reads a shard touches only that shard's pages. Version 1 files
(buffers back to back, read by copying) are still read.
"""

from __future__ import annotations

import dataclasses
import io
import mmap
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b"JUPYTER-TRAINING-PAYLOAD 2\n"
MAGIC_V1 = b"JUPYTER-TRAINING-PAYLOAD 1\n"
PAGE = mmap.ALLOCATIONGRANULARITY
ALIGN_FROM = 16 * PAGE
"""Buffers this large start on a page; smaller ones on 8 bytes (ConfigMaps stay small)."""


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

    def _layout(self) -> list[tuple[str, tuple[int, int], list[tuple[int, int]]]]:
        """Each value's (name, (offset, size) of its pickle, [(offset, size) of buffers])."""
        entries = []
        offset = 0
        for value in self.values:
            data = (offset, len(value.data))
            offset += len(value.data)
            spans = []
            for buffer in value.buffers:
                offset = _aligned(offset, PAGE if buffer.nbytes >= ALIGN_FROM else 8)
                spans.append((offset, buffer.nbytes))
                offset += buffer.nbytes
            entries.append((value.name, data, spans))
        return entries

    def _manifest(self, values: list[Any]) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "filename": self.filename,
            "imports": self.imports,
            "definitions": self.definitions,
            "values": values,
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
        entries = self._layout()
        manifest = pickle.dumps(self._manifest(entries), protocol=4)
        out.write(MAGIC)
        out.write(len(manifest).to_bytes(8, "little"))
        out.write(manifest)
        start = _data_start(len(manifest), entries)
        written = len(MAGIC) + 8 + len(manifest)
        for value, (_, (data_at, _), spans) in zip(self.values, entries, strict=True):
            written += _pad(out, start + data_at - written)
            out.write(value.data)
            written += len(value.data)
            for buffer, (at, size) in zip(value.buffers, spans, strict=True):
                written += _pad(out, start + at - written)
                out.write(buffer)
                written += size

    @classmethod
    def read(cls, path: Path) -> Payload:
        """Read a payload written by :meth:`write`: buffers are views of one private map."""
        with open(path, "rb") as source:
            magic = source.readline()
            if magic == MAGIC_V1:
                return cls._from_manifest(pickle.load(source), _copied_values(source))
            if magic != MAGIC:
                raise ValueError(f"{path} is not a jupyter-training payload")
            length = int.from_bytes(_read_exact(source, 8), "little")
            manifest = pickle.loads(_read_exact(source, length))
            start = _data_start(length, manifest["values"])
            mapped = _map_private(source, start, manifest["values"])
        values = [
            ValueBlob(
                name,
                bytes(mapped[start + at : start + at + size]),
                [mapped[start + b_at : start + b_at + b_size] for b_at, b_size in spans],
            )
            for name, (at, size), spans in manifest["values"]
        ]
        return cls._from_manifest(manifest, lambda _: values)

    @classmethod
    def _from_manifest(cls, manifest: dict[str, Any], values: Any) -> Payload:
        return cls(
            cell=manifest["cell"],
            filename=manifest["filename"],
            imports=[tuple(i) for i in manifest["imports"]],
            definitions=[tuple(d) for d in manifest["definitions"]],
            values=values(manifest["values"]),
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


def _copied_values(source: BinaryIO) -> Any:
    """Version 1 values: each buffer read into its own writable copy."""

    def values(entries: list[tuple[str, int, list[int]]]) -> list[ValueBlob]:
        return [
            ValueBlob(
                name,
                _read_exact(source, size),
                [memoryview(bytearray(_read_exact(source, n))) for n in buffer_sizes],
            )
            for name, size, buffer_sizes in entries
        ]

    return values


def _map_private(source: BinaryIO, start: int, entries: list[Any]) -> memoryview:
    """The whole file mapped copy-on-write (writes stay in this process), as a view."""
    end = max(
        [start + at + size for _, (at, size), _ in entries]
        + [start + at + size for *_, spans in entries for at, size in spans]
        + [0]
    )
    if end == 0:
        return memoryview(b"")
    if os.fstat(source.fileno()).st_size < end:
        raise ValueError("payload file is truncated")
    return memoryview(mmap.mmap(source.fileno(), end, access=mmap.ACCESS_COPY))


def _data_start(manifest_length: int, entries: list[Any]) -> int:
    """Where values begin: on a page when a buffer is large enough to be mapped by page."""
    paged = any(size >= ALIGN_FROM for *_, spans in entries for _, size in spans)
    return _aligned(len(MAGIC) + 8 + manifest_length, PAGE if paged else 8)


def _aligned(offset: int, alignment: int) -> int:
    return -(-offset // alignment) * alignment


def _pad(out: BinaryIO, count: int) -> int:
    if count:
        out.write(bytes(count))
    return count


def _read_exact(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise ValueError("payload file is truncated")
    return data
