"""What a bundle should become in the catalog and the store, read straight from its wire bytes.

Written apart from `hub_assets.bundle`: objects are decoded with zstandard directly and delta
snapshots resolved here, so the index is checked against an independent reading of SPEC §3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
import zstandard

COMMIT_COLUMNS = frozenset(
    {"commit_id", "snapshot_id", "message", "author", "committed_at", "parent_commit_id", "parent2_commit_id"}
)


@dataclass(frozen=True)
class Expected:
    objects: dict[str, bytes]  # object id -> decoded bytes
    manifests: dict[str, dict[str, str]]  # snapshot id -> full, resolved manifest
    commits: dict[str, dict[str, Any]]  # commit id -> raw record
    size_bytes: int

    @property
    def ref_ids(self) -> set[str]:
        """SPEC §5: every object id of the bundle's objects and of its resolved manifests."""
        ids = set(self.objects)
        for manifest in self.manifests.values():
            ids.update(manifest.values())
        return ids

    def stats_counts(self) -> dict[str, int]:
        return {
            "commits_written": len(self.commits),
            "snapshots_written": len(self.manifests),
            "objects_written": len(self.objects),
            "object_refs_written": len(self.ref_ids),
            "bundle_size_bytes": self.size_bytes,
        }


def decode_object(record: Mapping[str, Any]) -> bytes:
    content: bytes = record["content"]
    if record.get("encoding", "identity") == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(content)
    return content


def parent_ids(commit: Mapping[str, Any]) -> list[str]:
    return [p for p in (commit.get("parent_commit_id"), commit.get("parent2_commit_id")) if p]


def commit_meta(commit: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in commit.items() if key not in COMMIT_COLUMNS}


def expected_from_wire(data: bytes) -> Expected:
    """The expected state of a valid, self-contained bundle (every delta base inside it)."""
    raw = msgpack.unpackb(data, raw=False)
    by_id = {s["snapshot_id"]: s for s in raw.get("snapshots", [])}
    resolved: dict[str, dict[str, str]] = {}

    def resolve(snapshot_id: str) -> dict[str, str]:
        if snapshot_id in resolved:
            return resolved[snapshot_id]
        snapshot = by_id[snapshot_id]
        if "manifest" in snapshot:
            manifest = dict(snapshot["manifest"])
        else:
            manifest = {p: o for p, o in resolve(snapshot["base_snapshot_id"]).items() if p not in snapshot["removed"]}
            manifest.update(snapshot["changes"])
        resolved[snapshot_id] = manifest
        return manifest

    for snapshot_id in by_id:
        resolve(snapshot_id)
    return Expected(
        objects={o["object_id"]: decode_object(o) for o in raw.get("objects", [])},
        manifests=resolved,
        commits={c["commit_id"]: c for c in raw.get("commits", [])},
        size_bytes=len(data),
    )
