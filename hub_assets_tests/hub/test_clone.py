"""Clone (SPEC §8): push, index, clone gives back the same history, byte for byte."""

from __future__ import annotations

from datetime import datetime

import pytest

from hub_assets.hub import Hub, HubError, NotFound, clone

from ..bundle.builders import build_history, decode
from .conftest import Indexer
from .helpers import FIXTURE_NAMES, Fixture, load_bundle, load_fixture, push_new

REPO = "repo-a"


def snapshot_times(bundle: Fixture) -> dict[str, datetime]:
    return {s["snapshot_id"]: datetime.fromisoformat(s["created_at"]) for s in bundle.raw["snapshots"]}


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_clone_of_a_pushed_fixture_is_the_same_history(hub: Hub, index: Indexer, name: str) -> None:
    fixture = load_fixture(name)
    index(push_new(hub, REPO, fixture.data, fixture.head).partition_key)

    data = clone(hub, REPO, "main")
    assert clone(hub, REPO, "main") == data  # deterministic
    decode(data, name="clone")  # a valid bundle on its own (empty catalog)
    cloned = load_bundle(data, "clone")

    assert cloned.commits == fixture.commits  # every field, verbatim
    assert cloned.manifests == fixture.manifests
    assert snapshot_times(cloned) == snapshot_times(fixture)
    assert cloned.contents == fixture.contents
    assert all(set(o) == {"object_id", "content"} for o in cloned.raw["objects"])  # identity encoding
    assert all("manifest" in s for s in cloned.raw["snapshots"])  # full manifests
    assert cloned.raw["branch_heads"] == {"main": fixture.head}


def test_clone_of_a_clone_is_identical(file_hub: Hub, file_index: Indexer) -> None:
    fixture = load_fixture("muse-merge.bundle")
    file_index(push_new(file_hub, REPO, fixture.data, fixture.head).partition_key)
    first = clone(file_hub, REPO, "main")
    file_index(push_new(file_hub, "repo-b", first, fixture.head).partition_key)
    assert clone(file_hub, "repo-b", "main") == first


def test_incremental_pushes_clone_as_one_history(hub: Hub, index: Indexer) -> None:
    base = build_history(4, 6, seed=1)
    more = build_history(3, 6, seed=2, after=base)  # parents and delta bases only in `base`
    index(push_new(hub, REPO, base.wire(), base.head).partition_key)  # a push validates against what is indexed
    index(push_new(hub, REPO, more.wire(), more.head, expected_old_head=base.head).partition_key)

    cloned = load_bundle(clone(hub, REPO, "main"), "clone")
    assert [c["commit_id"] for c in cloned.raw["commits"]] == base.commit_ids + more.commit_ids  # parents first
    assert cloned.manifests == {**base.manifests, **more.manifests}
    assert cloned.contents == {**base.contents, **more.contents}
    originals = {c["commit_id"]: c for c in [*base.bundle["commits"], *more.bundle["commits"]]}
    assert cloned.commits == originals


def test_clone_of_an_unknown_branch_or_repo_is_not_found(file_hub: Hub) -> None:
    with pytest.raises(NotFound, match="branch 'main' not found in repo nobody"):
        clone(file_hub, "nobody", "main")


def test_clone_before_the_head_is_indexed_is_refused(file_hub: Hub) -> None:
    fixture = load_fixture("muse-merge.bundle")
    push_new(file_hub, REPO, fixture.data, fixture.head)
    with pytest.raises(HubError, match="not indexed yet"):
        clone(file_hub, REPO, "main")
