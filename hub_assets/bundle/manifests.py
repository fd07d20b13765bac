"""Delta snapshots -> full manifests. Iterative, so chains of any depth resolve in any order."""

from collections.abc import Callable
from operator import attrgetter

from .errors import BundleError
from .records import Manifest, ResolvedSnapshot, SnapshotRecord

BaseLookup = Callable[[set[str]], dict[str, Manifest]]


def unique(records: list, key: Callable, what: str) -> dict:
    """Records by id, in first-seen order. A repeated id must repeat the same record. `key` is
    best an operator.attrgetter: without repeats, the dict is made in C."""
    by_id = dict(zip(map(key, records), records, strict=True))
    if len(by_id) == len(records):
        return by_id
    by_id = {}
    for record in records:
        record_id = key(record)
        seen = by_id.setdefault(record_id, record)
        if seen is not record and seen != record:
            raise BundleError(f"{what} {record_id}", "sent twice with different content")
    return by_id


def resolve_manifests(
    snapshots: list[SnapshotRecord], base_lookup: BaseLookup, max_entries: int
) -> list[ResolvedSnapshot]:
    """Full manifests of every snapshot. Bases outside the bundle come from `base_lookup`
    (the catalog of the same repo), asked once for all of them."""
    by_id: dict[str, SnapshotRecord] = unique(snapshots, attrgetter("snapshot_id"), "snapshot")
    outside = {s.base_snapshot_id for s in by_id.values() if s.manifest is None and s.base_snapshot_id not in by_id}
    resolved: dict[str, Manifest] = base_lookup(outside) if outside else {}
    for snapshot in by_id.values():
        base = snapshot.base_snapshot_id
        if snapshot.manifest is None and base not in by_id and base not in resolved:
            raise BundleError(
                f"snapshot {snapshot.snapshot_id}",
                f"delta base {base} is neither in the bundle nor in the catalog",
            )
        if snapshot.manifest is not None:
            resolved[snapshot.snapshot_id] = snapshot.manifest
    for snapshot_id in by_id:
        _resolve_chain(snapshot_id, by_id, resolved, max_entries)
    return [ResolvedSnapshot(s.snapshot_id, resolved[s.snapshot_id], s.created_at) for s in by_id.values()]


def _resolve_chain(
    snapshot_id: str, by_id: dict[str, SnapshotRecord], resolved: dict[str, Manifest], max_entries: int
) -> None:
    chain: list[SnapshotRecord] = []
    on_chain: set[str] = set()
    current = snapshot_id
    while current not in resolved:
        if current in on_chain:
            raise BundleError(f"snapshot {current}", "cycle in delta bases")
        on_chain.add(current)
        chain.append(by_id[current])
        current = by_id[current].base_snapshot_id
    for delta in reversed(chain):
        manifest = dict(resolved[delta.base_snapshot_id])
        for path in delta.removed:
            manifest.pop(path, None)
        manifest.update(delta.changes)
        if len(manifest) > max_entries:
            raise BundleError(
                f"snapshot {delta.snapshot_id}",
                f"resolved manifest has {len(manifest)} entries, more than the limit of {max_entries}",
            )
        resolved[delta.snapshot_id] = manifest
