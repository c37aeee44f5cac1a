"""A metric series thinned for charts as it streams in, keeping its shape.

Points fall into buckets of equal count; each bucket keeps its lowest and its
highest point, so spikes survive. When there are too many buckets, neighbours
merge (the bucket size doubles), so memory stays bounded however long the
series. The last point is always kept: it is the value a run ends on.
"""

from __future__ import annotations

from collections.abc import Iterable

Point = tuple[float, float]
#: Buckets of the followers' chart previews; a series shorter than this is kept whole.
PREVIEW_BUCKETS = 1000


class Envelope:
    """At most ``2 * buckets + 1`` points standing for a series of any length."""

    def __init__(self, buckets: int = 1000) -> None:
        self.buckets = max(2, buckets + buckets % 2)  # even, so buckets merge in pairs
        self.size = 1  # points per bucket
        self.count = 0
        self._done: list[tuple[Point, Point]] = []  # (lowest, highest) of full buckets
        self._low: Point | None = None
        self._high: Point | None = None
        self._filled = 0
        self.last: Point | None = None

    def add(self, x: float, y: float) -> None:
        point = (x, y)
        self.count += 1
        self.last = point
        if self._low is None or y < self._low[1]:
            self._low = point
        if self._high is None or y > self._high[1]:
            self._high = point
        self._filled += 1
        if self._filled == self.size:
            self._done.append((self._low, self._high))  # type: ignore[arg-type]
            self._low = self._high = None
            self._filled = 0
            if len(self._done) >= self.buckets:
                self._merge()

    def extend(self, points: Iterable[Point]) -> None:
        for x, y in points:
            self.add(x, y)

    def _merge(self) -> None:
        merged = []
        for first, second in zip(self._done[::2], self._done[1::2], strict=True):
            low = first[0] if first[0][1] <= second[0][1] else second[0]
            high = first[1] if first[1][1] >= second[1][1] else second[1]
            merged.append((low, high))
        self._done = merged
        self.size *= 2

    def points(self) -> list[Point]:
        """The kept points in order of x (each bucket's low and high, then the last point)."""
        kept: list[Point] = []
        buckets = list(self._done)
        if self._low is not None and self._high is not None:
            buckets.append((self._low, self._high))
        for low, high in buckets:
            pair = sorted({low, high})
            kept.extend(pair)
        if self.last is not None and (not kept or kept[-1] != self.last):
            kept.append(self.last)
        return kept


def thin(points: list[Point], max_points: int) -> list[Point]:
    """``points`` reduced to about ``max_points`` the same way (for a smaller chart)."""
    if len(points) <= max_points:
        return points
    envelope = Envelope(max(1, max_points // 2 - 1))
    envelope.extend(points)
    return envelope.points()
