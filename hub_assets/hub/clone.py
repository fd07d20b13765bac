"""Clone (SPEC §8): a branch's whole history as a Muse PackBundle."""

from typing import Any

import msgpack

from ..bundle import CommitRecord
from ..bundle.commits import order_commits
from .context import Hub, HubError, NotFound
from .fetch import read_object
from .push import check_names


def clone(hub: Hub, repo_id: str, branch: str) -> bytes:
    """Full manifests and identity-encoded objects, in a deterministic order: commits parents
    first (ties by time, then id), snapshots and objects by id, manifest paths sorted."""
    check_names(repo_id, branch)
    head = hub.catalog.branch_head(repo_id, branch)
    if head is None:
        raise NotFound(f"branch {branch!r} not found in repo {repo_id}")
    rows = sorted(hub.catalog.history(repo_id, head), key=lambda r: (r.committed_at, r.commit_id))
    if not any(row.commit_id == head for row in rows):
        raise HubError(f"branch {branch!r} of {repo_id} points at {head}, which is not indexed yet")
    commits = order_commits([_commit_record(row) for row in rows])
    snapshots = sorted(
        hub.catalog.snapshot_rows(repo_id, sorted({c.snapshot_id for c in commits})), key=lambda r: r.snapshot_id
    )
    object_ids = sorted({object_id for s in snapshots for object_id in s.manifest.values()})
    bundle = {
        "commits": [_commit_dict(c) for c in commits],
        "snapshots": [
            {
                "snapshot_id": s.snapshot_id,
                "manifest": dict(sorted(s.manifest.items())),
                "created_at": s.created_at.isoformat(),
            }
            for s in snapshots
        ],
        "objects": [{"object_id": i, "content": read_object(hub, repo_id, i)} for i in object_ids],
        "branch_heads": {branch: head},
    }
    return msgpack.packb(bundle, use_bin_type=True)


def _commit_record(row: Any) -> CommitRecord:
    return CommitRecord(
        commit_id=row.commit_id,
        snapshot_id=row.snapshot_id,
        message=row.message,
        author=row.author,
        committed_at=row.committed_at_text,
        committed_at_time=row.committed_at,
        parent_ids=tuple(row.parent_ids),
        meta=row.commit_meta,
    )


def _commit_dict(commit: CommitRecord) -> dict[str, Any]:
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
