"""Push (SPEC §6): the branch moves by compare-and-swap; the upload is checked against its key."""

from __future__ import annotations

import io
import os
from functools import partial

import pytest

from hub_assets.hub import BranchConflict, BundleRefused, Hub, HubError, NotFastForward, PushResult, push
from hub_assets.store import KeyWriter, object_key, partition_key, refused_key, upload_key
from hub_assets.store.layout import QUARANTINE, UPLOADS

from ..bundle.builders import build_history, fake_id, sha256_hex
from ..faults.state import partial_writes
from .conftest import Indexer
from .helpers import at_once, bundle_statuses, load_fixture, object_rows, one_commit_bundle, push_new

REPO = "repo-a"
TRIALS = 20
PUSHERS = 20


def uploads(hub: Hub) -> list[str]:
    return [item.key for item in hub.store.list(UPLOADS)]


def race(hub: Hub, bundles: list[tuple[bytes, str]], expected_old_head: str | None) -> list[PushResult | HubError]:
    """Push every (bytes, head) to `main` at once, all expecting `expected_old_head`."""
    return at_once(
        [partial(push_new, hub, REPO, data, head, expected_old_head=expected_old_head) for data, head in bundles]
    )


def test_concurrent_pushes_with_one_expected_head_exactly_one_wins(file_hub: Hub) -> None:
    hub = file_hub
    head: str | None = None
    winners: list[PushResult] = []
    for trial in range(TRIALS):
        bundles = [
            one_commit_bundle({"f.txt": f"{trial}/{i}".encode()}, f"t{trial} p{i}", parent=head) for i in range(PUSHERS)
        ]
        outcomes = race(hub, bundles, head)
        won = [o for o in outcomes if isinstance(o, PushResult)]
        lost = [o for o in outcomes if not isinstance(o, PushResult)]
        assert len(won) == 1, f"trial {trial}: {len(won)} winners"
        assert len(lost) == PUSHERS - 1 and all(type(e) is BranchConflict for e in lost), lost
        assert all("'main'" in str(e) and REPO in str(e) for e in lost)
        winner = won[0]
        assert hub.catalog.branch_head(REPO, "main") == winner.head_commit_id
        head = winner.head_commit_id
        winners.append(winner)
    # Only the winning pushes are recorded, each once, and only theirs reach the sensor's prefix.
    assert bundle_statuses(hub, REPO) == {w.bundle_key: "pushed" for w in winners}
    assert uploads(hub) == sorted(upload_key(w.partition_key) for w in winners)
    assert list(hub.store.list(QUARANTINE)) == []


def test_expected_nothing_conflicts_with_an_existing_branch_and_force_wins(file_hub: Hub) -> None:
    hub = file_hub
    first, first_head = one_commit_bundle({"a.txt": b"a"}, "first")
    second, second_head = one_commit_bundle({"b.txt": b"b"}, "second")
    third, third_head = one_commit_bundle({"c.txt": b"c"}, "third")
    push_new(hub, REPO, first, first_head)

    with pytest.raises(BranchConflict, match=f"at {first_head}, not nothing"):
        push_new(hub, REPO, second, second_head)
    with pytest.raises(BranchConflict, match=f"at {first_head}, not {fake_id('stale')}"):
        push_new(hub, REPO, second, second_head, expected_old_head=fake_id("stale"))
    assert hub.catalog.branch_head(REPO, "main") == first_head

    push_new(hub, REPO, second, second_head, force=True)
    assert hub.catalog.branch_head(REPO, "main") == second_head
    push_new(hub, REPO, third, third_head, expected_old_head=fake_id("stale"), force=True)
    assert hub.catalog.branch_head(REPO, "main") == third_head
    child, child_head = one_commit_bundle({"d.txt": b"d"}, "child", parent=third_head)
    push_new(hub, REPO, child, child_head, expected_old_head=third_head)
    assert hub.catalog.branch_head(REPO, "main") == child_head


def test_a_conflicting_push_is_refused_as_a_conflict_before_its_bytes_are_judged(file_hub: Hub) -> None:
    """The branch is checked beside the reading, yet a push the compare-and-swap must refuse is
    refused as a conflict: a small one even when its bytes are no bundle, a large one before
    its bytes are read past the inline limit."""
    hub = file_hub
    first, first_head = one_commit_bundle({"a.txt": b"a"}, "first")
    push_new(hub, REPO, first, first_head)
    with pytest.raises(BranchConflict, match=f"at {first_head}, not {fake_id('stale')}"):
        push(hub, REPO, "main", b"not a bundle", expected_old_head=fake_id("stale"))

    hub.inline_bundle_max_bytes = 1000
    large, large_head = one_commit_bundle({"big.bin": os.urandom(200_000)}, "large")
    stream = io.BytesIO(large)
    with pytest.raises(BranchConflict, match=f"at {first_head}, not nothing"):
        push(hub, REPO, "main", stream, head_commit_id=large_head)
    assert stream.tell() <= hub.inline_bundle_max_bytes + 1  # how far the push read
    assert hub.catalog.branch_head(REPO, "main") == first_head
    assert uploads(hub) == [upload_key(partition_key(REPO, sha256_hex(first)))]
    assert list(hub.store.list(QUARANTINE)) == []


def test_a_head_not_descending_from_the_expected_one_is_refused_naming_both(file_hub: Hub) -> None:
    hub = file_hub
    first, first_head = one_commit_bundle({"a.txt": b"a"}, "first")
    other, other_head = one_commit_bundle({"b.txt": b"b"}, "unrelated")
    push_new(hub, REPO, first, first_head)
    before = uploads(hub)

    with pytest.raises(NotFastForward) as refused:
        push_new(hub, REPO, other, other_head, expected_old_head=first_head)
    assert f"{other_head} does not descend from the head of 'main', {first_head}" in str(refused.value)
    assert hub.catalog.branch_head(REPO, "main") == first_head
    assert uploads(hub) == before and list(hub.store.list(QUARANTINE)) == []
    assert push_new(hub, REPO, other, other_head, expected_old_head=first_head, force=True).head_commit_id == other_head


def test_the_head_defaults_to_the_bundles_and_must_be_a_known_commit(file_hub: Hub, file_index: Indexer) -> None:
    hub = file_hub
    fixture = load_fixture("muse-merge.bundle")  # branch_heads names main's head
    assert push(hub, REPO, "main", fixture.data).head_commit_id == fixture.head
    file_index(partition_key(REPO, sha256_hex(fixture.data)))
    linear = build_history(3, 2, seed=5, branch="dev")
    del linear.bundle["branch_heads"]  # no branch_heads: the one tip
    assert push(hub, REPO, "dev", linear.wire()).head_commit_id == linear.head
    first_commit = fixture.raw["commits"][0]["commit_id"]  # only in the catalog now
    assert push(hub, REPO, "old", linear.wire(), head_commit_id=first_commit).head_commit_id == first_commit

    unknown = fake_id("unknown")
    with pytest.raises(HubError, match=f"head {unknown} is a commit of neither the bundle nor repo {REPO}"):
        push(hub, REPO, "other", linear.wire(), head_commit_id=unknown)
    assert hub.catalog.branch_head(REPO, "other") is None


def test_a_branch_of_another_repo_or_name_is_independent(file_hub: Hub) -> None:
    data, head = one_commit_bundle({"a.txt": b"a"})
    push_new(file_hub, REPO, data, head)
    push_new(file_hub, "repo-b", data, head)
    push_new(file_hub, REPO, data, head, branch="feature/x")
    assert file_hub.catalog.branch_head("repo-b", "main") == head
    assert file_hub.catalog.branch_head(REPO, "feature/x") == head


def test_upload_not_matching_its_key_is_refused_without_writing(file_hub: Hub) -> None:
    hub = file_hub
    fixture = load_fixture("muse-merge.bundle")
    key = fake_id("not the hash")
    pushed = partition_key(REPO, key)
    hub.store.put(upload_key(pushed), fixture.data)
    mismatch = (
        rf"^bundle {pushed}: bundle: sha256 of the bytes is {sha256_hex(fixture.data)}, not the bundle key {key}$"
    )

    with pytest.raises(BundleRefused, match=mismatch):
        push(hub, REPO, "main", bundle_key=key, head_commit_id=fixture.head)
    # Refused, the upload leaves the sensor's prefix.
    assert uploads(hub) == [] and hub.store.get(refused_key(pushed)) == fixture.data
    with pytest.raises(BundleRefused, match=mismatch):
        push(hub, REPO, "main", fixture.data, bundle_key=key, head_commit_id=fixture.head)
    assert hub.catalog.branch_head(REPO, "main") is None
    assert bundle_statuses(hub, REPO) == {}
    assert object_rows(hub, list(fixture.contents)) == {}
    assert not any(hub.store.exists(object_key(i)) for i in fixture.contents)
    assert uploads(hub) == [] and list(hub.store.list(QUARANTINE)) == []
    with pytest.raises(HubError, match=f"no upload at {upload_key(pushed)}"):
        push(hub, REPO, "main", bundle_key=key)


def test_push_by_key_of_an_upload(file_hub: Hub) -> None:
    hub = file_hub
    fixture = load_fixture("muse-merge.bundle")
    key = sha256_hex(fixture.data)
    hub.store.put(upload_key(partition_key(REPO, key)), fixture.data)
    result = push(hub, REPO, "main", bundle_key=key, head_commit_id=fixture.head)
    assert (result.bundle_key, result.partition_key) == (key, f"{REPO}/{key}")
    assert result.inline_objects == len(fixture.contents)
    assert bundle_statuses(hub, REPO) == {key: "pushed"}


def test_push_by_key_refused_for_its_head_leaves_no_upload(file_hub: Hub) -> None:
    """Not only a rule of SPEC §3: a push by key refused at its head (unknown commit, lost
    compare-and-swap) also takes the bytes out of the sensor's prefix."""
    hub = file_hub
    fixture = load_fixture("muse-merge.bundle")
    key = sha256_hex(fixture.data)
    pushed = partition_key(REPO, key)
    hub.store.put(upload_key(pushed), fixture.data)
    with pytest.raises(HubError, match="is a commit of neither the bundle nor repo"):
        push(hub, REPO, "main", bundle_key=key, head_commit_id=fake_id("no such commit"))
    assert uploads(hub) == [] and hub.store.get(refused_key(pushed)) == fixture.data
    assert hub.catalog.branch_head(REPO, "main") is None and bundle_statuses(hub, REPO) == {}

    hub.store.put(upload_key(pushed), fixture.data)
    with pytest.raises((BranchConflict, NotFastForward)):
        push(hub, REPO, "main", bundle_key=key, head_commit_id=fixture.head, expected_old_head=fake_id("old"))
    assert uploads(hub) == [] and bundle_statuses(hub, REPO) == {}


@pytest.mark.parametrize(
    ("repo_id", "branch", "head", "reason"),
    [
        ("a/b", "main", fake_id(1), "repo id"),
        ("a..b", "main", fake_id(1), "repo id"),
        (REPO, "-x", fake_id(1), "-x"),
        (REPO, "a..b", fake_id(1), "a..b"),
        (REPO, "main", "HEAD", "head commit id 'HEAD'"),
    ],
    ids=["slash", "dots", "dash", "branch-dots", "head"],
)
def test_bad_names_are_refused_before_anything_is_written(
    file_hub: Hub, repo_id: str, branch: str, head: str, reason: str
) -> None:
    data, _ = one_commit_bundle({"a.txt": b"a"})
    with pytest.raises(HubError, match=reason):
        push(file_hub, repo_id, branch, data, head_commit_id=head)
    assert list(file_hub.store.list("uploads/")) == []


def nothing_visible(hub: Hub, branch: str = "main") -> bool:
    """No branch, bundle row, upload, quarantine key or unfinished write of a push."""
    return (
        hub.catalog.branch_head(REPO, branch) is None
        and bundle_statuses(hub, REPO) == {}
        and uploads(hub) == []
        and list(hub.store.list(QUARANTINE)) == []
        and partial_writes(hub.store, QUARANTINE) == 0
    )


@pytest.mark.parametrize("store_url", ["file", "s3"], indirect=True)
def test_a_small_push_refused_while_its_quarantine_write_is_under_way_leaves_nothing(hub: Hub) -> None:
    """A small bundle's quarantine write runs alongside the commit point; refused there, the
    push removes the key only once it is written, so none is left behind."""
    data, head = one_commit_bundle({"a.txt": b"a"})
    with pytest.raises(HubError, match="is a commit of neither the bundle nor repo"):
        push(hub, REPO, "main", data, head_commit_id=fake_id("unknown"))
    assert nothing_visible(hub)
    assert push(hub, REPO, "main", data, head_commit_id=head).head_commit_id == head
    assert list(hub.store.list(QUARANTINE)) == [] and len(uploads(hub)) == 1


@pytest.mark.parametrize("store_url", ["file", "s3"], indirect=True)
def test_a_small_push_whose_quarantine_write_fails_is_not_accepted(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit point waits for the quarantine write: if it fails, the transaction rolls back."""
    data, head = one_commit_bundle({"a.txt": b"a"})
    writer = hub.store.writer

    def failing_writer(key: str) -> KeyWriter:
        landing = writer(key)

        def commit() -> None:
            raise OSError(f"store refused {key}")

        monkeypatch.setattr(landing, "commit", commit)
        return landing

    monkeypatch.setattr(hub.store, "writer", failing_writer)
    with pytest.raises(OSError, match="store refused"):
        push(hub, REPO, "main", data, head_commit_id=head)
    assert nothing_visible(hub)
    assert object_rows(hub, [sha256_hex(b"a")]) == {}
