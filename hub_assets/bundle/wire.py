"""msgpack wire bytes -> type-checked records, in one streaming pass that also hashes them.

The top-level map and its arrays are walked element by element, so the unpacker's buffer
holds one record at a time and the wire bytes of a stream are never all in memory next to the
records (bytes handed over in memory are read in place).
"""

import hashlib
import io
import mmap
import queue
import threading
from collections.abc import Callable
from functools import partial
from typing import IO, Any, TypeVar

import msgpack

from .batches import ArrayCheck, CommitArray, ObjectArray, SnapshotArray
from .errors import BundleError
from .limits import MIB, Limits
from .records import WireBundle

_FEED_SIZE = MIB
_BUFFER_SIZE = 4 * MIB
_BUFFERS = 3

Value = TypeVar("Value")


class _HashingReader:
    """The stream read into a few reused buffers, each hashed by a thread of its own and fed to
    the unpacker a slice at a time. Bytes already in memory are hashed and fed in place, a
    buffer's length at a time: copying them into fresh buffers cost a 2.8 MB push 2 ms, most of
    it the first touch of the buffers' pages.

    The hashing runs beside the unpacking (hashlib releases the GIL for large buffers), so the
    sha256 of the whole bundle costs little time next to it (0.25 s of 1.3 s at 10x the reference
    push, measured). A stream's buffer is reused once hashed, rather than a new bytes object
    made per read, and is large, so that the thread takes the GIL once per 4 MiB; the reading
    waits while all `_BUFFERS` are being hashed. The unpacker is given at most `_FEED_SIZE` at a time (its buffer
    stays small) and never more than its buffer has room for, as when it reads a file itself: a
    record just under the per-record limit is read, one over it refused with BufferFull."""

    def __init__(self, stream: IO[bytes] | bytes, unpacker: msgpack.Unpacker, max_buffer_size: int) -> None:
        # Bytes in memory, or a function reading the stream into a buffer.
        self._source = memoryview(stream) if isinstance(stream, bytes) else _filler(stream)
        self._unpacker = unpacker
        self._max_buffer_size = max_buffer_size
        self._sha256 = hashlib.sha256()
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._made = 0
        # (bytes read, the buffer they are in, reused once they are hashed: None in memory)
        self._pending: queue.SimpleQueue[tuple[memoryview, mmap.mmap | None] | None] = queue.SimpleQueue()
        self._hasher = threading.Thread(target=self._hash, name="bundle-sha256", daemon=True)
        self._hasher.start()
        self._view = memoryview(b"")  # of the buffer being fed, from `_offset` on
        self._offset = 0
        self._fed = 0
        self.size = 0

    def _hash(self) -> None:
        while (read := self._pending.get()) is not None:
            view, buffer = read
            self._sha256.update(view)
            if buffer is not None:
                self._free.put(buffer)

    def _read_buffer(self) -> bool:
        """Read the next buffer of the stream and hand it to the hasher; False at the stream's end."""
        if isinstance(self._source, memoryview):
            view = self._source[self.size : self.size + _BUFFER_SIZE]
            self.size += len(view)
            if not view:
                return False
            self._view, self._offset = view, 0
            self._pending.put((view, None))
            return True
        if self._made < _BUFFERS and self._free.empty():
            # Anonymous memory, not a bytearray: no page is touched before a read writes to it,
            # so a small bundle costs what it reads, not the whole buffer.
            buffer = mmap.mmap(-1, _BUFFER_SIZE)
            self._made += 1
        else:
            buffer = self._free.get()
        view = memoryview(buffer)
        length = 0
        while length < _BUFFER_SIZE and (got := self._source(view[length:])):
            length += got
        self.size += length
        if not length:
            self._free.put(buffer)
            return False
        self._view, self._offset = view[:length], 0
        self._pending.put((self._view, buffer))
        return True

    def feed(self) -> bool:
        """Give the unpacker the next bytes of the stream; False at its end."""
        room = self._max_buffer_size - (self._fed - self._unpacker.tell())
        if room <= 0:
            raise msgpack.BufferFull
        if self._offset == len(self._view) and not self._read_buffer():
            return False
        piece = self._view[self._offset : self._offset + min(_FEED_SIZE, room)]
        self._unpacker.feed(piece)
        self._offset += len(piece)
        self._fed += len(piece)
        return True

    def next(self, read: Callable[[], Value]) -> Value:
        """`read()` (an unpacker method), fed until it has the bytes it needs."""
        while True:
            try:
                return read()
            except msgpack.OutOfData:
                if not self.feed():
                    raise

    def drain(self) -> None:
        """Read (and hash) the rest of the stream, unfed."""
        while self._read_buffer():
            pass

    def close(self) -> None:
        """Stop hashing (once every byte read is hashed); the reader is not read afterwards."""
        if self._hasher.is_alive():
            self._pending.put(None)
            self._hasher.join()

    def hexdigest(self) -> str:
        """The sha256 of every byte read."""
        self.close()
        return self._sha256.hexdigest()


def _filler(stream: IO[bytes]) -> Callable[[memoryview], int]:
    """A function reading from `stream` into a buffer, returning how many bytes it read: the
    stream's own `readinto` (a file, BytesIO, an S3 body), else its `read` copied in (a stream
    with only `read`, or a RawIOBase implementing only `read`, whose inherited `readinto` raises)."""
    if getattr(type(stream), "readinto", io.RawIOBase.readinto) is not io.RawIOBase.readinto:
        return stream.readinto

    def read_into(view: memoryview) -> int:
        data = stream.read(len(view))
        view[: len(data)] = data
        return len(data)

    return read_into


def read_wire(stream: IO[bytes] | bytes, limits: Limits, object_content: bool = True) -> WireBundle:
    """Parse and type-check a bundle from `stream`. When the bytes do not parse, the error
    carries the sha256 of the whole stream as well, so the caller can tell a corrupt upload
    (hash mismatch) from a well-delivered but malformed bundle. Without `object_content`,
    objects are checked in full but keep only their digest (ObjectRecord)."""
    # A record larger than one object plus its envelope cannot be legitimate.
    max_buffer_size = limits.max_object_bytes + 4 * MIB
    unpacker = msgpack.Unpacker(raw=False, read_size=_FEED_SIZE, max_buffer_size=max_buffer_size)
    reader = _HashingReader(stream, unpacker, max_buffer_size)
    try:
        parts = _read_top_map(reader, unpacker, limits, object_content)
        end = unpacker.tell()
        reader.drain()
        # Compared by offset: the unpacker reports an incomplete trailing value as plain
        # end-of-data, so asking it for one more value would accept such garbage.
        if reader.size != end:
            raise BundleError("bundle", f"{reader.size - end} bytes of trailing data after the bundle map")
    except BundleError as exc:
        reader.drain()
        raise WireError(exc.record, exc.reason, reader.hexdigest()) from None
    except (ValueError, TypeError, msgpack.UnpackException, msgpack.OutOfData) as exc:
        reader.drain()
        reason = _unpack_reason(exc)
        raise WireError("bundle", reason, reader.hexdigest()) from None
    finally:
        reader.close()  # whatever ends the reading (a store error too), the hashing thread ends
    return WireBundle(
        sha256=reader.hexdigest(),
        size_bytes=reader.size,
        commits=parts.get("commits", []),
        snapshots=parts.get("snapshots", []),
        objects=parts.get("objects", []),
        branch_heads=parts.get("branch_heads", {}),
    )


class WireError(BundleError):
    def __init__(self, record: str, reason: str, sha256: str) -> None:
        super().__init__(record, reason)
        self.sha256 = sha256


def _unpack_reason(exc: Exception) -> str:
    if isinstance(exc, msgpack.OutOfData):
        return "truncated msgpack"
    if isinstance(exc, UnicodeDecodeError):
        return "a string is not valid UTF-8"
    if _too_large(exc):
        return TOO_LARGE
    return f"not valid msgpack: {exc}"


TOO_LARGE = "larger than the per-record limit (the object size limit plus 4 MiB)"


def _too_large(exc: Exception) -> bool:
    # BufferFull carries no message; the length limits raise ValueError("… exceeds max_…_len").
    return isinstance(exc, msgpack.BufferFull) or (isinstance(exc, ValueError) and "exceeds" in str(exc))


def _read_top_map(
    reader: _HashingReader, unpacker: msgpack.Unpacker, limits: Limits, object_content: bool
) -> dict[str, Any]:
    try:
        entries = reader.next(unpacker.read_map_header)
    except msgpack.OutOfData:
        raise BundleError("bundle", "empty upload, not a msgpack map") from None
    except (ValueError, msgpack.UnpackException):
        raise BundleError("bundle", "not a msgpack map") from None
    arrays: dict[str, tuple[int, Callable[[], ArrayCheck[Any]]]] = {
        "commits": (limits.max_commits, CommitArray),
        "snapshots": (limits.max_snapshots, partial(SnapshotArray, limits.max_manifest_entries)),
        "objects": (limits.max_objects, partial(ObjectArray, limits, object_content)),
    }
    parts: dict[str, Any] = {}
    for _ in range(entries):
        key = reader.next(unpacker.unpack)
        if key in parts:
            raise BundleError("bundle", f"key {key!r} appears twice")
        if key in arrays:
            limit, new_array = arrays[key]
            parts[key] = _read_array(reader, unpacker, key, limit, new_array())
        elif key == "branch_heads":
            parts[key] = _branch_heads(reader.next(unpacker.unpack))
        else:
            reader.next(unpacker.skip)
    return parts


def _read_array(
    reader: _HashingReader, unpacker: msgpack.Unpacker, key: str, limit: int, array: ArrayCheck[Any]
) -> list[Any]:
    try:
        count = reader.next(unpacker.read_array_header)
    except (ValueError, msgpack.UnpackException):
        raise BundleError(key, "must be an array") from None
    if count > limit:
        raise BundleError(key, f"{count} records, more than the limit of {limit}")
    unpack, add, feed = unpacker.unpack, array.add, reader.feed
    # One loop with the unpacking inline: a call per record was a tenth of decoding at 10x.
    try:
        for _ in range(count):
            while True:
                try:
                    raw = unpack()
                    break
                except msgpack.OutOfData:
                    if not feed():
                        raise
            add(raw)
    except (BundleError, msgpack.OutOfData):
        array.finish()  # a fault in an earlier record is named first (before a truncation too)
        raise
    except UnicodeDecodeError:
        array.finish()
        raise BundleError(f"{key}[{len(array.records)}]", "a string is not valid UTF-8") from None
    except (msgpack.BufferFull, ValueError) as exc:
        array.finish()
        if _too_large(exc):
            raise BundleError(f"{key}[{len(array.records)}]", TOO_LARGE) from None
        raise
    return array.finish()


def _branch_heads(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise BundleError("branch_heads", "must map branch names to commit ids")
    return raw
