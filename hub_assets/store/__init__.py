"""The object store (SPEC §4): S3-compatible or file://, behind one interface.

The S3 side (boto3, dagster-aws and through it Dagster: ~0.6 s of imports) loads only when an
s3:// store is opened, so commands on a file:// hub (`hub-assets push`, `clone`, `status`…) start
without it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from .base import KeyWriter, ObjectNotFound, ObjectStore, StoredKey
from .file import FileStore
from .layout import (
    object_key,
    partition_key,
    presigned_key,
    presigned_prefix,
    quarantine_key,
    refused_key,
    split_partition_key,
    upload_key,
)

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource


def open_store(url: str, s3: S3Resource | None = None, max_connections: int = 100) -> ObjectStore:
    """The store at `url` (`s3://bucket[/prefix]` or `file:///absolute/path`)."""
    parsed = urlparse(url)
    if parsed.scheme == "file" and not parsed.netloc:
        return FileStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3" and parsed.netloc:
        from dagster_aws.s3 import S3Resource

        from .s3 import S3Store, bulk_client, s3_client

        settings = s3 or S3Resource()
        client = s3_client(settings, max_connections)
        return S3Store(parsed.netloc, parsed.path, client, bulk_client(settings, parsed.netloc, parsed.path))
    raise ValueError(f"object store URL must be s3://bucket[/prefix] or file:///absolute/path, got {url!r}")


__all__ = [
    "FileStore",
    "KeyWriter",
    "ObjectNotFound",
    "ObjectStore",
    "StoredKey",
    "object_key",
    "open_store",
    "partition_key",
    "presigned_key",
    "presigned_prefix",
    "quarantine_key",
    "refused_key",
    "split_partition_key",
    "upload_key",
]
