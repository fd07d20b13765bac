"""Stream push (SPEC §8): objects first, then commits and snapshots; the ghost guard refuses
snapshots naming objects the repo has not registered."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from hub_assets.catalog import schema
from hub_assets.hub import BranchConflict, Hub, HubError, clone, read_object, stream_push, upload_objects
from hub_assets.store import object_key

from ..bundle.builders import delta_snapshot, fake_id, full_snapshot, make_commit, sha256_hex, timestamp
from .conftest import Indexer
from .helpers import Fixture, count_rows, load_bundle, load_fixture, object_rows, push_new

REPO = "repo-a"


def push_and_index(hub: Hub, index: Indexer) -> Fixture:
    """The small-history fixture pushed to REPO's main and indexed."""
    fixture = load_fixture("muse-small-history.bundle")
    index(push_new(hub, REPO, fixture.data, fixture.head).partition_key)
    return fixture


@pytest.fixture
def indexed(hub: Hub, index: Indexer) -> Fixture:
    return push_and_index(hub, index)


@pytest.fixture
def file_indexed(file_hub: Hub, file_index: Indexer) -> Fixture:
    """As `indexed`, on the file store only: for what only the catalog decides."""
    return push_and_index(file_hub, file_index)


def last_manifest(fixture: Fixture) -> dict[str, str]:
    return fixture.manifests[fixture.commits[fixture.head]["snapshot_id"]]


def next_commit(parent: str, snapshot: dict[str, Any], step: int = 100) -> dict[str, Any]:
    return make_commit(
        snapshot["snapshot_id"], parents=[parent], message=f"stream {step}", committed_at=timestamp(step)
    )


def catalog_counts(hub: Hub) -> tuple[int, int]:
    return count_rows(hub, schema.commits, REPO), count_rows(hub, schema.snapshots, REPO)


def test_stream_push_reusing_indexed_objects_passes(file_hub: Hub, file_indexed: Fixture) -> None:
    hub, indexed = file_hub, file_indexed
    assert upload_objects(hub, REPO, []) == 0
    base_id = indexed.commits[indexed.head]["snapshot_id"]
    base = last_manifest(indexed)
    full_manifest = dict(sorted(base.items())[1:])  # one file removed
    full = full_snapshot(full_manifest, created_at=timestamp(100))
    first = next_commit(indexed.head, full, 100)
    stream_push(hub, REPO, "main", [first], [full], head_commit_id=first["commit_id"], expected_old_head=indexed.head)

    # A delta over a snapshot only the catalog holds, naming an object of the indexed bundle.
    delta_manifest = {**base, "copy.txt": next(iter(base.values()))}
    delta = delta_snapshot(base_id, base, delta_manifest, created_at=timestamp(101))
    second = next_commit(first["commit_id"], delta, 101)
    stream_push(
        hub, REPO, "main", [second], [delta], head_commit_id=second["commit_id"], expected_old_head=first["commit_id"]
    )

    assert hub.catalog.branch_head(REPO, "main") == second["commit_id"]
    cloned = load_bundle(clone(hub, REPO, "main"))
    assert set(cloned.commits) == {*indexed.commits, first["commit_id"], second["commit_id"]}
    assert cloned.manifests[full["snapshot_id"]] == full_manifest
    assert cloned.manifests[delta["snapshot_id"]] == delta_manifest


def test_stream_push_to_a_moved_branch_conflicts(file_hub: Hub, file_indexed: Fixture) -> None:
    snapshot = full_snapshot(last_manifest(file_indexed), created_at=timestamp(100))
    commit = next_commit(file_indexed.head, snapshot)
    with pytest.raises(BranchConflict):
        stream_push(file_hub, REPO, "main", [commit], [snapshot], head_commit_id=commit["commit_id"])
    assert file_hub.catalog.branch_head(REPO, "main") == file_indexed.head


def test_snapshot_naming_unregistered_objects_is_refused_and_writes_nothing(
    file_hub: Hub, file_indexed: Fixture
) -> None:
    hub, indexed = file_hub, file_indexed
    # One id nobody has, one registered only for another repo: both unknown to REPO.
    other_repo_object = b"only in repo-b\n"
    upload_objects(hub, "repo-b", [(sha256_hex(other_repo_object), other_repo_object)])
    manifest = {**last_manifest(indexed), "ghost.txt": fake_id("ghost"), "other.txt": sha256_hex(other_repo_object)}
    snapshot = full_snapshot(manifest, created_at=timestamp(100))
    commit = next_commit(indexed.head, snapshot)
    before = catalog_counts(hub)

    with pytest.raises(HubError) as info:
        stream_push(
            hub, REPO, "main", [commit], [snapshot], head_commit_id=commit["commit_id"], expected_old_head=indexed.head
        )
    assert str(info.value) == "2 snapshot object(s) not registered"
    assert catalog_counts(hub) == before
    assert hub.catalog.branch_head(REPO, "main") == indexed.head


def test_objects_uploaded_first_then_stream_push(hub: Hub, indexed: Fixture) -> None:
    new = {"new/a.txt": b"new a\n", "new/b.txt": b"new b\n"}
    uploaded = [(sha256_hex(data), data) for data in new.values()]
    assert upload_objects(hub, REPO, uploaded) == 2
    for object_id, data in uploaded:
        assert read_object(hub, REPO, object_id) == data
        assert object_rows(hub, [object_id])[object_id].storage_uri == hub.store.uri_for(object_key(object_id))
    manifest = {**last_manifest(indexed), **{path: sha256_hex(data) for path, data in new.items()}}
    snapshot = full_snapshot(manifest, created_at=timestamp(100))
    commit = next_commit(indexed.head, snapshot)

    stream_push(
        hub, REPO, "main", [commit], [snapshot], head_commit_id=commit["commit_id"], expected_old_head=indexed.head
    )

    cloned = load_bundle(clone(hub, REPO, "main"))
    assert all(cloned.contents[object_id] == data for object_id, data in uploaded)


def test_upload_objects_refuses_bytes_not_matching_their_id(hub: Hub) -> None:
    good, bad = b"good\n", b"bad\n"
    claimed = sha256_hex(b"something else")
    with pytest.raises(HubError, match="bytes do not hash to its id"):
        upload_objects(hub, REPO, [(sha256_hex(good), good), (claimed, bad)])
    # Nothing of the batch is stored or registered, not even the honest object.
    ids = [sha256_hex(good), claimed]
    assert object_rows(hub, ids) == {}
    assert not any(hub.store.exists(object_key(i)) for i in ids)
    with hub.catalog.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.object_refs)).scalar_one() == 0
