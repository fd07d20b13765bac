"""Push (SPEC §6): the branch moves by compare-and-swap; the upload is checked against its key."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from hub_assets.hub import BranchConflict, Hub, HubError, PushResult, push
from hub_assets.store import object_key, partition_key, upload_key

from ..bundle.builders import fake_id, sha256_hex
from .helpers import bundle_statuses, load_fixture, object_rows, one_commit_bundle, push_new

REPO = "repo-a"
TRIALS = 20
PUSHERS = 20


def race(hub: Hub, bundles: list[tuple[bytes, str]], expected_old_head: str | None) -> list[PushResult | HubError]:
    """Push every (bytes, head) to `main` at once, all expecting `expected_old_head`."""
    barrier = threading.Barrier(len(bundles))

    def attempt(bundle: tuple[bytes, str]) -> PushResult | HubError:
        data, head = bundle
        barrier.wait(timeout=60)
        try:
            return push_new(hub, REPO, data, head, expected_old_head=expected_old_head)
        except HubError as error:
            return error

    with ThreadPoolExecutor(max_workers=len(bundles)) as pool:
        return list(pool.map(attempt, bundles))


def test_concurrent_pushes_with_one_expected_head_exactly_one_wins(file_hub: Hub) -> None:
    hub = file_hub
    head: str | None = None
    winners: list[PushResult] = []
    for trial in range(TRIALS):
        bundles = [one_commit_bundle({"f.txt": f"{trial}/{i}".encode()}, f"t{trial} p{i}") for i in range(PUSHERS)]
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
    # Only the winning pushes are recorded, each once.
    assert bundle_statuses(hub, REPO) == {w.bundle_key: "pushed" for w in winners}


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
    push_new(hub, REPO, first, first_head, expected_old_head=third_head)
    assert hub.catalog.branch_head(REPO, "main") == first_head


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
    hub.store.put(upload_key(partition_key(REPO, key)), fixture.data)

    with pytest.raises(HubError, match=r"hashes to .*, not to its key"):
        push(hub, REPO, "main", bundle_key=key, head_commit_id=fixture.head)
    with pytest.raises(HubError, match=f"not to the bundle key {key}"):
        push(hub, REPO, "main", fixture.data, bundle_key=key, head_commit_id=fixture.head)
    assert hub.catalog.branch_head(REPO, "main") is None
    assert bundle_statuses(hub, REPO) == {}
    assert object_rows(hub, list(fixture.contents)) == {}
    assert not any(hub.store.exists(object_key(i)) for i in fixture.contents)


def test_push_by_key_of_an_upload(file_hub: Hub) -> None:
    hub = file_hub
    fixture = load_fixture("muse-merge.bundle")
    key = sha256_hex(fixture.data)
    hub.store.put(upload_key(partition_key(REPO, key)), fixture.data)
    result = push(hub, REPO, "main", bundle_key=key, head_commit_id=fixture.head)
    assert (result.bundle_key, result.partition_key) == (key, f"{REPO}/{key}")
    assert result.inline_objects == len(fixture.contents)
    assert bundle_statuses(hub, REPO) == {key: "pushed"}


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
