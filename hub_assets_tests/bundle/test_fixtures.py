"""The real Muse fixtures (written by `muse bundle create`) decode unchanged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hub_assets.bundle import Bundle, Limits, decoded_bytes

from .builders import decode, sha256_hex, spec_commit_id, spec_snapshot_id


@dataclass(frozen=True)
class Expected:
    commits: int
    snapshots: int
    objects: int
    merges: int


FIXTURES = {
    "muse-small-history.bundle": Expected(commits=3, snapshots=3, objects=8, merges=0),
    "muse-merge.bundle": Expected(commits=4, snapshots=4, objects=6, merges=1),
}
VERIFY_IDS = [Limits(), Limits(verify_object_ids=True)]


@pytest.fixture(params=sorted(FIXTURES))
def fixture_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=VERIFY_IDS, ids=["default", "verify_object_ids"])
def decoded(request: pytest.FixtureRequest, fixture_name: str, fixture_bytes: Callable[[str], bytes]) -> Bundle:
    return decode(fixture_bytes(fixture_name), name=fixture_name, limits=request.param)


def test_counts(decoded: Bundle, fixture_name: str, fixture_bytes: Callable[[str], bytes]) -> None:
    expected = FIXTURES[fixture_name]
    data = fixture_bytes(fixture_name)
    assert (len(decoded.commits), len(decoded.snapshots), len(decoded.objects)) == (
        expected.commits,
        expected.snapshots,
        expected.objects,
    )
    assert sum(len(c.parent_ids) == 2 for c in decoded.commits) == expected.merges
    assert decoded.bundle_key == sha256_hex(data)
    assert decoded.size_bytes == len(data)


def test_commits_parents_first(decoded: Bundle) -> None:
    seen: set[str] = set()
    inside = {c.commit_id for c in decoded.commits}
    for commit in decoded.commits:
        assert all(p in seen for p in commit.parent_ids if p in inside), commit.commit_id
        seen.add(commit.commit_id)


def test_every_commit_id_recomputes(decoded: Bundle) -> None:
    for commit in decoded.commits:
        assert spec_commit_id(commit.parent_ids, commit.snapshot_id, commit.message, commit.committed_at) == (
            commit.commit_id
        )


def test_every_manifest_reproduces_its_snapshot_id(decoded: Bundle) -> None:
    for snapshot in decoded.snapshots:
        assert spec_snapshot_id(snapshot.manifest) == snapshot.snapshot_id


def test_every_object_hashes_to_its_id(decoded: Bundle) -> None:
    for obj in decoded.objects:
        data = decoded_bytes(obj)
        assert sha256_hex(data) == obj.object_id
        assert len(data) == obj.size_bytes


def test_references_are_complete(decoded: Bundle) -> None:
    snapshot_ids = {s.snapshot_id for s in decoded.snapshots}
    assert {c.snapshot_id for c in decoded.commits} <= snapshot_ids
    assert decoded.object_ref_ids() == {o.object_id for o in decoded.objects}
    assert set(decoded.branch_heads.values()) <= {c.commit_id for c in decoded.commits}


def test_muse_fields_kept_as_meta(decoded: Bundle) -> None:
    for commit in decoded.commits:
        assert {"repo_id", "branch", "metadata", "structured_delta", "format_version"} <= commit.meta.keys()
        assert commit.committed_at_time.tzinfo is not None


def test_merge_keeps_first_parent_first(fixture_bytes: Callable[[str], bytes]) -> None:
    bundle = decode(fixture_bytes("muse-merge.bundle"))
    (merge,) = [c for c in bundle.commits if len(c.parent_ids) == 2]
    assert merge is bundle.commits[-1]
    assert merge.message == "Merge branch 'feature' into main"
    by_id = {c.commit_id: c for c in bundle.commits}
    first, second = (by_id[p] for p in merge.parent_ids)
    assert first.message == "main: edit a"
    assert second.message == "feature: add f, drop b"
    assert bundle.branch_heads == {"main": merge.commit_id, "feature": second.commit_id}


def test_small_history_is_linear(fixture_bytes: Callable[[str], bytes]) -> None:
    bundle = decode(fixture_bytes("muse-small-history.bundle"))
    assert [c.message for c in bundle.commits] == ["commit 1", "commit 2", "commit 3"]
    assert bundle.commits[0].parent_ids == ()
    for parent, child in zip(bundle.commits, bundle.commits[1:], strict=False):
        assert child.parent_ids == (parent.commit_id,)
