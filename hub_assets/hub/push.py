"""Push (SPEC §6): the upload lands, the branch moves by compare-and-swap, small bundles are
made fetchable at once, and the bundle is recorded for the index."""

import hashlib
import io
from dataclasses import dataclass

from ..bundle import BundleError, CommitRecord, ObjectRecord, decoded_bytes
from ..bundle.identity import branch_name_problem, is_hex_id, is_repo_id
from ..bundle.manifests import unique
from ..bundle.wire import read_wire
from ..store import partition_key, upload_key
from .context import BranchConflict, Hub, HubError

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    branch: str
    bundle_key: str
    partition_key: str
    head_commit_id: str
    inline_objects: int


def check_names(repo_id: str, branch: str | None = None) -> None:
    if not is_repo_id(repo_id):
        raise HubError(f"repo id {repo_id[:140]!r} must be 1-128 of [A-Za-z0-9._-] without '..'")
    if branch is not None and (problem := branch_name_problem(branch)):
        raise HubError(f"{problem}: {branch[:80]!r}")


def push(
    hub: Hub,
    repo_id: str,
    branch: str,
    bundle: bytes | None = None,
    *,
    bundle_key: str | None = None,
    head_commit_id: str,
    expected_old_head: str | None = None,
    force: bool = False,
) -> PushResult:
    """Push a bundle given as bytes, or by the key of bytes already in the upload prefix."""
    check_names(repo_id, branch)
    if not is_hex_id(head_commit_id):
        raise HubError(f"head commit id {head_commit_id[:80]!r} must be 64 lowercase hex characters")
    key, size, small = _land_upload(hub, repo_id, bundle, bundle_key)
    objects = _parse_inline(hub, repo_id, key, small) if small is not None else None
    if not hub.catalog.move_branch(repo_id, branch, head_commit_id, expected_old_head, force):
        current = hub.catalog.branch_head(repo_id, branch)
        raise BranchConflict(
            f"branch {branch!r} of {repo_id} is at {current or 'nothing'}, not {expected_old_head or 'nothing'}"
        )
    inline = _register_inline(hub, repo_id, objects) if objects else 0
    hub.catalog.record_bundle(repo_id, key, size, branch)
    return PushResult(repo_id, branch, key, partition_key(repo_id, key), head_commit_id, inline)


def _land_upload(hub: Hub, repo_id: str, bundle: bytes | None, bundle_key: str | None) -> tuple[str, int, bytes | None]:
    """(bundle key, size, the bytes when small enough to parse here). Bytes given are hashed and
    written; bytes already uploaded are read once, in chunks, and must hash to `bundle_key`."""
    if bundle is not None:
        key = hashlib.sha256(bundle).hexdigest()
        if bundle_key is not None and bundle_key != key:
            raise HubError(f"bundle bytes hash to {key}, not to the bundle key {bundle_key}")
        hub.store.put(upload_key(partition_key(repo_id, key)), bundle)
        return key, len(bundle), bundle if len(bundle) <= hub.inline_bundle_max_bytes else None
    if bundle_key is None or not is_hex_id(bundle_key):
        raise HubError("push needs the bundle bytes or the 64-hex key of an upload")
    digest, size, kept = hashlib.sha256(), 0, io.BytesIO()
    with hub.store.open(upload_key(partition_key(repo_id, bundle_key))) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if size <= hub.inline_bundle_max_bytes:
                kept.write(chunk)
    if digest.hexdigest() != bundle_key:
        raise HubError(f"upload {repo_id}/{bundle_key} hashes to {digest.hexdigest()}, not to its key")
    return bundle_key, size, kept.getvalue() if size <= hub.inline_bundle_max_bytes else None


def _parse_inline(hub: Hub, repo_id: str, key: str, data: bytes) -> list[ObjectRecord]:
    try:
        wire = read_wire(io.BytesIO(data), hub.limits)
        return list(unique(wire.objects, lambda o: o.object_id, "object").values())
    except BundleError as error:
        raise HubError(str(error.in_bundle(partition_key(repo_id, key)))) from None


def _register_inline(hub: Hub, repo_id: str, objects: list[ObjectRecord]) -> int:
    """Rows with the bytes inline for each small object, and the repo's refs to them, so fetch
    serves them before any index run. Existing rows are left alone (write-once)."""
    small = [o for o in objects if o.size_bytes <= hub.inline_object_max_bytes]
    hub.catalog.add_inline_objects((o.object_id, decoded_bytes(o)) for o in small)
    hub.catalog.add_object_refs(repo_id, (o.object_id for o in small))
    return len(small)


def descends_from(hub: Hub, repo_id: str, commits: list[CommitRecord], head: str, ancestor: str) -> bool:
    """Whether `ancestor` is `head` or one of its ancestors, through the bundle's commits and
    then the catalog's."""
    parents = {c.commit_id: c.parent_ids for c in commits}
    pending, seen = [head], set()
    while pending:
        commit_id = pending.pop()
        if commit_id == ancestor:
            return True
        if commit_id in seen:
            continue
        seen.add(commit_id)
        if commit_id in parents:
            pending.extend(parents[commit_id])
        elif any(row.commit_id == ancestor for row in hub.catalog.history(repo_id, commit_id)):
            return True
    return False
