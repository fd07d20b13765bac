"""Commit order: parents before children, whatever order the bundle sends them in."""

from __future__ import annotations

import random

import pytest

from hub_assets.bundle import CommitRecord

from .builders import (
    Raw,
    decode_dict,
    fake_id,
    full_snapshot,
    make_bundle,
    make_commit,
    pack,
    spec_commit_id,
    timestamp,
)
from .expect import rejected

SNAPSHOT = full_snapshot({})
SID = SNAPSHOT["snapshot_id"]


def commit(name: str, *parents: str, commit_id: str | None = None) -> Raw:
    return make_commit(SID, parents=parents, message=name, committed_at=timestamp(len(name)), commit_id=commit_id)


def ordered(commits: list[Raw]) -> list[CommitRecord]:
    return decode_dict(make_bundle(commits=commits, snapshots=[SNAPSHOT])).commits


def assert_parents_first(records: list[CommitRecord]) -> None:
    position = {c.commit_id: i for i, c in enumerate(records)}
    for child in records:
        for parent in child.parent_ids:
            if parent in position:
                assert position[parent] < position[child.commit_id], (parent, child.commit_id)


def linear(n: int) -> list[Raw]:
    commits = [commit("c0")]
    for i in range(1, n):
        commits.append(commit(f"c{i}", commits[-1]["commit_id"]))
    return commits


@pytest.mark.parametrize("seed", range(5))
def test_linear_any_order(seed: int) -> None:
    commits = linear(30)
    shuffled = commits[:]
    random.Random(seed).shuffle(shuffled)
    assert [c.commit_id for c in ordered(shuffled)] == [c["commit_id"] for c in commits]


def diamond() -> dict[str, Raw]:
    root = commit("root")
    left = commit("left", root["commit_id"])
    right = commit("right", root["commit_id"])
    merge = commit("merge", left["commit_id"], right["commit_id"])
    after = commit("after", merge["commit_id"])
    return {"root": root, "left": left, "right": right, "merge": merge, "after": after}


@pytest.mark.parametrize("seed", range(5))
def test_merge_after_both_parents(seed: int) -> None:
    graph = diamond()
    commits = list(graph.values())
    random.Random(seed).shuffle(commits)
    records = ordered(commits)
    assert_parents_first(records)
    (merge,) = [c for c in records if c.message == "merge"]
    assert merge.parent_ids == (graph["left"]["commit_id"], graph["right"]["commit_id"])
    assert records[-1].message == "after"


def test_parents_outside_the_bundle() -> None:
    outside, outside2 = fake_id("pushed-before"), fake_id("other-branch")
    child = commit("child", outside)
    merge = commit("merge", child["commit_id"], outside2)
    records = ordered([merge, child])
    assert [c.message for c in records] == ["child", "merge"]
    assert records[0].parent_ids == (outside,)
    assert records[1].parent_ids == (child["commit_id"], outside2)


@pytest.mark.parametrize(
    "cycle",
    [
        pytest.param(["a", "b"], id="2-cycle"),
        pytest.param(["a"], id="self-parent"),
        pytest.param(["a", "b", "c"], id="3-cycle"),
    ],
)
def test_cycle_rejected(cycle: list[str]) -> None:
    ids = [fake_id(name) for name in cycle]
    commits = [commit(name, ids[i - 1], commit_id=ids[i]) for i, name in enumerate(cycle)]
    tail = commit("tail", ids[0])  # hangs below the cycle
    root = commit("root")  # unrelated, fine on its own
    error = rejected(pack_commits([root, *commits, tail]), "commit ", "cycle in commit parents")
    assert error.record in {f"commit {i}" for i in [*ids, tail["commit_id"]]}


def pack_commits(commits: list[Raw]) -> bytes:
    return pack(make_bundle(commits=commits, snapshots=[SNAPSHOT]))


def test_same_parent_twice() -> None:
    root = commit("root")
    twice = commit("twice", root["commit_id"], root["commit_id"])
    records = ordered([twice, root])
    assert [c.message for c in records] == ["root", "twice"]
    assert set(records[1].parent_ids) == {root["commit_id"]}
    assert spec_commit_id(records[1].parent_ids, SID, "twice", twice["committed_at"]) == twice["commit_id"]


def test_duplicate_commit_sent_twice_is_ordered_once() -> None:
    commits = linear(4)
    records = ordered(commits[::-1] + commits)
    assert [c.commit_id for c in records] == [c["commit_id"] for c in commits]


def test_record_fields() -> None:
    root = commit("root")
    child = make_commit(SID, parents=[root["commit_id"]], message="m", author="ann", metadata={"k": [1, None]})
    record = ordered([child, root])[1]
    assert (record.message, record.author, record.snapshot_id) == ("m", "ann", SID)
    assert record.meta["metadata"] == {"k": [1, None]}
    assert not {"commit_id", "snapshot_id", "message", "author", "committed_at"} & record.meta.keys()
    assert record.committed_at_time.isoformat() == record.committed_at
