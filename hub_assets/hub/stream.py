"""Stream push, Muse's older path: objects first, then commits and snapshots without objects.

The ghost guard (SPEC §8) refuses snapshots naming objects the repo has not registered, so
a branch can never point at history whose bytes the hub cannot serve.
"""

import hashlib
import io
from collections.abc import Iterable
from typing import Any

import msgpack

from ..bundle import BundleError, decode_bundle
from ..store import object_key
from .context import BranchConflict, Hub, HubError
from .push import check_names


def upload_objects(hub: Hub, repo_id: str, objects: Iterable[tuple[str, bytes]]) -> int:
    """Store and register objects for the repo. Without a bundle hash to vouch for them, each
    is checked against its id."""
    check_names(repo_id)
    received = dict(objects)
    for object_id, data in received.items():
        if hashlib.sha256(data).hexdigest() != object_id:
            raise HubError(f"object {object_id[:64]!r}: bytes do not hash to its id")
    for object_id, data in received.items():
        hub.store.put(object_key(object_id), data)
    hub.catalog.add_stored_objects(
        (object_id, len(data), hub.store.uri_for(object_key(object_id))) for object_id, data in received.items()
    )
    return hub.catalog.add_object_refs(repo_id, received)


def stream_push(
    hub: Hub,
    repo_id: str,
    branch: str,
    commits: list[dict[str, Any]],
    snapshots: list[dict[str, Any]],
    *,
    head_commit_id: str,
    expected_old_head: str | None = None,
    force: bool = False,
) -> None:
    check_names(repo_id, branch)
    packed = msgpack.packb({"commits": commits, "snapshots": snapshots}, use_bin_type=True)
    try:
        decoded = decode_bundle(
            io.BytesIO(packed),
            bundle_key=None,
            name=f"stream push to {repo_id}/{branch}",
            limits=hub.limits,
            catalog=hub.catalog.view(repo_id),
        )
    except BundleError as error:
        raise HubError(str(error)) from None
    named = {object_id for s in decoded.snapshots for object_id in s.manifest.values()}
    missing = named - hub.catalog.registered_objects(repo_id, named)
    if missing:
        raise HubError(f"{len(missing)} snapshot object(s) not registered")
    hub.catalog.add_snapshots(repo_id, decoded.snapshots)
    hub.catalog.add_commits(repo_id, decoded.commits)
    if not hub.catalog.move_branch(repo_id, branch, head_commit_id, expected_old_head, force):
        raise BranchConflict(f"branch {branch!r} of {repo_id} moved; expected {expected_old_head or 'nothing'}")
