"""The real client's recorded session (fixtures/mwp/README.md), replayed byte for byte against a
fresh hub: three pushes, a clone, a pull, and a diverged push refused with 409. Then the pushes
are indexed through their partitions like any bundle."""

from __future__ import annotations

from typing import Any

import msgpack
import sqlalchemy as sa

from hub_assets.catalog import PENDING, schema
from hub_assets.hub.repos import find_repo
from hub_assets.store import object_key, upload_key
from hub_assets_tests.hub.conftest import Indexer
from hub_assets_tests.polling import wait_until

from .conftest import ApiServer, Reply
from .recorded import Recorded, recorded_objects, recorded_session

FIRST, THIRD, FOURTH = (
    "aeb92e74acf99ad779b663cf0649f1f3888097b1741981fba1b64c6f77aa5548",
    "ed74301f0951c453a548f0640c6fdb1d6644d4a853dad208f6a5a1123547ce83",
    "ffcc1aa67151926eecc82f520dbdc5b478b40698f4338503847425517a47d92a",
)
ROOT = "d22d86e2c7462ce105e314307600267e0b7da9922e4ded7f1489aa6ed16c33d1"


def pack_of(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.body
    return msgpack.unpackb(reply.raw, raw=False)


def test_recorded_session_replays_to_the_same_answers_and_indexes(file_api: ApiServer, file_index: Indexer) -> None:
    token = file_api.token("alice")
    uploaded: dict[str, bytes] = {}
    replies: dict[int, Reply] = {}

    def send(request: Recorded) -> Reply:
        reply = file_api.request(request.method, request.path, request.body, request.headers_with(token))
        assert reply.headers["content-type"] == "application/x-msgpack", (request.seq, reply.raw[:200])
        replies[request.seq] = reply
        return reply

    for request in recorded_session():
        reply = send(request)
        endpoint = request.path.split("/", 3)[3]
        if endpoint == "filter-objects":
            sent = request.content["object_ids"]
            assert reply.body == {"missing": [i for i in sent if i not in uploaded]}, request.seq
        elif endpoint == "presign":
            assert reply.body == {"presigned": {}, "inline": request.content["object_ids"]}
        elif endpoint == "push/objects":
            objects = recorded_objects(request.seq)
            fresh = [i for i in objects if i not in uploaded]
            assert reply.body == {"stored": len(fresh), "skipped": len(objects) - len(fresh)}, request.seq
            uploaded.update(objects)

    # The repo did not exist before the first push: the client ignores that /refs answer.
    assert replies[1].status == 404
    for seq, head in ((5, FIRST), (12, THIRD), (19, FOURTH)):
        assert replies[seq].status == 200 and replies[seq].body["ok"] is True, replies[seq].body
        assert replies[seq].body["branch_heads"] == {"main": head}
    repo = find_repo(file_api.hub, "alice", "demo")
    assert repo is not None
    for seq, head in ((6, FIRST), (8, FIRST), (13, THIRD), (16, THIRD), (20, FOURTH)):
        expected = {"repo_id": repo.repo_id, "domain": "midi", "default_branch": "main", "branch_heads": {"main": head}}
        assert (replies[seq].status, replies[seq].body) == (200, expected), seq

    clone = pack_of(replies[7])
    assert {c["commit_id"] for c in clone["commits"]} == {ROOT, FIRST}
    assert {o["object_id"]: o["content"] for o in clone["objects"]} == recorded_objects(4)

    negotiation = replies[14].body
    assert negotiation["ready"] is True and set(negotiation["ack"]) <= {ROOT, FIRST}
    pull = pack_of(replies[15])
    assert [c["commit_id"] for c in pull["commits"]] == [THIRD]
    assert {o["object_id"]: o["content"] for o in pull["objects"]} == recorded_objects(11)

    assert replies[23].status == 409, replies[23].body
    assert replies[23].body["ok"] is False

    # The diverged push left no trace but its uploaded object (verified, registered, kept for a retry).
    engine = file_api.hub.catalog.engine
    with engine.connect() as conn:
        commits = set(conn.execute(sa.select(schema.commits.c.commit_id)).scalars())
        bundles = list(conn.execute(sa.select(schema.bundles.c.bundle_key, schema.bundles.c.branch)))
    assert commits == {ROOT, FIRST, THIRD, FOURTH}
    assert file_api.hub.catalog.branch_heads(repo.repo_id) == {"main": FOURTH}
    assert [branch for _, branch in bundles] == ["main"] * 3
    partitions = [f"{repo.repo_id}/{bundle_key}" for bundle_key, _ in bundles]
    # The API answers a push at its commit point and publishes its upload after the answer.
    wait_until(
        lambda: all(file_api.hub.store.exists(upload_key(p)) for p in partitions), 30, what="the pushes' uploads"
    )

    file_index(*partitions)

    with engine.connect() as conn:
        statuses = set(conn.execute(sa.select(schema.bundles.c.status)).scalars())
        objects = {row.object_id: row for row in conn.execute(sa.select(schema.objects))}
    assert statuses == {"indexed"}
    pushed = {i: data for seq in (4, 11, 18) for i, data in recorded_objects(seq).items()}
    for object_id, data in pushed.items():
        row = objects[object_id]
        assert row.storage_uri != PENDING and row.content_cache is None, object_id
        assert file_api.hub.store.get(object_key(object_id)) == data
