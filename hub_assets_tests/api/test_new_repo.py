"""A `/push` to an owner/slug no write has made yet makes the repo only if the push is accepted:
its row is written in the transaction that moves the branch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from hub_assets.catalog import schema

from ..bundle.builders import fake_id, full_snapshot, make_commit, timestamp
from ..polling import wait_until
from .conftest import ApiServer
from .test_auth import catalog_dump


def first_push(*, parents: list[str] | None = None) -> dict[str, Any]:
    """A push needing no uploaded object (its snapshot is empty), of one commit naming `midi`."""
    snapshot = full_snapshot({})
    commit = make_commit(snapshot["snapshot_id"], parents=parents or (), committed_at=timestamp(1), domain="midi")
    return {"bundle": {"commits": [commit], "snapshots": [snapshot], "objects": []}, "branch": "main", "force": False}


def repo_rows(api: ApiServer, slug: str) -> list[sa.Row]:
    with api.hub.catalog.engine.connect() as conn:
        return list(conn.execute(sa.select(schema.repos).where(schema.repos.c.slug == slug)))


def test_a_refused_first_push_leaves_no_repo(file_api: ApiServer) -> None:
    file_api.token("alice")
    before = catalog_dump(file_api)

    reply = file_api.call("POST", "/alice/fresh/push", first_push(parents=[fake_id("nobody has it")]), owner="alice")

    assert (reply.status, reply.body["ok"]) == (200, False), reply.body
    assert "is a commit of neither the push nor repo" in reply.body["message"]
    assert catalog_dump(file_api) == before
    assert file_api.call("GET", "/alice/fresh/refs").status == 404


def test_an_accepted_first_push_makes_the_repo_with_the_domain_its_commits_name(file_api: ApiServer) -> None:
    push = first_push()
    head = push["bundle"]["commits"][0]["commit_id"]

    reply = file_api.call("POST", "/alice/fresh/push", push, owner="alice")

    assert (reply.status, reply.body["ok"], reply.body["branch_heads"]) == (200, True, {"main": head}), reply.body
    refs = file_api.call("GET", "/alice/fresh/refs").body
    assert (refs["domain"], refs["branch_heads"]) == ("midi", {"main": head})
    assert [row.repo_id for row in repo_rows(file_api, "fresh")] == [refs["repo_id"]]


def pushes_waiting_on_a_lock(api: ApiServer) -> int:
    query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    with api.hub.catalog.engine.connect() as conn:
        return conn.execute(sa.text(query)).scalar_one()


def test_two_first_pushes_racing_make_one_repo_and_both_land(file_api: ApiServer) -> None:
    """Both pushes find no repo, then wait at their commit point on a row of the same name this
    test holds uncommitted; it rolls back, one push makes the repo, the other goes into it."""
    push = first_push()
    head = push["bundle"]["commits"][0]["commit_id"]
    file_api.token("alice")
    held = sa.insert(schema.repos).values(repo_id="held", owner="alice", slug="race", default_branch="main")
    with file_api.hub.catalog.engine.connect() as holder, ThreadPoolExecutor(max_workers=2) as pool:
        holder.execute(held)
        pushes = [pool.submit(file_api.call, "POST", "/alice/race/push", push, owner="alice") for _ in range(2)]
        wait_until(lambda: pushes_waiting_on_a_lock(file_api) == 2, 60, what="both pushes to wait on the held name")
        holder.rollback()
        replies = [future.result() for future in pushes]

    assert [(r.status, r.body["ok"], r.body["branch_heads"]) for r in replies] == [(200, True, {"main": head})] * 2
    assert sorted(r.body["message"].split(" at ")[0] for r in replies) == ["main already", "main created"]
    (repo,) = repo_rows(file_api, "race")
    assert file_api.call("GET", "/alice/race/refs").body["repo_id"] == repo.repo_id
