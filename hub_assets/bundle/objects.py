"""Object content: zstd decoding under a hard size limit."""

import hashlib

import zstandard

from .errors import BundleError
from .records import Encoding, ObjectRecord

_READ_CHUNK = 1024 * 1024


def measure_zstd(record: str, content: bytes, limit: int, decompressor: zstandard.ZstdDecompressor) -> int:
    """Decoded size of one zstd frame, refusing it once it passes `limit`.

    Streams the output in chunks and drops them, so a bomb (tiny frame, huge output) is
    refused having held at most one chunk. A second, now bounded, pass proves the frame is
    complete and has nothing after it (the streaming reader accepts a truncated frame).
    """
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


def decoded_bytes(obj: ObjectRecord) -> bytes:
    """The object's raw bytes, the ones stored and hashed. Validated records only."""
    if not obj.has_content:
        raise ValueError(f"object {obj.object_id} was decoded without its content")
    if obj.encoding == "identity":
        return obj.content
    return zstandard.ZstdDecompressor().decompress(obj.content, max_output_size=obj.size_bytes)


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
