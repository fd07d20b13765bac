"""What a crash or a store fault may leave behind: the whole state of the catalog and store, and
what a reader could see of it."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import boto3
import sqlalchemy as sa

from hub_assets.catalog import PENDING
from hub_assets.store import FileStore, ObjectStore, object_key
from hub_assets.store.file import TEMP_DIR
from hub_assets.store.layout import OBJECTS
from hub_assets.store.s3 import S3Store
from hub_assets_tests.index.conftest import CATALOG_TABLES, HubEnv, sha256_hex

# A commit a reader can fetch needs its snapshot row, and a ref and an object row for every
# object its manifest names.
_UNSERVABLE_COMMITS = sa.text(
    """
    SELECT c.commit_id, 'has no snapshot row' AS problem
    FROM musehub_commits c LEFT JOIN musehub_snapshots s USING (repo_id, snapshot_id)
    WHERE s.snapshot_id IS NULL
    UNION ALL
    SELECT c.commit_id, 'names object ' || m.object_id || ' without ' ||
           CASE WHEN r.object_id IS NULL THEN 'a ref' ELSE 'an object row' END
    FROM musehub_commits c
    JOIN musehub_snapshots s USING (repo_id, snapshot_id)
    CROSS JOIN LATERAL jsonb_each_text(s.manifest) AS m(path, object_id)
    LEFT JOIN musehub_object_refs r ON r.repo_id = c.repo_id AND r.object_id = m.object_id
    LEFT JOIN musehub_objects o ON o.object_id = m.object_id
    WHERE r.object_id IS NULL OR o.object_id IS NULL
    """
)


@dataclass(frozen=True)
class State:
    """The catalog digest of the index tests (every musehub_* row minus clocks and timings, and
    the store listing with sizes), the sha256 of each stored object's bytes, row counts, and the
    files of a file store that are no key."""

    catalog_digest: str
    object_hashes: dict[str, str]
    counts: dict[str, int]
    stray_files: list[str]


def object_hashes(store: ObjectStore) -> dict[str, str]:
    """sha256 of the bytes under every objects/ key (temp files of a file store are not keys)."""
    keys = [item.key for item in store.list(OBJECTS)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(zip(keys, pool.map(lambda key: sha256_hex(store.get(key)), keys), strict=True))


def state_of(hub: HubEnv) -> State:
    counts = {table: hub.count(table) for table in (*CATALOG_TABLES, "musehub_bundles")}
    return State(hub.catalog_digest(), object_hashes(hub.store), counts, stray_files(hub.store))


def torn_objects(hashes: dict[str, str]) -> list[str]:
    """objects/ keys whose bytes do not hash to the id the key names."""
    return [key for key, digest in hashes.items() if object_key(digest) != key]


def visible_problems(hub: HubEnv) -> list[str]:
    """Everything a reader could trip over: commits it could not serve, object rows pointing at
    no bytes, and objects whose bytes are not their id's."""
    with hub.catalog.engine.connect() as conn:
        problems = [f"commit {commit_id} {problem}" for commit_id, problem in conn.execute(_UNSERVABLE_COMMITS)]
        rows = conn.execute(sa.text("SELECT object_id, storage_uri, content_cache IS NOT NULL FROM musehub_objects"))
        objects = list(rows)
    hashes = object_hashes(hub.store)
    for object_id, storage_uri, cached in objects:
        key = object_key(object_id)
        if storage_uri == PENDING:
            if not cached:
                problems.append(f"object {object_id} is pending without inline bytes")
        elif storage_uri != hub.store.uri_for(key):
            problems.append(f"object {object_id} points at {storage_uri}")
        elif hashes.get(key) != object_id:
            problems.append(f"object {object_id} is promoted but its blob is {hashes.get(key, 'missing')}")
    problems += [f"torn object {key}" for key in torn_objects(hashes)]
    return problems


_PROGRESS = sa.text(
    """
    SELECT (SELECT count(*) FROM musehub_objects WHERE storage_uri <> 'pending') AS promoted,
           (SELECT count(*) FROM musehub_objects WHERE content_cache IS NOT NULL) AS cached,
           (SELECT count(*) FROM musehub_object_refs) AS refs,
           (SELECT count(*) FROM musehub_snapshots) AS snapshots,
           (SELECT count(*) FROM musehub_commits) AS commits,
           (SELECT string_agg(status, ',' ORDER BY bundle_key) FROM musehub_bundles) AS status
    """
)


def progress(hub: HubEnv) -> dict[str, int | str]:
    """How far the index of the catalog's bundles got, as committed: objects in the store, rows
    promoted and still holding inline bytes, refs, snapshots, commits, bundle statuses, and
    the files of a file store that are no key (a killed writer's temp files)."""
    with hub.catalog.engine.connect() as conn:
        counts = dict(conn.execute(_PROGRESS).one()._mapping)
    return {"stored": len(list(hub.store.list(OBJECTS))), **counts, "temp_files": len(stray_files(hub.store))}


def stray_files(store: ObjectStore) -> list[str]:
    """Files under a file store's root that its listing does not show as keys (none in S3)."""
    if not isinstance(store, FileStore):
        return []
    on_disk = {os.path.relpath(os.path.join(d, f), store.root) for d, _, files in os.walk(store.root) for f in files}
    return sorted(on_disk - {item.key for item in store.list("")})


def partial_writes(store: ObjectStore, prefix: str) -> int:
    """Unfinished writes: temp files of a file store (all under its `.tmp/`, whatever their key),
    multipart uploads under `prefix` on S3."""
    if isinstance(store, FileStore):
        return sum(len(names) for _, _, names in os.walk(store.root / TEMP_DIR))
    assert isinstance(store, S3Store)
    answer = boto3.client("s3").list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix + prefix)
    return len(answer.get("Uploads", []))
