"""Object content: zstd decoding under a hard size limit."""

import hashlib

import zstandard

from .errors import BundleError
from .records import Encoding, ObjectRecord

_READ_CHUNK = 1024 * 1024


def measure_zstd(record: str, content: bytes, limit: int, decompressor: zstandard.ZstdDecompressor) -> int:
    """Decoded size of one zstd frame, refusing it once it passes `limit`: `zstd_size`, else
    `measure_unusual_zstd`."""
    size = zstd_size(content, limit, decompressor)
    return size if size is not None else measure_unusual_zstd(record, content, limit, decompressor)


def zstd_size(content: bytes, limit: int, decompressor: zstandard.ZstdDecompressor) -> int | None:
    """Decoded size of a frame that declares a size within `limit` and decodes to exactly that,
    with nothing after it; None for any other frame (`measure_unusual_zstd` tells why or
    measures it).

    Such a frame (as zstd writes by default) is decoded in one pass into a buffer of exactly its
    declared size, which the frame cannot write past; the pass also refuses a truncated frame and
    anything after it. (Three times faster than the streaming passes: 26k objects of the 10x
    reference push, 0.18 s -> 0.06 s.)
    """
    try:
        declared = zstandard.frame_content_size(content)
        if 0 < declared <= limit:
            return len(decompressor.decompress(content, allow_extra_data=False))
    except zstandard.ZstdError:
        pass
    return None


def measure_unusual_zstd(record: str, content: bytes, limit: int, decompressor: zstandard.ZstdDecompressor) -> int:
    """Decoded size of a frame `zstd_size` answered None for, or the error saying what is wrong:
    a frame over the limit is refused by its declared size alone; one that does not declare its
    size takes the bounded streaming passes; one that declares a size `zstd_size` could not
    decode is decoded once more, for its error."""
    try:
        declared = zstandard.frame_content_size(content)
    except zstandard.ZstdError:
        declared = -1  # no readable header: the streaming passes say what is wrong
    if declared > limit:
        raise BundleError(record, f"zstd content decodes to more than {limit} bytes")
    if declared <= 0:  # unknown, or 0, which decompress() would accept without reading on
        return _measure_streamed(record, content, limit, decompressor)
    try:
        return len(decompressor.decompress(content, allow_extra_data=False))
    except zstandard.ZstdError as exc:
        if "unused data" in str(exc) or "full frame" in str(exc):
            raise BundleError(record, "zstd content is not exactly one complete frame") from None
        raise BundleError(record, f"zstd content does not decode: {exc}") from None


def _measure_streamed(record: str, content: bytes, limit: int, decompressor: zstandard.ZstdDecompressor) -> int:
    """Streams the output in chunks and drops them, so a bomb (tiny frame, huge output) is
    refused having held at most one chunk. A second, now bounded, pass proves the frame is
    complete and has nothing after it (the streaming reader accepts a truncated frame)."""
    size = 0
    try:
        with decompressor.stream_reader(content, read_across_frames=False) as reader:
            while chunk := reader.read(_READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise BundleError(record, f"zstd content decodes to more than {limit} bytes")
        decoder = decompressor.decompressobj()
        decoder.decompress(content)
    except zstandard.ZstdError as exc:
        raise BundleError(record, f"zstd content does not decode: {exc}") from None
    if not decoder.eof or decoder.unused_data:
        raise BundleError(record, "zstd content is not exactly one complete frame")
    return size


def decoded_bytes(obj: ObjectRecord, decompressor: zstandard.ZstdDecompressor | None = None) -> bytes:
    """The object's raw bytes, the ones stored and hashed. Validated records only. Decoding
    many, pass one `decompressor` for all (making one costs about half a small object's decode)."""
    if not obj.has_content:
        raise ValueError(f"object {obj.object_id} was decoded without its content")
    if obj.encoding == "identity":
        return obj.content
    return (decompressor or zstandard.ZstdDecompressor()).decompress(obj.content, max_output_size=obj.size_bytes)


def object_size(
    record: str, content: bytes, encoding: Encoding, limit: int, decompressor: zstandard.ZstdDecompressor
) -> int:
    """Decoded size. A decompressor is reused across objects: making one costs more than
    decoding a small object."""
    if encoding == "identity":
        if len(content) > limit:
            raise BundleError(record, f"object is larger than {limit} bytes")
        return len(content)
    return measure_zstd(record, content, limit, decompressor)


def verify_object_id(record: str, obj: ObjectRecord) -> None:
    """Opt-in check that the declared id is the sha256 of the content (SPEC §2)."""
    if hashlib.sha256(decoded_bytes(obj)).hexdigest() != obj.object_id:
        raise BundleError(record, "object_id is not the sha256 of the object's bytes")
