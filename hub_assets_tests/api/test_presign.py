"""Large objects by presigned PUT: on S3, URLs into quarantine; the bytes are verified and moved
write-once into objects/ when a push names them, and refuse that push when they are wrong. On a
file store every object goes inline."""

from __future__ import annotations

import hashlib
import http.client
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import pytest

from hub_assets.catalog import schema
from hub_assets.hub import Hub, HubError, read_object
from hub_assets.hub.presigned import claim_presigned
from hub_assets.hub.repos import find_repo, repo_for_write
from hub_assets.store import FileStore, object_key, presigned_key

from .conftest import ApiServer
from .recorded import recorded, recorded_objects
from .test_auth import catalog_dump

LARGE_ID = recorded(3).content["object_ids"][0]  # the recorded push's 300,000-byte object


def put(url: str, data: bytes) -> int:
    """The raw bytes, no token. Without the form Content-Type urllib would add (the client's
    urllib does): moto parses such a body as a form and stalls on binary bytes; S3 does not."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request("PUT", f"{parts.path}?{parts.query}", body=data)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def presign(api: ApiServer) -> str:
    reply = api.request("POST", recorded(3).path, recorded(3).body, recorded(3).headers_with(api.token("alice")))
    assert reply.status == 200
    assert reply.body["inline"] == [] and list(reply.body["presigned"]) == [LARGE_ID]
    return reply.body["presigned"][LARGE_ID]


def test_file_store_answers_every_object_inline(file_api: ApiServer) -> None:
    reply = file_api.request(
        "POST", recorded(3).path, recorded(3).body, recorded(3).headers_with(file_api.token("alice"))
    )
    assert (reply.status, reply.body) == (200, {"presigned": {}, "inline": [LARGE_ID]})


def test_presigned_put_lands_in_quarantine_and_a_claim_verifies_and_registers_it(s3_api: ApiServer) -> None:
    data = recorded_objects(4)[LARGE_ID]
    url = presign(s3_api)
    repo_id = find_repo(s3_api.hub, "alice", "demo").repo_id
    assert put(url, data) == 200
    assert s3_api.hub.store.get(presigned_key(repo_id, LARGE_ID)) == data
    assert not s3_api.hub.store.exists(object_key(LARGE_ID)), "not an object before a push claims it"

    assert claim_presigned(s3_api.hub, repo_id, [LARGE_ID, "0" * 64]) == 1

    assert s3_api.hub.store.get(object_key(LARGE_ID)) == data
    assert read_object(s3_api.hub, repo_id, LARGE_ID) == data
    assert not s3_api.hub.store.exists(presigned_key(repo_id, LARGE_ID))
    assert claim_presigned(s3_api.hub, repo_id, [LARGE_ID]) == 0, "claimed once"


def test_wrong_bytes_put_to_a_presigned_url_refuse_the_push_naming_them(s3_api: ApiServer) -> None:
    url = presign(s3_api)
    repo_id = find_repo(s3_api.hub, "alice", "demo").repo_id
    assert put(url, b"not the object's bytes") == 200
    before = catalog_dump(s3_api)

    reply = s3_api.request("POST", recorded(5).path, recorded(5).body, recorded(5).headers_with(s3_api.token("alice")))

    assert reply.status == 200
    assert reply.body["ok"] is False
    assert reply.body["message"] == f"presigned upload refused: object '{LARGE_ID}': bytes do not hash to its id"
    assert catalog_dump(s3_api) == before, "no row, no ref, no commit, no branch"
    assert not s3_api.hub.store.exists(object_key(LARGE_ID))
    assert not s3_api.hub.store.exists(presigned_key(repo_id, LARGE_ID)), "the wrong bytes are removed"


def test_presigned_upload_over_the_object_size_limit_is_refused(s3_api: ApiServer) -> None:
    url = presign(s3_api)
    repo_id = find_repo(s3_api.hub, "alice", "demo").repo_id
    assert put(url, recorded_objects(4)[LARGE_ID]) == 200
    s3_api.hub.limits = type(s3_api.hub.limits)(max_object_bytes=1000)

    with pytest.raises(HubError, match="its presigned upload is larger than 1000 bytes"):
        claim_presigned(s3_api.hub, repo_id, [LARGE_ID])
    assert not s3_api.hub.store.exists(object_key(LARGE_ID))


def test_push_of_objects_uploaded_by_presigned_put_is_accepted(s3_api: ApiServer) -> None:
    """The recorded first push as a hub with presigned URLs sees it: the large object by PUT, the
    four others through /push/objects, then /push."""
    token = s3_api.token("alice")
    objects = recorded_objects(4)
    assert put(presign(s3_api), objects[LARGE_ID]) == 200
    small = [{"object_id": i, "content": data} for i, data in objects.items() if i != LARGE_ID]
    assert s3_api.call("POST", "/alice/demo/push/objects", {"objects": small}, owner="alice").status == 200

    reply = s3_api.request("POST", recorded(5).path, recorded(5).body, recorded(5).headers_with(token))

    assert (reply.status, reply.body["ok"]) == (200, True), reply.body
    repo_id = find_repo(s3_api.hub, "alice", "demo").repo_id
    assert read_object(s3_api.hub, repo_id, LARGE_ID) == objects[LARGE_ID]
    with s3_api.hub.catalog.engine.connect() as conn:
        assert len(list(conn.execute(schema.commits.select()))) == 2


def test_one_wrong_presigned_upload_refuses_the_claim_of_them_all(s3_api: ApiServer) -> None:
    """The uploads a push names are claimed together: the wrong one, named last, is removed and
    refuses the push, and none of the good ones before it is stored or registered."""
    hub = s3_api.hub
    repo_id = repo_for_write(hub, "alice", "demo").repo_id
    good = {hashlib.sha256(data).hexdigest(): data for data in (b"first good upload", b"second good upload")}
    wrong = hashlib.sha256(b"what the client meant").hexdigest()
    for object_id, data in [*good.items(), (wrong, b"what arrived instead")]:
        hub.store.put(presigned_key(repo_id, object_id), data)

    with pytest.raises(HubError, match=f"^presigned upload refused: object '{wrong}': bytes do not hash to its id$"):
        claim_presigned(hub, repo_id, [*sorted(good), wrong])

    assert hub.catalog.registered_objects(repo_id, [*good, wrong]) == set()
    assert not any(hub.store.exists(object_key(object_id)) for object_id in [*good, wrong])
    assert not hub.store.exists(presigned_key(repo_id, wrong)), "the wrong bytes are removed"
    assert all(hub.store.exists(presigned_key(repo_id, object_id)) for object_id in good), "left for the next push"


class _ClaimedWhileListed(FileStore):
    """A file store on which a racing push of the repo claims `first` after a claim listed the
    presigned uploads and before it reads them."""

    def __init__(self, root: Path, hub: Hub, repo_id: str, first: str) -> None:
        super().__init__(root)
        self.racing = (hub, repo_id, first)

    def get_many(self, keys: Sequence[str], in_flight: int) -> dict[str, bytes]:
        if self.racing:
            hub, repo_id, first = self.racing
            self.racing = None
            assert claim_presigned(hub, repo_id, [first]) == 1
        return super().get_many(keys, in_flight)


def test_an_upload_claimed_by_a_racing_push_meanwhile_leaves_the_rest_claimed(file_api: ApiServer) -> None:
    hub = file_api.hub
    repo_id = repo_for_write(hub, "alice", "demo").repo_id
    uploads = {hashlib.sha256(data).hexdigest(): data for data in (b"claimed by the racing push", b"by this one")}
    for object_id, data in uploads.items():
        hub.store.put(presigned_key(repo_id, object_id), data)
    first = sorted(uploads)[0]
    racing = Hub(hub.catalog, _ClaimedWhileListed(hub.store.root, hub, repo_id, first))

    assert claim_presigned(racing, repo_id, uploads) == 1

    assert hub.catalog.registered_objects(repo_id, uploads) == set(uploads)
    assert all(read_object(hub, repo_id, object_id) == data for object_id, data in uploads.items())
    assert not any(hub.store.exists(presigned_key(repo_id, object_id)) for object_id in uploads)


def test_a_push_refused_for_its_commits_claims_no_presigned_upload(s3_api: ApiServer) -> None:
    data = recorded_objects(4)[LARGE_ID]
    assert put(presign(s3_api), data) == 200
    repo_id = find_repo(s3_api.hub, "alice", "demo").repo_id
    content = recorded(5).content
    content["bundle"]["commits"][1]["parent_commit_id"] = "f" * 64  # the first commit, with a parent nobody has
    before = catalog_dump(s3_api)

    reply = s3_api.call("POST", "/alice/demo/push", content, owner="alice")

    assert (reply.status, reply.body["ok"]) == (200, False), reply.body
    assert f"parent {'f' * 64} is a commit of neither the push nor repo {repo_id}" in reply.body["message"]
    assert catalog_dump(s3_api) == before, "nothing registered"
    assert s3_api.hub.store.get(presigned_key(repo_id, LARGE_ID)) == data, "still waiting for a good push"
    assert not s3_api.hub.store.exists(object_key(LARGE_ID))
