"""Phase timing of an index run: measured per asset, summed up in one line per run."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

PHASES = [
    ("fetch_bundle_ms", "fetch"),
    ("unpack_ms", "unpack"),
    ("object_puts_ms", "object puts"),
    ("object_insert_ms", "object rows"),
    ("object_refs_ms", "refs"),
    ("snapshot_insert_ms", "snapshots"),
    ("commit_insert_ms", "commits"),
    ("elapsed_ms", "total"),
]
PHASE_KEYS = [key for key, _ in PHASES if key != "elapsed_ms"]


class TimedStream:
    """A readable stream that adds up the time spent waiting on its reads. Wraps a store's
    stream (a file, an S3 body), which has `readinto` too."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._seconds = 0.0

    def read(self, n: int = -1) -> bytes:
        return self._timed(self._stream.read, n)

    def readinto(self, buffer: memoryview) -> int:
        return self._timed(self._stream.readinto, buffer)

    def _timed(self, read: Callable[[Any], Any], argument: Any) -> Any:
        start = time.perf_counter()
        try:
            return read(argument)
        finally:
            self._seconds += time.perf_counter() - start

    @property
    def read_ms(self) -> int:
        return round(self._seconds * 1000)


class Stopwatch:
    def __init__(self) -> None:
        self.ms = 0

    @contextmanager
    def running(self) -> Iterator["Stopwatch"]:
        start = time.perf_counter()
        try:
            yield self
        finally:
            self.ms = round((time.perf_counter() - start) * 1000)


def summary_line(partition_key: str, phases_ms: dict[str, int]) -> str:
    parts = [f"{label} {phases_ms.get(key, 0)} ms" for key, label in PHASES]
    return f"indexed {partition_key}: " + " · ".join(parts)
