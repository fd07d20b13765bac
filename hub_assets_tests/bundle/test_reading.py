"""How the decoder reads its stream (bundle/wire.py): a few reused buffers, each hashed on a
thread and fed to the unpacker a slice at a time; bytes in memory are read in place. Whatever the
stream hands back per read, the bundle, its key and the per-record limit come out as if the bytes
had been read at once."""

from __future__ import annotations

import gc
import io
import re
import threading
from collections.abc import Callable

import pytest

from hub_assets.bundle import EmptyCatalog, Limits, decode_bundle
from hub_assets.bundle.wire import TOO_LARGE

from .builders import MIB, decode, fake_id, make_bundle, make_object, pack, sha256_hex
from .expect import rejected

# Each read of these streams hands back at most this much: a socket's partial reads.
_PIECE = 100_000


class _Trickle(io.RawIOBase):
    """`readinto` that fills at most `_PIECE` bytes per call."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        return self._data.readinto(memoryview(buffer)[:_PIECE])


class _ReadOnly:
    """A stream with `read` and nothing else."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._data.read(min(n, _PIECE))


class _RawReadOnly(io.RawIOBase):
    """A RawIOBase implementing only `read`: its inherited `readinto` raises."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._data.read(min(n, _PIECE))


STREAMS: dict[str, Callable[[bytes], object]] = {
    "BytesIO": io.BytesIO,
    "partial readinto": _Trickle,
    "read only": _ReadOnly,
    "RawIOBase with read only": _RawReadOnly,
    "bytes in memory": bytes,
}


def _large_bundle() -> bytes:
    """More bytes than the reader's buffers hold together, so each is reused."""
    objects = [make_object(bytes([index]) * (2 * MIB + index)) for index in range(9)]
    return pack(make_bundle(objects=objects))


@pytest.mark.parametrize("make_stream", STREAMS.values(), ids=STREAMS.keys())
def test_any_stream_decodes_to_the_same_bundle(make_stream: Callable[[bytes], object]) -> None:
    data = _large_bundle()
    bundle = decode_bundle(
        make_stream(data),
        bundle_key=sha256_hex(data),
        name="streamed",
        limits=Limits(),
        catalog=EmptyCatalog(),
    )
    assert bundle.bundle_key == sha256_hex(data)
    assert bundle.size_bytes == len(data)
    assert bundle.objects == decode(data).objects
    assert [len(o.content) for o in bundle.objects] == [2 * MIB + index for index in range(9)]


def _large_object_first(content_bytes: int) -> bytes:
    """A bundle whose first object's content is `content_bytes`, with more bytes after it."""
    large = make_object(b"x" * content_bytes, object_id=fake_id("large"))
    return pack(make_bundle(objects=[large, make_object(bytes(2 * MIB))]))


@pytest.mark.parametrize("in_memory", [False, True], ids=["stream", "bytes in memory"])
def test_a_value_filling_the_unpacker_buffer_exactly_is_read(in_memory: bool) -> None:
    """The unpacker is fed no more than its buffer has room for (what it holds of a record is
    the value it has not finished, past its header), so a value of exactly the per-record limit
    reaches the object rules (here: too large for a 1 KiB object limit), one byte more is refused."""
    limits = Limits(max_object_bytes=1024)
    limit = limits.max_object_bytes + 4 * MIB
    too_large = "object is larger than 1024 bytes"
    rejected(_large_object_first(limit), "objects[0]", too_large, limits=limits, in_memory=in_memory)
    rejected(_large_object_first(limit + 1), "objects[0]", re.escape(TOO_LARGE), limits=limits, in_memory=in_memory)


class _FailingStream(io.RawIOBase):
    """A store stream that breaks after its first read."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self._reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        self._reads += 1
        if self._reads > 1:
            raise OSError("connection reset")
        return self._data.readinto(memoryview(buffer)[:_PIECE])


def test_a_stream_error_is_raised_and_ends_the_hashing() -> None:
    data = _large_bundle()
    with pytest.raises(OSError, match="connection reset"):
        decode_bundle(
            _FailingStream(data),
            bundle_key=None,
            name="broken",
            limits=Limits(),
            catalog=EmptyCatalog(),
        )
    assert not [t for t in threading.enumerate() if t.name == "bundle-sha256"]


@pytest.mark.parametrize("in_memory", [False, True], ids=["stream", "bytes in memory"])
def test_truncation_in_a_later_buffer_is_named(in_memory: bool) -> None:
    rejected(_large_bundle()[: 13 * MIB], "bundle", "truncated msgpack", in_memory=in_memory)


def test_decoded_records_are_promoted_to_the_oldest_generation_unwalked(collector_off: None) -> None:
    """The whole decode runs with the collector paused, and what it made moves to the oldest
    generation without the young collection that would walk every record to get it there."""
    bundle = decode(pack(make_bundle(objects=[make_object(bytes([n]) * 10) for n in range(50)])))
    oldest = {id(item) for item in gc.get_objects(generation=2)}
    assert len(bundle.objects) == 50
    assert all(id(record) in oldest for record in bundle.objects)
    assert not gc.isenabled()  # left as it was found
