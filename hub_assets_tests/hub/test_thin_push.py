"""Thin push (SPEC §10): the real client's `/push` — commits and full snapshots after their objects —
validated by the decoder's rules and the ghost guard, fetchable the moment it returns, landed as a
bundle the index runs like any other."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
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
from .helpers import Fixture, bundle_statuses, load_bundle, load_fixture, object_rows, push_new

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
    assert third.message == f"main {second.head_commit_id[:12]} -> {third.head_commit_id[:12]} (1 commit(s), fast-forward)"
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
