"""Results coming home: ``--out`` values re-assembled from a job's ``result`` events."""

from __future__ import annotations

import base64
import pickle
from collections.abc import Mapping
from typing import Any

from .capture import namespace_as_main
from .events import Event


class ResultCollector:
    """Collects the chunks of each ``--out`` value and unpickles complete ones."""

    def __init__(self) -> None:
        self._chunks: dict[str, dict[int, str]] = {}
        self._expected: dict[str, int] = {}
        self.errors: dict[str, str] = {}

    def feed(self, event: Event) -> None:
        """Take one ``result`` event (others are ignored)."""
        if event.kind != "result":
            return
        name = event.data.get("name", "")
        if "error" in event.data:
            self.errors[name] = event.data["error"]
            return
        self._expected[name] = int(event.data.get("chunks", 1))
        self._chunks.setdefault(name, {})[int(event.data.get("chunk", 0))] = event.data["data"]

    def names(self) -> list[str]:
        """Names whose every chunk has arrived."""
        return [n for n, count in self._expected.items() if len(self._chunks.get(n, {})) == count]

    def values(self, namespace: Mapping[str, Any]) -> dict[str, Any]:
        """The complete values, unpickled so notebook classes resolve in ``namespace``."""
        values: dict[str, Any] = {}
        with namespace_as_main(namespace):
            for name in self.names():
                chunks = self._chunks[name]
                data = base64.b64decode("".join(chunks[i] for i in range(len(chunks))))
                try:
                    values[name] = pickle.loads(data)
                except Exception as err:
                    self.errors[name] = f"{name!r} arrived but could not be unpickled here: {err}"
        return values
