"""One interface for the object store, whatever backs it."""

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO


class ObjectNotFound(KeyError):
    """No object under that key."""


class KeyWriter(ABC):
    """Bytes written to one key in pieces. Nothing is under the key until `commit` returns; `abort`
    (or an exception inside the `with` block) drops what was written. A writer killed midway
    leaves a partial write that only `discard_partial_writes` sees."""

    key: str

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self) -> None:
        """Make the bytes written so far the key's bytes (the key is new: writers use fresh keys)."""

    @abstractmethod
    def abort(self) -> None:
        """Drop the bytes written; safe after a failed commit and more than once."""

    def __enter__(self) -> "KeyWriter":
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:
            self.abort()


@dataclass(frozen=True)
class StoredKey:
    key: str
    size: int
    last_modified: datetime


class ObjectStore(ABC):
    """Keys are relative to the store root. Writes are write-once: a key, once written, keeps
    its bytes, and two writers racing on one key both succeed without tearing it."""

    url: str
    # Threads beyond this stop paying off: local file writes contend on the GIL and the disk,
    # while a network store keeps every one of `in_flight` requests busy.
    max_parallel_puts: int = 1024

    @abstractmethod
    def put(self, key: str, data: bytes) -> bool:
        """Store `data` under `key` unless the key exists; True if this call wrote it."""

    @abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """A readable stream of the key's bytes with `read` and `readinto` (the decoder reads into
        its own buffers, through index/timing.py's TimedStream); raises ObjectNotFound."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def writer(self, key: str) -> KeyWriter:
        """A writer of `key`'s bytes in pieces, for streams too large to hold in memory."""

    @abstractmethod
    def publish(self, source: str, key: str) -> bool:
        """Give `key` the bytes of `source` unless `key` exists (write-once, atomic: a reader sees
        no `key` or all of it); True if this call wrote it. `source` is left in place."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""

    @abstractmethod
    def discard_partial_writes(self, prefix: str, older_than: datetime) -> int:
        """Drop the partial writes under `prefix` that writers left unfinished (killed before
        commit or abort) and that started before `older_than`; returns how many."""

    @abstractmethod
    def list(self, prefix: str, start_after: str | None = None) -> Iterator[StoredKey]:
        """Keys under `prefix` in lexicographic order, resuming after the key `start_after`."""

    def presign_put(self, key: str, expires_in: timedelta) -> str | None:
        """A URL anyone holding it may PUT `key`'s bytes to, with no credentials, until it
        expires; None where the store cannot make one (a file store)."""
        return None

    def uri_for(self, key: str) -> str:
        return f"{self.url}/{key}"

    def get(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def get_many(self, keys: Sequence[str], in_flight: int) -> dict[str, bytes]:
        """key -> bytes of every key, up to `in_flight` reads at once (a network store's reads
        are round trips); raises ObjectNotFound for the first missing key."""
        workers = max(1, min(in_flight, self.max_parallel_puts, len(keys)))
        if workers == 1:
            return {key: self.get(key) for key in keys}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="get") as pool:
            return dict(zip(keys, pool.map(self.get, keys), strict=True))

    def put_many(self, items: Iterable[tuple[str, Callable[[], bytes]]], in_flight: int) -> int:
        """Put every (key, bytes producer) with up to `in_flight` puts at once; the bytes are
        produced inside the worker, so at most `in_flight` objects are decoded at a time.
        Returns how many keys this call wrote."""
        workers = max(1, min(in_flight, self.max_parallel_puts))
        pending = iter(items)
        taking = threading.Lock()

        # Each worker drains the shared iterator: a future per object would cost more than a
        # local put (measured: 0.3 s of 0.6 s for 5,556 objects on tmpfs).
        def drain() -> int:
            written = 0
            while True:
                with taking:
                    item = next(pending, None)
                if item is None:
                    return written
                key, produce = item
                written += self.put(key, produce())

        if workers == 1:
            return drain()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="put") as pool:
            return sum(future.result() for future in [pool.submit(drain) for _ in range(workers)])

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store is not used afterwards."""
