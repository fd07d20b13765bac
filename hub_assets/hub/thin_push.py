"""Thin push (SPEC §10): what `muse push` sends over HTTP once its objects are uploaded —
commits and full snapshots, no objects, no head — made visible at once and indexed like any push.

1. Validate: the commits and snapshots go through the bundle decoder with the catalog's view of
   the repo (every rule of SPEC §3), and each snapshot id must be its manifest's (as the index
   checks); every parent must be a pushed commit or one of the repo's. Then the objects a pushed
   snapshot names that are not registered for the repo are claimed from its presigned uploads
   (`hub/presigned.py`), and every one must be registered now (the ghost guard, §8).
2. The tip (the pushed commit no pushed commit names as a parent) must descend from the branch
   head, unless `force`.
3. Land: a bundle of the commits, the snapshots and the named objects still only inline
   (`content_cache`, 'pending') is written under a quarantine key.
4. The commit point, one transaction (`Catalog.accept_push`): the branch's compare-and-swap, the
   commit and snapshot rows, the bundle's record `pushed`. From here a fetch serves the push: its
   objects were registered when they were uploaded.
5. Publish the bundle to `uploads/<repo_id>/<bundle_key>`, where the sensor runs its partition:
   the index promotes the inline objects to the store and records the bundle `indexed`.

Steps 3-5 are a bundle push's (`hub/push.py`), and so is what a kill at each step leaves.
"""

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from ..bundle import Bundle, BundleError, CommitRecord, decode_bundle
from ..bundle.identity import mismatched_snapshot_ids
from ..catalog import AcceptedPush, RepoRow
from ..store import KeyWriter, partition_key, quarantine_key
from .context import BranchConflict, BundleRefused, Hub, HubError, NotFastForward
from .heads import choose_head, descends_from
from .presigned import claim_presigned
from .push import accept_landed, check_names

# A push that loses the compare-and-swap to one that moved the branch forward, to a head the
# tip still descends from, has not diverged: it is checked and tried again, this many times.
_ATTEMPTS = 5


@dataclass(frozen=True)
class ThinPushResult:
    head_commit_id: str
    message: str  # one line for the pusher: what happened to the branch
    branch_heads: dict[str, str]  # every branch of the repo, after the push
    partition_key: str | None  # the landed bundle's; None when nothing was pushed


def thin_push(
    hub: Hub,
    repo_id: str,
    branch: str,
    commits: list[dict[str, Any]],
    snapshots: list[dict[str, Any]],
    *,
    force: bool,
    new_repo: RepoRow | None = None,
) -> ThinPushResult:
    """Move `branch` of `repo_id` to the tip of the pushed `commits`, whose `snapshots` name
    only objects registered for the repo or waiting in its presigned uploads. When this
    returns, the commits, snapshots and branch head are in the catalog, fetchable, and the
    bundle is under the upload prefix (on a hub with a publisher, on its way there: see
    `hub/push.py`).

    No commits: nothing changes; the answer carries the branch's head (HubError if it has none).

    Raises BundleRefused (a rule of SPEC §3, or a parent that is no commit of the push or the
    repo), HubError (bad names, a wrong presigned upload, the ghost guard, no single tip),
    NotFastForward (the tip does not descend from the branch head, and not `force`),
    BranchConflict (the branch kept moving under the push). On any of them nothing of the push
    is visible and nothing is uploaded.

    `new_repo`: the row of the repo `repo_id` names, not in the catalog yet: inserted at the
    commit point, so a refused push leaves no repo; RepoNameTaken when a racing write took
    its owner/slug first.
    """
    check_names(repo_id, branch)
    where = f"pushed to {repo_id}/{branch}"
    if not commits:
        return _nothing_pushed(hub, repo_id, branch, where)
    records = _pack_records(commits, snapshots)
    decoded = _validate(hub, repo_id, where, records)
    _check_snapshot_ids(decoded, where)
    _check_parents(hub, repo_id, decoded.commits, where)
    named = sorted({object_id for s in decoded.snapshots for object_id in s.manifest.values()})
    unregistered = set(named) - hub.catalog.registered_objects(repo_id, named)
    # Claimed only now, the commits and snapshots found good: a refused push claims no upload.
    missing = len(unregistered) - claim_presigned(hub, repo_id, unregistered) if unregistered else 0
    if missing:
        raise HubError(f"{missing} snapshot object(s) not registered")
    try:
        tip = choose_head(decoded.commits, {}, branch, None)
    except HubError as error:
        raise HubError(f"bundle {where}: {error}") from None
    old_head = hub.catalog.branch_head(repo_id, branch)
    if not force:
        _check_fast_forward(hub, repo_id, branch, decoded.commits, tip, old_head)
    with hub.store.writer(quarantine_key(repo_id)) as landing:
        bundle_key, size_bytes = _write_bundle(hub, landing, records, named)
        landing.commit()

    def accept(landed: str) -> str | None:
        """The compare-and-swap from the head the push was checked against; the head it replaced."""
        expected = old_head
        for _ in range(_ATTEMPTS):
            pushed = AcceptedPush(
                repo_id=repo_id,
                branch=branch,
                head=tip,
                expected_old_head=expected,
                force=force,
                bundle_key=bundle_key,
                size_bytes=size_bytes,
                inline_objects=[],
                pending_upload=landed,
                snapshots=decoded.snapshots,
                commits=decoded.commits,
                new_repo=new_repo,
            )
            if hub.catalog.accept_push(pushed):
                return expected
            expected = hub.catalog.branch_head(repo_id, branch)
            _check_fast_forward(hub, repo_id, branch, decoded.commits, tip, expected)
        raise BranchConflict(f"branch {branch!r} of {repo_id} kept moving while the push was accepted")

    replaced = accept_landed(hub, repo_id, bundle_key, landing.key, accept)
    return ThinPushResult(
        head_commit_id=tip,
        message=_moved(branch, replaced, tip, len(decoded.commits), force),
        branch_heads=hub.catalog.branch_heads(repo_id),
        partition_key=partition_key(repo_id, bundle_key),
    )


def _nothing_pushed(hub: Hub, repo_id: str, branch: str, where: str) -> ThinPushResult:
    heads = hub.catalog.branch_heads(repo_id)
    if branch not in heads:
        raise HubError(f"bundle {where}: no commits, and the branch does not exist")
    return ThinPushResult(heads[branch], f"{branch} already at {heads[branch][:12]}", heads, None)


def _pack_records(commits: list[dict[str, Any]], snapshots: list[dict[str, Any]]) -> bytes:
    """The `commits` and `snapshots` entries of a bundle's top-level map, packed once: the map
    validated is these two, the bundle landed is these and its objects."""
    packer = msgpack.Packer(use_bin_type=True)
    return b"".join(map(packer.pack, ["commits", commits, "snapshots", snapshots]))


def _validate(hub: Hub, repo_id: str, where: str, records: bytes) -> Bundle:
    stream = io.BytesIO(msgpack.Packer().pack_map_header(2) + records)
    try:
        return decode_bundle(stream, bundle_key=None, name=where, limits=hub.limits, catalog=hub.catalog.view(repo_id))
    except BundleError as error:
        raise BundleRefused(str(error)) from None


def _check_snapshot_ids(decoded: Bundle, where: str) -> None:
    """What the index checks of each snapshot it writes (its blocking `manifests_match_ids`), a
    thin push checks before its rows are visible."""
    for mismatched in mismatched_snapshot_ids(decoded.snapshots):
        reason = "snapshot_id is not the sha256 of its manifest (SPEC §2)"
        raise BundleRefused(str(BundleError(f"snapshot {mismatched}", reason, where)))


def _check_parents(hub: Hub, repo_id: str, commits: Sequence[CommitRecord], where: str) -> None:
    """Every parent is a pushed commit or a commit of the repo: a head the hub advertises has
    its whole history to serve (a bundle may name parents it leaves to other bundles)."""
    pushed = {c.commit_id for c in commits}
    outside = sorted({p for c in commits for p in c.parent_ids} - pushed)
    unknown = set(outside) - hub.catalog.known_commits(repo_id, outside) if outside else set()
    for commit in commits:
        for parent in commit.parent_ids:
            if parent in unknown:
                reason = f"parent {parent} is a commit of neither the push nor repo {repo_id}"
                raise BundleRefused(str(BundleError(f"commit {commit.commit_id}", reason, where)))


def _check_fast_forward(
    hub: Hub, repo_id: str, branch: str, commits: Sequence[CommitRecord], tip: str, head: str | None
) -> None:
    if head is not None and not descends_from(hub, repo_id, commits, tip, head):
        raise NotFastForward(
            f"{tip} does not descend from the head of {branch!r} of {repo_id}, {head} (force moves the branch anyway)"
        )


def _write_bundle(hub: Hub, landing: KeyWriter, records: bytes, named: list[str]) -> tuple[str, int]:
    """The bundle the index runs on: the pushed records and, of the objects they name, those
    whose bytes are still only inline, for the index to promote. Returns its key and size."""
    sha256 = hashlib.sha256()
    size = 0

    def write(data: bytes) -> None:
        nonlocal size
        sha256.update(data)
        landing.write(data)
        size += len(data)

    packer = msgpack.Packer(use_bin_type=True)
    write(packer.pack_map_header(3))
    write(records)
    write(packer.pack("objects"))
    with hub.catalog.inline_objects(named) as (count, contents):
        write(packer.pack_array_header(count))
        for object_id, data in contents:
            write(packer.pack({"object_id": object_id, "content": data}))
    return sha256.hexdigest(), size


def _moved(branch: str, old_head: str | None, tip: str, commits: int, force: bool) -> str:
    if old_head is None:
        return f"{branch} created at {tip[:12]} ({commits} commit(s))"
    if old_head == tip:
        return f"{branch} already at {tip[:12]}"
    how = "forced" if force else "fast-forward"
    return f"{branch} {old_head[:12]} -> {tip[:12]} ({commits} commit(s), {how})"
