"""Every malformed request gets a 4xx with one msgpack line naming what and where; nothing is
written, and the server goes on serving. Only a fault of the hub itself is a 500."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest

from hub_assets.api import ApiLimits
from hub_assets.api import routes as api_routes
from hub_assets.hub.repos import create_repo

from .conftest import ApiServer
from .recorded import recorded
from .test_auth import catalog_dump

GOOD_ID = "0" * 64
OBJECT = b"an object\n"
OBJECT_ID = hashlib.sha256(OBJECT).hexdigest()
LIMITS = ApiLimits(max_body_bytes=100_000, max_read_body_bytes=2_000, max_objects_per_request=3)


def packed(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def push_body(**changes: Any) -> bytes:
    body = recorded(5).content
    body.update(changes)
    return packed(body)


# (path under /alice/demo, body bytes, status, the start of the one-line message)
CASES: dict[str, tuple[str, bytes, int, str]] = {
    "empty-body": ("push/objects", b"", 400, "empty body: the request must be a msgpack map"),
    "not-msgpack": ("push/objects", b"\xc1", 400, "body is not msgpack: FormatError"),
    "truncated": ("push/objects", packed({"objects": []})[:-1], 400, "body is not msgpack: Unpack failed"),
    "trailing-bytes": ("filter-objects", packed({"object_ids": []}) + b"\x00", 400, "body is not msgpack"),
    "not-a-map": ("push/objects", packed([1, 2]), 400, "body must be a msgpack map, not array"),
    "bad-utf8": ("filter-objects", b"\x81\xaaobject_ids\x91\xa2\xff\xfe", 400, "a string of the body is not valid"),
    "int-map-key": ("push/objects", b"\x81\x01\x02", 400, "body is not msgpack: int is not allowed for map key"),
    "objects-not-array": ("push/objects", packed({"objects": {}}), 400, "objects must be an array, not map"),
    "object-not-map": ("push/objects", packed({"objects": [[1]]}), 400, "objects[0] must be a map, not array"),
    "object-id-int": (
        "push/objects",
        packed({"objects": [{"object_id": 7, "content": b""}]}),
        400,
        "objects[0].object_id: 7 is not 64 lowercase hex characters",
    ),
    "object-id-uppercase": (
        "push/objects",
        packed({"objects": [{"object_id": OBJECT_ID.upper(), "content": OBJECT}]}),
        400,
        "objects[0].object_id: ",
    ),
    "content-str": (
        "push/objects",
        packed({"objects": [{"object_id": OBJECT_ID, "content": "an object\n"}]}),
        400,
        "objects[0].content must be bin, not string",
    ),
    "hash-mismatch": (
        "push/objects",
        packed({"objects": [{"object_id": OBJECT_ID, "content": OBJECT}, {"object_id": GOOD_ID, "content": b"x"}]}),
        400,
        f"object '{GOOD_ID}': bytes do not hash to its id",
    ),
    "too-many-objects": (
        "push/objects",
        packed({"objects": [{"object_id": OBJECT_ID, "content": OBJECT}] * 4}),
        400,
        "objects: 4 objects, more than the limit of 3 per request",
    ),
    "oversized-body": (
        "push/objects",
        packed({"objects": [{"object_id": OBJECT_ID, "content": b"x" * 100_001}]}),
        413,
        "body of 100",
    ),
    "filter-ids-not-array": ("filter-objects", packed({"object_ids": "abc"}), 400, "object_ids must be an array"),
    "filter-short-id": ("filter-objects", packed({"object_ids": ["abc"]}), 400, "object_ids[0]: 'abc' is not 64"),
    "presign-get": (
        "presign",
        packed({"object_ids": [GOOD_ID], "direction": "get"}),
        400,
        "direction 'get': only 'put' is presigned",
    ),
    "push-bundle-missing": ("push", packed({"branch": "main"}), 400, "bundle must be a map, not nil"),
    "push-bad-branch": ("push", push_body(branch="../x"), 400, "branch: branch name must not contain NUL or '..'"),
    "push-force-str": ("push", push_body(force="yes"), 400, "force must be a boolean, not string"),
    "push-with-objects": (
        "push",
        push_body(bundle={"commits": [], "snapshots": [], "objects": [{"object_id": OBJECT_ID}]}),
        400,
        "bundle.objects must be empty: upload objects through /push/objects first",
    ),
    "push-commit-not-map": (
        "push",
        push_body(bundle={"commits": ["x"], "snapshots": []}),
        400,
        "bundle.commits[0] must be a map, not string",
    ),
    "negotiate-oversized": ("negotiate", packed({"want": [GOOD_ID] * 40, "have": []}), 413, "body of 2"),
    "fetch-want-missing": ("fetch", packed({"have": []}), 400, "want must be an array of ids, not nil"),
}


@pytest.fixture
def api(api_with_limits: Callable[[ApiLimits], Iterator[ApiServer]]) -> Iterator[ApiServer]:
    for server in api_with_limits(LIMITS):
        create_repo(server.hub, "alice", "demo")
        yield server


@pytest.mark.parametrize("case", list(CASES))
def test_bad_request_is_a_one_line_4xx_that_writes_nothing(api: ApiServer, case: str) -> None:
    endpoint, body, status, reason = CASES[case]
    token = api.token("alice")
    before = catalog_dump(api)
    headers = {"Content-Type": "application/x-msgpack", "Authorization": f"Bearer {token}"}

    reply = api.request("POST", f"/alice/demo/{endpoint}", body, headers)

    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/x-msgpack"
    message = reply.body["message"]
    assert message.startswith(reason), message
    assert "\n" not in message and reply.body["detail"] == message and reply.body["ok"] is False
    assert catalog_dump(api) == before, "nothing written"
    assert not list(api.hub.store.list("")), "nothing stored"
    assert api.call("GET", "/alice/demo/refs").status == 200, "still serving"


@pytest.mark.parametrize(
    ("method", "path", "status", "reason"),
    [
        ("GET", "/alice/unknown/refs", 404, "repo alice/unknown not found"),
        ("POST", "/alice/unknown/fetch", 404, "repo alice/unknown not found"),
        ("POST", "/alice/unknown/negotiate", 404, "repo alice/unknown not found"),
        ("GET", "/al!ce/demo/refs", 400, "owner 'al!ce' must be 1-64 of [A-Za-z0-9._-]"),
        ("GET", "/alice/../refs", 400, "slug '..' must be 1-64 of [A-Za-z0-9._-], not '.' or '..'"),
        ("GET", f"/alice/{'s' * 65}/refs", 400, "slug 'sss"),
        ("GET", "/alice/demo/push", 405, "GET /alice/demo/push: Method Not Allowed"),
        ("GET", "/alice", 404, "GET /alice: Not Found"),
    ],
)
def test_unknown_repos_bad_names_and_routes_are_msgpack_4xx(
    api: ApiServer, method: str, path: str, status: int, reason: str
) -> None:
    body = packed({"want": [GOOD_ID], "have": []}) if method == "POST" else None
    reply = api.request(method, path, body)
    assert reply.status == status
    assert reply.body["message"].startswith(reason), reply.body


def test_a_fault_of_the_hub_is_a_logged_500_in_msgpack(
    api: ApiServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("the catalog is on fire")

    monkeypatch.setattr(api_routes, "find_repo", broken)
    reply = api.call("GET", "/alice/demo/refs")
    assert (reply.status, reply.body["message"]) == (500, "internal error (logged by the hub)")
    assert "the catalog is on fire" in caplog.text
    monkeypatch.undo()
    assert api.call("GET", "/alice/demo/refs").status == 200
