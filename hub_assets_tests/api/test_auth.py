"""Writes need a token the hub made for the repo's owner; reads need none. Tokens are kept only
as their sha256."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from hub_assets.catalog import schema
from hub_assets.hub.repos import create_repo, find_repo

from .conftest import ApiServer
from .recorded import recorded

WRITES = [2, 3, 4, 5]  # the recorded filter-objects, presign, push/objects, push


def catalog_dump(api: ApiServer) -> str:
    with api.hub.catalog.engine.connect() as conn:
        tables = [schema.objects, schema.object_refs, schema.repos, schema.tokens, schema.commits, schema.branches]
        return repr([list(conn.execute(sa.select(table))) for table in tables])


@pytest.mark.parametrize("seq", WRITES)
@pytest.mark.parametrize(
    ("authorization", "status", "reason"),
    [
        (None, 401, "writing to alice's repos needs a token: Authorization: Bearer <token>"),
        ("Basic abc", 401, "the Authorization header must be 'Bearer <token>'"),
        ("Bearer mh_not-a-token-of-this-hub", 401, "the token is not one this hub made"),
        ("bob", 403, "the token writes to bob's repos, not to alice's"),
    ],
    ids=["none", "not-bearer", "unknown", "other-owner"],
)
def test_write_without_the_owners_token_is_refused_and_writes_nothing(
    file_api: ApiServer, seq: int, authorization: str | None, status: int, reason: str
) -> None:
    if authorization == "bob":
        authorization = f"Bearer {file_api.token('bob')}"
    request = recorded(seq)
    headers = {k: v for k, v in request.headers.items() if k != "Authorization"}
    if authorization:
        headers["Authorization"] = authorization
    before = catalog_dump(file_api)

    reply = file_api.request(request.method, request.path, request.body, headers)

    assert reply.status == status
    assert reply.body["message"].startswith(reason) and "\n" not in reply.body["message"]
    assert reply.body["detail"] == reply.body["message"]
    if status == 401:
        assert reply.headers["www-authenticate"] == "Bearer"
    assert catalog_dump(file_api) == before, "a refused write leaves no trace"
    assert file_api.call("GET", "/alice/demo/refs").status == 404, "still serving, and no repo was made"


def test_reads_need_no_token_and_ignore_a_bad_one(file_api: ApiServer) -> None:
    repo = create_repo(file_api.hub, "alice", "demo", "midi")
    for headers in ({}, {"Authorization": "Bearer nonsense"}):
        reply = file_api.request("GET", "/alice/demo/refs", headers=headers)
        assert reply.status == 200
        assert reply.body == {"repo_id": repo.repo_id, "domain": "midi", "default_branch": "main", "branch_heads": {}}


def test_tokens_are_stored_only_as_their_sha256(file_api: ApiServer) -> None:
    token = file_api.token("alice")
    with file_api.hub.catalog.engine.connect() as conn:
        rows = list(conn.execute(sa.select(schema.tokens.c.token_sha256, schema.tokens.c.owner)))
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), "alice")]
    assert token not in catalog_dump(file_api)


def test_a_token_writes_to_every_repo_of_its_owner_and_makes_new_ones(file_api: ApiServer) -> None:
    for slug in ("demo", "second"):
        reply = file_api.call("POST", f"/alice/{slug}/push/objects", recorded(4).content, owner="alice")
        assert reply.status == 200, reply.body
        assert find_repo(file_api.hub, "alice", slug) is not None
