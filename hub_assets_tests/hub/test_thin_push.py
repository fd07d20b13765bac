"""Thin push (SPEC §10): the real client's `/push` — commits and full snapshots after their objects —
validated by the decoder's rules and the ghost guard, fetchable the moment it returns, landed as a
bundle the index runs like any other."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from typing import Any

import msgpack
import pytest
import sqlalchemy as sa

from hub_assets.bundle import Limits
from hub_assets.catalog import PENDING, schema
from hub_assets.hub import (
    BranchConflict,
    BundleRefused,
    Hub,
    HubError,
    NotFastForward,
    ThinPushResult,
    clone,
    read_object,
    thin_push,
    upload_objects,
)
from hub_assets.store import object_key, upload_key
from hub_assets.store.layout import QUARANTINE, UPLOADS
from hub_assets_tests.conftest import FIXTURES_DIR
from hub_assets_tests.index.conftest import catalog_digest

from ..bundle.builders import (
    delta_snapshot,
    fake_id,
    full_snapshot,
    make_commit,
    raw_delta,
    sha256_hex,
    spec_snapshot_id,
    timestamp,
)
from .conftest import Indexer
from .helpers import at_once, bundle_statuses, load_bundle, load_fixture, object_rows, push_new

REPO = "f9fc58c6-4e88-419e-b3d3-9a55b08f0df1"
Raw = dict[str, Any]

# The recorded session (fixtures/mwp/README.md): each push after the objects it names.
RECORDED = [("04-post-push-objects", "05-post-push"), ("11-post-push-objects", "12-post-push")]
RECORDED += [("18-post-push-objects", "19-post-push")]
DIVERGED = ("22-post-push-objects", "23-post-push")  # from the clone, on the head before 19's


def recorded(name: str) -> Raw:
    return msgpack.unpackb((FIXTURES_DIR / "mwp" / f"{name}.msgpack").read_bytes(), raw=False)


def register(hub: Hub, repo_id: str, objects: list[tuple[str, bytes]]) -> None:
    """As `/push/objects` leaves them: objects up to the inline limit only inline ('pending',
    bytes in content_cache), larger ones stored; all registered for the repo."""
    inline = [(i, data) for i, data in objects if len(data) <= hub.inline_object_max_bytes]
    hub.catalog.add_inline_objects(inline)
    hub.catalog.add_object_refs(repo_id, [i for i, _ in inline])
    upload_objects(hub, repo_id, [(i, data) for i, data in objects if len(data) > hub.inline_object_max_bytes])


def register_recorded(hub: Hub, name: str) -> dict[str, bytes]:
    objects = {o["object_id"]: o["content"] for o in recorded(name)["objects"]}
    register(hub, REPO, list(objects.items()))
    return objects


def replay(hub: Hub, name: str, *, force: bool | None = None) -> ThinPushResult:
    body = recorded(name)
    bundle = body["bundle"]
    assert bundle["objects"] == []
    forced = body["force"] if force is None else force
    return thin_push(hub, REPO, body["branch"], bundle["commits"], bundle["snapshots"], force=forced)


def tip_of(name: str) -> str:
    (commit,) = [c for c in recorded(name)["bundle"]["commits"] if c["message"] in {"third", "from a", "from b"}]
    return commit["commit_id"]


def landed(hub: Hub, result: ThinPushResult) -> Raw:
    assert result.partition_key is not None
    return msgpack.unpackb(hub.store.get(upload_key(result.partition_key)), raw=False)


def uploads(hub: Hub) -> list[str]:
    return [item.key for item in hub.store.list(UPLOADS)]


def digest(hub: Hub) -> str:
    return catalog_digest(hub.catalog, hub.store)


def pushed_state(hub: Hub) -> dict[str, list[Any]]:
    """What a thin push writes, as text: commits, snapshots, refs and branches (clocks left out)."""
    queries = {
        "commits": "SELECT commit_id, parent_ids, snapshot_id, message, author, committed_at_text, commit_meta"
        " FROM musehub_commits ORDER BY commit_id",
        "snapshots": "SELECT snapshot_id, manifest FROM musehub_snapshots ORDER BY snapshot_id",
        "refs": "SELECT repo_id, object_id FROM musehub_object_refs ORDER BY 1, 2",
        "branches": "SELECT repo_id, name, head_commit_id FROM musehub_branches ORDER BY 1, 2",
    }
    with hub.catalog.engine.connect() as conn:
        return {name: [tuple(map(str, row)) for row in conn.execute(sa.text(q))] for name, q in queries.items()}


def assert_fetchable(hub: Hub, commits: list[Raw], snapshots: list[Raw], contents: dict[str, bytes]) -> None:
    """A clone of main holds every pushed commit and manifest, and every file byte-exact."""
    cloned = load_bundle(clone(hub, REPO, "main"))
    assert {c["commit_id"] for c in commits} <= set(cloned.commits)
    for snapshot in snapshots:
        manifest = cloned.manifests[snapshot["snapshot_id"]]
        assert manifest == snapshot["manifest"]
        assert all(cloned.contents[object_id] == contents[object_id] for object_id in manifest.values())


# --- the recorded session ---------------------------------------------------------------------


def test_recorded_pushes_replayed_in_order_are_fetchable_at_once_and_land_as_bundles(hub: Hub) -> None:
    contents: dict[str, bytes] = {}
    commits: list[Raw] = []
    snapshots: list[Raw] = []
    results = []
    for objects, push in RECORDED:
        contents |= register_recorded(hub, objects)
        result = replay(hub, push)
        results.append(result)
        bundle = recorded(push)["bundle"]
        commits += bundle["commits"]
        snapshots += bundle["snapshots"]

        assert result.branch_heads == {"main": result.head_commit_id}
        assert hub.catalog.branch_head(REPO, "main") == result.head_commit_id
        # Fetchable before any index run: rows, refs and inline bytes are all there.
        assert_fetchable(hub, commits, snapshots, contents)
        # The landed bundle: the records as sent, and the named objects whose bytes are only inline.
        named = {object_id for s in bundle["snapshots"] for object_id in s["manifest"].values()}
        assert landed(hub, result) == {
            "commits": bundle["commits"],
            "snapshots": bundle["snapshots"],
            "objects": [{"object_id": i, "content": contents[i]} for i in sorted(named)],
        }

    first, second, third = results
    assert first.head_commit_id == recorded("05-post-push")["bundle"]["commits"][0]["commit_id"]
    assert first.message == f"main created at {first.head_commit_id[:12]} (2 commit(s))"
    assert (second.head_commit_id, third.head_commit_id) == (tip_of("12-post-push"), tip_of("19-post-push"))
    moved = f"main {second.head_commit_id[:12]} -> {third.head_commit_id[:12]}"
    assert third.message == f"{moved} (1 commit(s), fast-forward)"
    assert uploads(hub) == sorted(upload_key(r.partition_key or "") for r in results)
    assert bundle_statuses(hub, REPO) == {r.partition_key.split("/")[1]: "pushed" for r in results if r.partition_key}
    assert list(hub.store.list(QUARANTINE)) == []
    with hub.catalog.engine.connect() as conn:
        rows = conn.execute(sa.select(schema.commits.c.commit_id, schema.commits.c.commit_meta)).all()
    assert {commit_id: meta["branch"] for commit_id, meta in rows} == {c["commit_id"]: "main" for c in commits}


def replay_recorded(hub: Hub) -> list[ThinPushResult]:
    results = []
    for objects, push in RECORDED:
        register_recorded(hub, objects)
        results.append(replay(hub, push))
    return results


def test_a_diverged_push_is_refused_without_a_trace_and_forced_moves_the_branch(file_hub: Hub) -> None:
    hub = file_hub
    head = replay_recorded(hub)[-1].head_commit_id
    contents = register_recorded(hub, DIVERGED[0])
    before = digest(hub)

    with pytest.raises(NotFastForward) as refused:
        replay(hub, DIVERGED[1])
    assert str(refused.value) == (
        f"{tip_of('23-post-push')} does not descend from the head of 'main' of {REPO}, {head}"
        " (force moves the branch anyway)"
    )
    assert digest(hub) == before

    forced = replay(hub, DIVERGED[1], force=True)
    assert forced.head_commit_id == tip_of("23-post-push")
    assert forced.branch_heads == {"main": forced.head_commit_id}
    assert forced.message.endswith("(1 commit(s), forced)")
    bundle = recorded(DIVERGED[1])["bundle"]
    assert_fetchable(hub, bundle["commits"], bundle["snapshots"], {**contents, **all_recorded_contents()})


def all_recorded_contents() -> dict[str, bytes]:
    return {o["object_id"]: o["content"] for name, _ in RECORDED for o in recorded(name)["objects"]}


def test_a_retried_push_lands_the_same_bundle_and_leaves_the_catalog_as_it_was(file_hub: Hub) -> None:
    hub = file_hub
    last = replay_recorded(hub)[-1]
    before = digest(hub)
    again = replay(hub, RECORDED[-1][1])
    assert again == replace(last, message=f"main already at {last.head_commit_id[:12]}")
    assert digest(hub) == before


def test_no_commits_answer_the_branch_head_and_change_nothing(file_hub: Hub) -> None:
    hub = file_hub
    with pytest.raises(HubError, match=f"^bundle pushed to {REPO}/main: no commits, and the branch does not exist$"):
        thin_push(hub, REPO, "main", [], [], force=False)
    head = replay_recorded(hub)[-1].head_commit_id
    before = digest(hub)
    result = thin_push(hub, REPO, "main", [], [], force=False)
    assert result == ThinPushResult(head, f"main already at {head[:12]}", {"main": head}, None)
    assert digest(hub) == before


@pytest.mark.parametrize(
    ("repo_id", "branch", "reason"),
    [("a/b", "main", "repo id"), ("a..b", "main", "repo id"), (REPO, "-x", "-x"), (REPO, "a..b", "a..b")],
    ids=["slash", "dots", "dash", "branch-dots"],
)
def test_bad_names_are_refused_before_anything_is_read(file_hub: Hub, repo_id: str, branch: str, reason: str) -> None:
    commit = make_commit(fake_id("snapshot"))
    before = digest(file_hub)
    with pytest.raises(HubError, match=reason):
        thin_push(file_hub, repo_id, branch, [commit], [], force=False)
    assert digest(file_hub) == before


# --- what the hub builds on: history, objects, and what only the catalog holds ----------------


def child(
    hub: Hub, parents: list[str], files: dict[str, bytes], message: str, *, branch: str = "main", repo_id: str = REPO
) -> tuple[Raw, Raw]:
    """A commit of `parents` whose full snapshot holds `files`, their objects registered first."""
    register(hub, repo_id, [(sha256_hex(data), data) for data in files.values()])
    snapshot = full_snapshot({path: sha256_hex(data) for path, data in files.items()}, created_at=timestamp(1))
    step = sum(map(ord, message))
    commit = make_commit(
        snapshot["snapshot_id"], parents=parents, message=message, committed_at=timestamp(step), branch=branch
    )
    return commit, snapshot


def push_one(hub: Hub, commit_snapshot: tuple[Raw, Raw], branch: str = "main", **kwargs: Any) -> ThinPushResult:
    commit, snapshot = commit_snapshot
    return thin_push(hub, REPO, branch, [commit], [snapshot], force=kwargs.pop("force", False), **kwargs)


def test_a_merge_history_of_the_real_client_pushed_thin_clones_as_sent(hub: Hub) -> None:
    fixture = load_fixture("muse-merge.bundle")
    register(hub, REPO, list(fixture.contents.items()))
    commits, snapshots = fixture.raw["commits"], fixture.raw["snapshots"]
    assert any(c["parent2_commit_id"] for c in commits)

    result = thin_push(hub, REPO, "main", commits, snapshots, force=False)

    assert result.head_commit_id == fixture.head
    cloned = load_bundle(clone(hub, REPO, "main"))
    assert cloned.commits == fixture.commits
    assert cloned.manifests == fixture.manifests
    assert cloned.contents == fixture.contents


def test_fast_forward_is_judged_through_commits_stored_by_other_pushes(file_hub: Hub) -> None:
    hub = file_hub
    root = child(hub, [], {"a.txt": b"a"}, "root")
    push_one(hub, root)
    on_main = child(hub, [root[0]["commit_id"]], {"a.txt": b"main"}, "main 1")
    push_one(hub, on_main)
    # A feature branch grows from main's head, then main takes a merge of it and of main.
    feature = child(hub, [on_main[0]["commit_id"]], {"a.txt": b"feature"}, "feature 1", branch="feature")
    push_one(hub, feature, "feature")
    side = child(hub, [root[0]["commit_id"]], {"b.txt": b"side"}, "side", branch="side")
    push_one(hub, side, "side")
    merge = child(hub, [feature[0]["commit_id"], side[0]["commit_id"]], {"a.txt": b"merged"}, "merge")

    # Only the merge is pushed: main's head is reached through feature's commit, in the catalog.
    result = push_one(hub, merge)
    assert result.head_commit_id == merge[0]["commit_id"]
    assert result.branch_heads == {
        "feature": feature[0]["commit_id"],
        "main": merge[0]["commit_id"],
        "side": side[0]["commit_id"],
    }
    # side's head is an ancestor of nothing main held: moving side to main's old commit diverges.
    elsewhere = child(hub, [on_main[0]["commit_id"]], {"c.txt": b"c"}, "elsewhere", branch="side")
    with pytest.raises(NotFastForward, match=f"from the head of 'side' of {REPO}, {side[0]['commit_id']}"):
        push_one(hub, elsewhere, "side")


def test_a_delta_over_a_snapshot_only_the_catalog_holds_reuses_indexed_objects(
    file_hub: Hub, file_index: Indexer
) -> None:
    hub = file_hub
    indexed = load_fixture("muse-small-history.bundle")
    file_index(push_new(hub, REPO, indexed.data, indexed.head).partition_key)
    base_id = indexed.commits[indexed.head]["snapshot_id"]
    base = indexed.manifests[base_id]
    full_manifest = dict(sorted(base.items())[1:])  # one file removed
    full = full_snapshot(full_manifest, created_at=timestamp(100))
    first = make_commit(full["snapshot_id"], parents=[indexed.head], message="thin 1", committed_at=timestamp(100))
    thin_push(hub, REPO, "main", [first], [full], force=False)
    # A delta over a snapshot only the catalog holds, naming an object of the indexed bundle.
    delta_manifest = {**base, "copy.txt": next(iter(base.values()))}
    delta = delta_snapshot(base_id, base, delta_manifest, created_at=timestamp(101))
    second = make_commit(
        delta["snapshot_id"], parents=[first["commit_id"]], message="thin 2", committed_at=timestamp(101)
    )

    result = thin_push(hub, REPO, "main", [second], [delta], force=False)

    assert result.head_commit_id == second["commit_id"]
    cloned = load_bundle(clone(hub, REPO, "main"))
    assert set(cloned.commits) == {*indexed.commits, first["commit_id"], second["commit_id"]}
    assert cloned.manifests[full["snapshot_id"]] == full_manifest
    assert cloned.manifests[delta["snapshot_id"]] == delta_manifest
    # Every object named was promoted by the index: nothing to carry in the landed bundle.
    assert landed(hub, result)["objects"] == []


def test_objects_stored_by_upload_are_served_and_not_carried(hub: Hub) -> None:
    new = {"new/a.txt": b"new a\n", "new/b.txt": b"new b\n"}
    uploaded = [(sha256_hex(data), data) for data in new.values()]
    upload_objects(hub, REPO, uploaded)
    for object_id, _ in uploaded:
        assert object_rows(hub, [object_id])[object_id].storage_uri == hub.store.uri_for(object_key(object_id))
    snapshot = full_snapshot({path: sha256_hex(data) for path, data in new.items()})
    commit = make_commit(snapshot["snapshot_id"])

    result = thin_push(hub, REPO, "main", [commit], [snapshot], force=False)

    assert all(read_object(hub, REPO, object_id) == data for object_id, data in uploaded)
    assert landed(hub, result)["objects"] == []


# --- refusals: nothing visible, nothing uploaded ----------------------------------------------


def test_a_snapshot_naming_unregistered_objects_is_refused_without_a_trace(file_hub: Hub) -> None:
    hub = file_hub
    head = replay_recorded(hub)[-1].head_commit_id
    manifest = recorded(RECORDED[-1][1])["bundle"]["snapshots"][0]["manifest"]
    # One id nobody has, one registered only for another repo: both unknown to REPO.
    other_repo_object = b"only in repo-b\n"
    upload_objects(hub, "repo-b", [(sha256_hex(other_repo_object), other_repo_object)])
    ghostly = {**manifest, "ghost.txt": fake_id("ghost"), "other.txt": sha256_hex(other_repo_object)}
    snapshot = full_snapshot(ghostly)
    commit = make_commit(snapshot["snapshot_id"], parents=[head])
    before = digest(hub)

    with pytest.raises(HubError) as refused:
        thin_push(hub, REPO, "main", [commit], [snapshot], force=True)
    assert str(refused.value) == "2 snapshot object(s) not registered"
    assert digest(hub) == before


Mutation = Callable[[Raw, Raw, str], tuple[list[Raw], list[Raw]]]


def set_at(record: Raw, path: str | tuple[str, ...], value: Any) -> Raw:
    """A copy of `record` with the value at `path` (a key, or keys into nested maps) replaced."""
    first, *rest = (path,) if isinstance(path, str) else path
    return {**record, first: set_at(record[first], tuple(rest), value) if rest else value}


def with_commit(path: str, value: Any) -> Mutation:
    return lambda commit, snapshot, head: ([set_at(commit, path, value)], [snapshot])


def with_snapshot(path: str | tuple[str, ...], value: Any) -> Mutation:
    return lambda commit, snapshot, head: ([commit], [set_at(snapshot, path, value)])


def with_snapshot_id(snapshot_id: str) -> Mutation:
    """The snapshot under another id, and the commit naming it so."""
    return lambda commit, snapshot, head: (
        [set_at(commit, "snapshot_id", snapshot_id)],
        [set_at(snapshot, "snapshot_id", snapshot_id)],
    )


def with_file(path: str) -> Mutation:
    """The snapshot (and its commit) also naming a registered object at `path`."""

    def mutate(commit: Raw, snapshot: Raw, head: str) -> tuple[list[Raw], list[Raw]]:
        manifest = {**snapshot["manifest"], path: next(iter(snapshot["manifest"].values()))}
        bad = {**snapshot, "manifest": manifest, "snapshot_id": spec_snapshot_id(manifest)}
        return [{**commit, "snapshot_id": bad["snapshot_id"]}], [bad]

    return mutate


def cycle(commit: Raw, snapshot: Raw, head: str) -> tuple[list[Raw], list[Raw]]:
    a, b = fake_id("a"), fake_id("b")
    first = make_commit(snapshot["snapshot_id"], parents=[b], commit_id=a)
    return [first, make_commit(snapshot["snapshot_id"], parents=[a], commit_id=b)], [snapshot]


def delta_on_unknown_base(commit: Raw, snapshot: Raw, head: str) -> tuple[list[Raw], list[Raw]]:
    delta = raw_delta(fake_id("base"), snapshot_id=snapshot["snapshot_id"])
    return [commit], [delta]


def two_tips(commit: Raw, snapshot: Raw, head: str) -> tuple[list[Raw], list[Raw]]:
    other = make_commit(snapshot["snapshot_id"], parents=[head], message="other", committed_at=timestamp(9))
    return [commit, other], [snapshot]


HEX = fake_id("hex")
REFUSALS = [
    pytest.param(with_commit("commit_id", "HEAD"), "commits[0]", "commit_id must be 64", id="commit-id"),
    pytest.param(
        with_commit("parent_commit_id", HEX.upper()), "commits[0]", "parent_commit_id must be", id="parent-id"
    ),
    pytest.param(with_commit("snapshot_id", HEX[:63]), "commits[0]", "snapshot_id must be 64", id="commit-snapshot-id"),
    pytest.param(with_snapshot("snapshot_id", 5), "snapshots[0]", "snapshot_id must be 64", id="snapshot-id"),
    pytest.param(
        with_snapshot(("manifest", "x.txt"), "abc"), "snapshots[0]", "manifest['x.txt'] must be", id="object-id"
    ),
    pytest.param(with_commit("message", 5), "commits[0]", "message must be a string", id="message-type"),
    pytest.param(with_snapshot("manifest", ["a"]), "snapshots[0]", "manifest must be a map", id="manifest-type"),
    pytest.param(with_file("/etc/passwd"), "snapshots[0]", "is absolute", id="absolute-path"),
    pytest.param(with_file("a/../b"), "snapshots[0]", "contains '..'", id="dotdot-path"),
    pytest.param(with_file("a\0b"), "snapshots[0]", "contains a NUL or a backslash", id="nul-path"),
    pytest.param(with_file("a\\b"), "snapshots[0]", "contains a NUL or a backslash", id="backslash-path"),
    pytest.param(with_file("x" * 4097), "snapshots[0]", "longer than 4096 bytes", id="long-path"),
    pytest.param(
        with_commit("snapshot_id", HEX), "commit ", f"snapshot {HEX} is neither in the bundle", id="no-snapshot"
    ),
    pytest.param(
        with_commit("parent_commit_id", HEX), "commit ", f"parent {HEX} is a commit of neither", id="unknown-parent"
    ),
    pytest.param(with_snapshot_id(HEX), f"snapshot {HEX}", "snapshot_id is not the sha256", id="snapshot-mismatch"),
    pytest.param(lambda c, s, h: ({"a": c}, [s]), "commits", "must be an array", id="commits-map"),
    pytest.param(lambda c, s, h: ([c], "snapshots"), "snapshots", "must be an array", id="snapshots-str"),
    pytest.param(lambda c, s, h: ([c], [s, 7]), "snapshots[1]", "must be a map, not int", id="snapshot-int"),
    pytest.param(cycle, "commit ", "cycle in commit parents", id="parent-cycle"),
    pytest.param(delta_on_unknown_base, "snapshot ", "base", id="unknown-delta-base"),
]


@pytest.fixture
def next_push(file_hub: Hub) -> Iterator[tuple[Hub, Raw, Raw, str]]:
    """The recorded history pushed, and a good next commit on it whose objects are registered."""
    head = replay_recorded(file_hub)[-1].head_commit_id
    commit, snapshot = child(file_hub, [head], {"next.txt": b"next\n"}, "next")
    yield file_hub, commit, snapshot, head


@pytest.mark.parametrize(("mutate", "record", "reason"), REFUSALS)
def test_a_push_breaking_a_rule_is_refused_naming_it_without_a_trace(
    next_push: tuple[Hub, Raw, Raw, str], mutate: Mutation, record: str, reason: str
) -> None:
    hub, commit, snapshot, head = next_push
    commits, snapshots = mutate(commit, snapshot, head)
    before = digest(hub)

    with pytest.raises(BundleRefused) as refused:
        thin_push(hub, REPO, "main", commits, snapshots, force=True)

    message = str(refused.value)
    assert message.startswith(f"bundle pushed to {REPO}/main: {record}") and reason in message, message
    assert "\n" not in message
    assert digest(hub) == before
    # The good push still goes through after the refusals.
    assert thin_push(hub, REPO, "main", [commit], [snapshot], force=False).head_commit_id == commit["commit_id"]


def test_more_commits_than_the_limit_are_refused(next_push: tuple[Hub, Raw, Raw, str]) -> None:
    hub, commit, snapshot, _ = next_push
    hub.limits = Limits(max_commits=1)
    later = make_commit(snapshot["snapshot_id"], parents=[commit["commit_id"]], message="later")
    before = digest(hub)
    with pytest.raises(BundleRefused, match=f"^bundle pushed to {REPO}/main: commits: .*limit"):
        thin_push(hub, REPO, "main", [commit, later], [snapshot], force=False)
    assert digest(hub) == before


def test_several_tips_none_alone_naming_the_branch_are_refused(next_push: tuple[Hub, Raw, Raw, str]) -> None:
    hub, commit, snapshot, head = next_push
    commits, snapshots = two_tips(commit, snapshot, head)
    before = digest(hub)
    with pytest.raises(HubError, match=f"^bundle pushed to {REPO}/main: 2 tips"):
        thin_push(hub, REPO, "main", commits, snapshots, force=False)
    assert digest(hub) == before
    # The commit whose `branch` field names the pushed branch is the tip.
    named = [commits[0], {**commits[1], "branch": "elsewhere"}]
    assert thin_push(hub, REPO, "main", named, snapshots, force=False).head_commit_id == commit["commit_id"]


# --- concurrency ------------------------------------------------------------------------------

TRIALS = 8
PUSHERS = 4


def test_concurrent_pushes_of_diverging_tips_exactly_one_wins_and_losers_leave_nothing(file_hub: Hub) -> None:
    hub = file_hub
    head = push_one(hub, child(hub, [], {"root.txt": b"root"}, "root")).head_commit_id
    winners = [head]
    for trial in range(TRIALS):
        pushes = [child(hub, [head], {"f.txt": f"{trial}/{i}".encode()}, f"t{trial} p{i}") for i in range(PUSHERS)]
        outcomes = at_once([partial(push_one, hub, push) for push in pushes])
        won = [o for o in outcomes if isinstance(o, ThinPushResult)]
        lost = [o for o in outcomes if not isinstance(o, ThinPushResult)]
        assert len(won) == 1, f"trial {trial}: {len(won)} winners: {outcomes}"
        assert all(type(e) is NotFastForward for e in lost), lost
        head = won[0].head_commit_id
        assert hub.catalog.branch_head(REPO, "main") == head
        winners.append(head)
        losers = [c["commit_id"] for c, _ in pushes if c["commit_id"] != head]
        assert hub.catalog.known_commits(REPO, losers) == set()
        loser_snapshots = [s["snapshot_id"] for c, s in pushes if c["commit_id"] != head]
        assert hub.catalog.snapshot_rows(REPO, loser_snapshots) == []
    assert set(hub.catalog.known_commits(REPO, winners)) == set(winners)
    assert len(uploads(hub)) == len(bundle_statuses(hub, REPO)) == TRIALS + 1
    assert list(hub.store.list(QUARANTINE)) == []


def test_the_same_new_history_pushed_to_several_branches_at_once_lands_on_each(file_hub: Hub) -> None:
    hub = file_hub
    root = child(hub, [], {"a.txt": b"a"}, "root")
    tip = child(hub, [root[0]["commit_id"]], {"a.txt": b"b", "b.txt": b"b"}, "tip")
    branches = [f"b{i}" for i in range(PUSHERS)]
    history = ([root[0], tip[0]], [root[1], tip[1]])

    outcomes = at_once([partial(thin_push, hub, REPO, branch, *history, force=False) for branch in branches])

    assert all(isinstance(o, ThinPushResult) for o in outcomes), outcomes
    assert hub.catalog.branch_heads(REPO) == dict.fromkeys(branches, tip[0]["commit_id"])
    # One bundle: the same records and objects make the same bytes.
    assert len({o.partition_key for o in outcomes if isinstance(o, ThinPushResult)}) == 1
    assert len(uploads(hub)) == len(bundle_statuses(hub, REPO)) == 1


def test_a_push_overtaken_by_a_fast_forward_it_descends_from_is_accepted_on_the_new_head(
    file_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = file_hub
    root = push_one(hub, child(hub, [], {"a.txt": b"a"}, "root")).head_commit_id
    first = child(hub, [root], {"a.txt": b"first"}, "first")
    second = child(hub, [first[0]["commit_id"]], {"a.txt": b"second"}, "second")
    # `first` lands between the read of the branch head and the compare-and-swap of the push of
    # `first` and `second`.
    accept = hub.catalog.accept_push
    overtaken: list[ThinPushResult] = []

    def overtaking(pushed: Any) -> bool:
        if pushed.head == second[0]["commit_id"] and not overtaken:
            overtaken.append(push_one(hub, first))
        return accept(pushed)

    monkeypatch.setattr(hub.catalog, "accept_push", overtaking)
    result = thin_push(hub, REPO, "main", [first[0], second[0]], [first[1], second[1]], force=False)

    assert overtaken[0].head_commit_id == first[0]["commit_id"]
    assert result.head_commit_id == second[0]["commit_id"] == hub.catalog.branch_head(REPO, "main")
    assert result.message.startswith(f"main {first[0]['commit_id'][:12]} -> ")
    # A branch that never settles: the push gives up with a conflict and leaves nothing.
    third = child(hub, [second[0]["commit_id"]], {"a.txt": b"third"}, "third")
    monkeypatch.setattr(hub.catalog, "accept_push", lambda pushed: False)
    before = digest(hub)
    with pytest.raises(BranchConflict, match=f"branch 'main' of {REPO} kept moving"):
        push_one(hub, third)
    assert digest(hub) == before


# --- the index -----------------------------------------------------------------------------------


def test_the_landed_bundle_indexes_promoting_inline_objects_and_keeping_the_pushed_rows(
    file_hub: Hub, file_index: Indexer
) -> None:
    hub = file_hub
    contents = register_recorded(hub, RECORDED[0][0])
    first = replay(hub, RECORDED[0][1])
    assert first.partition_key is not None
    inline = object_rows(hub, list(contents))
    assert {row.storage_uri for row in inline.values()} == {PENDING}
    pushed = pushed_state(hub)

    file_index(first.partition_key)

    assert pushed_state(hub) == pushed
    ((bundle_row),) = hub.catalog.bundle_rows(REPO)
    assert (bundle_row.status, bundle_row.branch) == ("indexed", "main")
    assert bundle_row.stats["commits_written"] == 2 and bundle_row.stats["objects_written"] == len(contents)
    promoted = object_rows(hub, list(contents))
    assert all(
        row.storage_uri == hub.store.uri_for(object_key(i)) and row.content_cache is None for i, row in promoted.items()
    )
    assert all(hub.store.get(object_key(i)) == data for i, data in contents.items())

    # The next push carries only the objects still inline; the rest it names are stored.
    new_contents = register_recorded(hub, RECORDED[1][0])
    second = replay(hub, RECORDED[1][1])
    assert second.partition_key is not None
    assert {o["object_id"] for o in landed(hub, second)["objects"]} == set(new_contents)
    pushed = pushed_state(hub)
    file_index(second.partition_key)
    assert pushed_state(hub) == pushed
    assert bundle_statuses(hub, REPO) == {
        key.split("/")[1]: "indexed" for key in (first.partition_key, second.partition_key)
    }
    bundle = recorded(RECORDED[1][1])["bundle"]
    assert_fetchable(hub, bundle["commits"], bundle["snapshots"], {**contents, **new_contents})

    # Idempotent: indexing both again leaves the catalog and the store as they are.
    indexed = digest(hub)
    file_index(first.partition_key, second.partition_key)
    assert digest(hub) == indexed
