"""/push/objects and /filter-objects: each object verified against its id, written once,
registered for the repo; safe under the client's 4 concurrent requests and on retry."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from hub_assets.catalog import PENDING, schema
from hub_assets.hub import read_object
from hub_assets.hub.repos import find_repo
from hub_assets.store import object_key

from .conftest import ApiServer
from .recorded import recorded, recorded_objects


def object_rows(api: ApiServer) -> dict[str, sa.Row]:
    with api.hub.catalog.engine.connect() as conn:
        return {row.object_id: row for row in conn.execute(sa.select(schema.objects))}


def ref_rows(api: ApiServer) -> list[tuple[str, str]]:
    with api.hub.catalog.engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(sa.select(schema.object_refs)))


def test_recorded_upload_registers_every_object_for_a_new_repo(file_api: ApiServer) -> None:
    """seq 2 then 4 of the recorded push: all five objects missing, then stored; the repo is
    made by its first write."""
    objects = recorded_objects(4)
    token = file_api.token("alice")

    before = file_api.request("POST", recorded(2).path, recorded(2).body, recorded(2).headers_with(token))
    assert before.status == 200 and before.headers["content-type"] == "application/x-msgpack"
    assert sorted(before.body["missing"]) == sorted(objects)
    assert find_repo(file_api.hub, "alice", "demo") is None, "filter-objects makes no repo"

    upload = file_api.request("POST", recorded(4).path, recorded(4).body, recorded(4).headers_with(token))
    assert (upload.status, upload.body) == (200, {"stored": 5, "skipped": 0})

    repo = find_repo(file_api.hub, "alice", "demo")
    assert repo is not None and repo.domain is None and repo.default_branch == "main"
    refs = file_api.call("GET", "/alice/demo/refs").body
    assert refs == {"repo_id": repo.repo_id, "domain": "code", "default_branch": "main", "branch_heads": {}}
    rows = object_rows(file_api)
    # All under the inline limit: fetchable from the catalog now, stored by the push's index run.
    assert {i: (r.storage_uri, bytes(r.content_cache)) for i, r in rows.items()} == {
        i: (PENDING, data) for i, data in objects.items()
    }
    assert ref_rows(file_api) == sorted((repo.repo_id, i) for i in objects)
    assert all(read_object(file_api.hub, repo.repo_id, i) == data for i, data in objects.items())

    after = file_api.request("POST", recorded(2).path, recorded(2).body, recorded(2).headers_with(token))
    assert after.body == {"missing": []}
    again = file_api.request("POST", recorded(4).path, recorded(4).body, recorded(4).headers_with(token))
    assert again.body == {"stored": 0, "skipped": 5}, "a retry writes nothing"
    assert len(ref_rows(file_api)) == 5


def test_objects_over_the_inline_limit_go_to_the_store(file_api: ApiServer) -> None:
    file_api.hub.inline_object_max_bytes = 1000
    objects = recorded_objects(4)
    large = {i for i, data in objects.items() if len(data) > 1000}
    assert large, "the recorded push has a 300,000-byte object"

    assert file_api.call("POST", "/alice/demo/push/objects", recorded(4).content, owner="alice").status == 200

    rows = object_rows(file_api)
    for object_id, data in objects.items():
        row = rows[object_id]
        if object_id in large:
            assert (row.storage_uri, row.content_cache) == (file_api.hub.store.uri_for(object_key(object_id)), None)
            assert file_api.hub.store.get(object_key(object_id)) == data
        else:
            assert row.storage_uri == PENDING and not file_api.hub.store.exists(object_key(object_id))


def test_filter_objects_does_not_count_another_repos_objects(file_api: ApiServer) -> None:
    assert file_api.call("POST", "/alice/demo/push/objects", recorded(4).content, owner="alice").status == 200
    ids = list(recorded_objects(4))

    other = file_api.call("POST", "/alice/other/filter-objects", {"object_ids": ids}, owner="alice")

    assert other.body == {"missing": ids}, "registered for alice/demo only: alice/other must upload them"


def test_four_concurrent_uploads_of_overlapping_objects_store_each_once(file_api: ApiServer) -> None:
    file_api.hub.inline_object_max_bytes = 2000  # half inline, half to the store
    blobs = [os.urandom(1000 + 100 * (i % 20)) for i in range(240)]
    objects = [{"object_id": hashlib.sha256(b).hexdigest(), "content": b} for b in blobs]
    # Four requests, each half of the objects, each object in two of them.
    batches = [objects[i * 60 : i * 60 + 120] + objects[: max(0, i * 60 + 120 - 240)] for i in range(4)]
    assert set(Counter(o["object_id"] for batch in batches for o in batch).values()) == {2}

    def upload(batch: list[dict]) -> dict:
        reply = file_api.call("POST", "/alice/demo/push/objects", {"objects": batch}, owner="alice")
        assert reply.status == 200, reply.body
        return reply.body

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(upload, batches))

    assert sum(a["stored"] for a in answers) == len(objects), answers
    assert sum(a["skipped"] for a in answers) == len(objects)
    rows = object_rows(file_api)
    assert sorted(rows) == sorted(o["object_id"] for o in objects)
    repo_id = find_repo(file_api.hub, "alice", "demo").repo_id
    assert ref_rows(file_api) == sorted((repo_id, o["object_id"]) for o in objects)
    for o in objects:
        assert read_object(file_api.hub, repo_id, o["object_id"]) == o["content"]
