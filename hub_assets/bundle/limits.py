"""Size limits a bundle must stay within; configurable per hub."""

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_commits: int = 200_000
    max_snapshots: int = 200_000
    max_objects: int = 1_000_000
    max_manifest_entries: int = 100_000
    max_object_bytes: int = 64 * MIB
    verify_object_ids: bool = False
