"""Records -> a Muse PackBundle's wire bytes (what fetch and clone answer), with its exact size
known before any object's bytes are read."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgpack

from .records import CommitRecord, Manifest

_OBJECT_ID_KEY = msgpack.packb("object_id")
_CONTENT_KEY = msgpack.packb("content")
_OBJECT_MAP = msgpack.packb({"object_id": "", "content": b""}, use_bin_type=True)[:1]  # a 2-entry map's header


def commit_dict(commit: CommitRecord) -> dict[str, Any]:
    """A Muse CommitDict: every field the pusher sent, the catalog's own columns back in place."""
    parents = [*commit.parent_ids, None, None]
    return {
        **commit.meta,
        "commit_id": commit.commit_id,
        "snapshot_id": commit.snapshot_id,
        "message": commit.message,
        "author": commit.author,
        "committed_at": commit.committed_at,
        "parent_commit_id": parents[0],
        "parent2_commit_id": parents[1],
    }


def snapshot_dict(snapshot_id: str, manifest: Manifest, created_at: datetime) -> dict[str, Any]:
    """A full snapshot, its paths in sorted order (the same bytes for the same snapshot)."""
    return {
        "snapshot_id": snapshot_id,
        "manifest": dict(sorted(manifest.items())),
        "created_at": created_at.isoformat(),
    }


def _bin_header_size(size: int) -> int:
    return 2 if size < 1 << 8 else 3 if size < 1 << 16 else 5


def object_entry_size(object_id: str, size: int) -> int:
    """Bytes of one `{object_id, content}` entry whose content is `size` bytes."""
    id_size = len(msgpack.packb(object_id))
    return len(_OBJECT_MAP) + len(_OBJECT_ID_KEY) + id_size + len(_CONTENT_KEY) + _bin_header_size(size) + size


@dataclass(frozen=True)
class PackHead:
    """A PackBundle but for its objects' bytes: encoded now, so that the whole body's size is
    known (`size`) before the objects are read, and a body too large is refused first."""

    prefix: bytes
    object_sizes: dict[str, int]  # object id -> content size, in the order the body lists them

    @property
    def size(self) -> int:
        return len(self.prefix) + sum(object_entry_size(i, n) for i, n in self.object_sizes.items())

    def encode(self, contents: dict[str, bytes]) -> bytes:
        """The body, with `contents` (object id -> bytes, one for each of `object_sizes`), which
        it empties as it goes: each object's bytes are dropped once packed, so the body is
        built beside about one copy of the objects, not two."""
        packer = msgpack.Packer(use_bin_type=True)
        parts = [self.prefix]
        for object_id in self.object_sizes:
            parts.append(packer.pack({"object_id": object_id, "content": contents.pop(object_id)}))
        return b"".join(parts)


def pack_head(
    commits: Iterable[CommitRecord],
    snapshots: Sequence[tuple[str, Manifest, datetime]],
    object_sizes: dict[str, int],
    branch_heads: dict[str, str],
) -> PackHead:
    """`snapshots` as (id, full manifest, created_at), each made a snapshot dict only while it is
    packed (the sorted copies of large manifests are not all held at once)."""
    packer = msgpack.Packer(use_bin_type=True)
    prefix = b"".join(
        [
            packer.pack_map_header(4),
            packer.pack("commits"),
            packer.pack([commit_dict(c) for c in commits]),
            packer.pack("snapshots"),
            packer.pack_array_header(len(snapshots)),
            *(packer.pack(snapshot_dict(*snapshot)) for snapshot in snapshots),
            packer.pack("branch_heads"),
            packer.pack(branch_heads),
            packer.pack("objects"),
            packer.pack_array_header(len(object_sizes)),
        ]
    )
    return PackHead(prefix, object_sizes)
