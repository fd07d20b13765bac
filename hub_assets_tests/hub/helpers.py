"""What the sync-path tests share: the real fixtures' ground truth, catalog reads, pushes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack
import sqlalchemy as sa

from hub_assets.bundle import decoded_bytes
from hub_assets.catalog import schema
from hub_assets.hub import Hub, HubError, PushResult, push
from hub_assets_tests.bundle.builders import (
    decode,
    full_snapshot,
    make_bundle,
    make_commit,
    make_object,
    pack,
    sha256_hex,
    timestamp,
)
from hub_assets_tests.conftest import FIXTURES_DIR

FIXTURE_NAMES = ["muse-merge.bundle", "muse-small-history.bundle"]


@dataclass(frozen=True)
class Fixture:
    """A bundle's wire bytes and what a hub must serve once it holds them."""

    name: str
    data: bytes
    raw: dict[str, Any]  # the msgpack map as sent
    contents: dict[str, bytes]  # object id -> decoded bytes
    manifests: dict[str, dict[str, str]]  # snapshot id -> resolved manifest

    @property
    def head(self) -> str:
        return self.raw["branch_heads"]["main"]

    @property
    def commits(self) -> dict[str, dict[str, Any]]:
        return {c["commit_id"]: c for c in self.raw["commits"]}


def load_bundle(data: bytes, name: str = "bundle") -> Fixture:
    decoded = decode(data, name=name)
    return Fixture(
        name=name,
        data=data,
        raw=msgpack.unpackb(data, raw=False),
        contents={o.object_id: decoded_bytes(o) for o in decoded.objects},
        manifests={s.snapshot_id: s.manifest for s in decoded.snapshots},
    )


def load_fixture(name: str) -> Fixture:
    return load_bundle((FIXTURES_DIR / name).read_bytes(), name)


def one_commit_bundle(
    files: Mapping[str, bytes], message: str = "commit", parent: str | None = None, **object_kwargs: Any
) -> tuple[bytes, str]:
    """(wire bytes, head) of a commit (a root, or a child of `parent`) whose full snapshot holds
    `files` (identity objects unless `object_kwargs` say otherwise)."""
    manifest = {path: sha256_hex(data) for path, data in files.items()}
    snapshot = full_snapshot(manifest)
    parents = [parent] if parent else []
    commit = make_commit(snapshot["snapshot_id"], parents=parents, message=message, committed_at=timestamp(1))
    objects = [make_object(data, **object_kwargs) for data in files.values()]
    bundle = make_bundle(commits=[commit], snapshots=[snapshot], objects=objects)
    return pack(bundle), commit["commit_id"]


def push_new(hub: Hub, repo_id: str, data: bytes, head: str, branch: str = "main", **kwargs: Any) -> PushResult:
    """Push `data` as bytes, moving `branch` to `head` (by default, creating the branch)."""
    return push(hub, repo_id, branch, data, head_commit_id=head, **kwargs)


@dataclass(frozen=True)
class ObjectRow:
    size_bytes: int
    storage_uri: str
    content_cache: bytes | None


def object_rows(hub: Hub, object_ids: list[str]) -> dict[str, ObjectRow]:
    table = schema.objects
    query = sa.select(table.c.object_id, table.c.size_bytes, table.c.storage_uri, table.c.content_cache).where(
        table.c.object_id.in_(object_ids)
    )
    with hub.catalog.engine.connect() as conn:
        return {
            row.object_id: ObjectRow(
                row.size_bytes, row.storage_uri, None if row.content_cache is None else bytes(row.content_cache)
            )
            for row in conn.execute(query)
        }


def count_rows(hub: Hub, table: sa.Table, repo_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(table.c.repo_id == repo_id)
    with hub.catalog.engine.connect() as conn:
        return conn.execute(query).scalar_one()


def bundle_statuses(hub: Hub, repo_id: str) -> dict[str, str]:
    """bundle_key -> status of the repo's recorded bundles."""
    return {row.bundle_key: row.status for row in hub.catalog.bundle_rows(repo_id)}


Outcome = TypeVar("Outcome")


def at_once(calls: list[Callable[[], Outcome]]) -> list[Outcome | HubError]:
    """Every call started together (on threads released by one barrier): its result, or the
    HubError it raised."""
    barrier = threading.Barrier(len(calls))

    def attempt(call: Callable[[], Outcome]) -> Outcome | HubError:
        barrier.wait(timeout=60)
        try:
            return call()
        except HubError as error:
            return error

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(attempt, calls))
