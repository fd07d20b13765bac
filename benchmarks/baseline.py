"""The seed-style index job, as a plain script: what `index_bundle` replaced.

Sequential phases, each finished before the next starts, the way the original job ran:

  fetch + sha256 -> msgpack.unpackb (whole bundle) -> delta reconstruction (dict copies)
  -> zstd-decode every object -> INSERT ... ON CONFLICT DO NOTHING, 500 rows per executemany,
  for snapshots, commits, objects, refs -> object PUTs, 100 in flight via asyncio

It writes the same catalog tables as the project (hub_assets.catalog.schema), with the same
end state for the rows it owns: objects with their real storage_uri and content_cache NULL,
refs for every object of the bundle and of its manifests, full manifests, commits, and the
bundle row `indexed` with its stats. It trusts the bundle (no validation beyond the hash),
as the seed did.

    run_baseline("<repo_id>/<bundle_key>", "postgresql+psycopg://…/db", "file:///…" | "s3://bucket/prefix")
    -> {"setup": s, "fetch": s, "unpack": s, "resolve": s, "decode": s, "snapshots": s, "commits": s,
        "objects": s, "refs": s, "puts": s, "finish": s, "total": s}
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import boto3
import msgpack
import sqlalchemy as sa
import zstandard
from sqlalchemy.dialects.postgresql import insert

from hub_assets.catalog import schema

CHUNK_ROWS = 500
IN_FLIGHT = 100
_COMMIT_COLUMNS = {
    "commit_id",
    "snapshot_id",
    "message",
    "author",
    "committed_at",
    "parent_commit_id",
    "parent2_commit_id",
}


class _Store:
    """Just enough of a store for the seed job: get the upload, put objects, name their URIs."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.url = url.rstrip("/")
        if parsed.scheme == "file":
            self.root: str | None = parsed.path
            self.client = None
        else:
            self.root = None
            self.bucket = parsed.netloc
            self.prefix = parsed.path.strip("/") + "/" if parsed.path.strip("/") else ""
            # Endpoint and credentials from the standard AWS_* variables, as the seed job had it.
            self.client = boto3.client("s3")

    def get(self, key: str) -> bytes:
        if self.root is not None:
            with open(f"{self.root}/{key}", "rb") as f:
                return f.read()
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()

    def put(self, key: str, data: bytes) -> None:
        if self.root is not None:
            path = f"{self.root}/{key}"
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        else:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def uri_for(self, key: str) -> str:
        return f"{self.url}/{key}"


def _object_key(object_id: str) -> str:
    return f"objects/{object_id[:2]}/{object_id[2:]}"


def _chunks(rows: list[dict[str, Any]], size: int = CHUNK_ROWS) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _insert_all(engine: sa.Engine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    statement = insert(table).on_conflict_do_nothing()
    with engine.begin() as conn:
        for chunk in _chunks(rows):
            conn.execute(statement, chunk)


def unpack(data: bytes) -> dict[str, Any]:
    """The whole bundle in one call, as the seed did."""
    return msgpack.unpackb(data, raw=False)


def resolve_deltas(snapshots: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Full manifest of every snapshot: a delta is its base's manifest, copied, plus its changes."""
    by_id = {s["snapshot_id"]: s for s in snapshots}
    manifests: dict[str, dict[str, str]] = {}

    def manifest_of(snapshot_id: str) -> dict[str, str]:
        chain = []
        current = snapshot_id
        while current not in manifests:
            record = by_id[current]
            if "manifest" in record:
                manifests[current] = dict(record["manifest"])
                break
            chain.append(record)
            current = record["base_snapshot_id"]
        for record in reversed(chain):
            manifest = dict(manifests[record["base_snapshot_id"]])
            for path in record.get("removed") or []:
                manifest.pop(path, None)
            manifest.update(record.get("changes") or {})
            manifests[record["snapshot_id"]] = manifest
        return manifests[snapshot_id]

    for snapshot_id in by_id:
        manifest_of(snapshot_id)
    return manifests


def decode_objects(bundle: dict[str, Any]) -> dict[str, bytes]:
    """Object id -> decoded bytes: every zstd object decoded, with one decompressor."""
    decompressor = zstandard.ZstdDecompressor()
    objects: dict[str, bytes] = {}
    for record in bundle.get("objects", []):
        content = record["content"]
        if record.get("encoding") == "zstd":
            content = decompressor.decompress(content)
        objects[record["object_id"]] = content
    return objects


async def _put_all(store: _Store, items: list[tuple[str, bytes]]) -> None:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(key: str, data: bytes) -> None:
        async with gate:
            await asyncio.to_thread(store.put, key, data)

    await asyncio.gather(*(one(key, data) for key, data in items))


def _moment(text: str | None) -> datetime:
    return datetime.fromisoformat(text) if text else datetime.now(UTC)


def run_baseline(partition_key: str, database_url: str, store_url: str) -> dict[str, float]:
    """Index one uploaded bundle the seed way; returns seconds per phase and the total."""
    phases: dict[str, float] = {}
    clock = time.perf_counter()
    started = clock

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = now - clock
        clock = now

    repo_id, bundle_key = partition_key.split("/", 1)
    engine = sa.create_engine(database_url)
    schema.create_schema(engine)
    store = _Store(store_url)
    lap("setup")

    data = store.get(f"uploads/{partition_key}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != bundle_key:
        raise ValueError(f"sha256 {digest} is not the bundle key {bundle_key}")
    lap("fetch")

    bundle = unpack(data)
    lap("unpack")

    manifests = resolve_deltas(bundle.get("snapshots", []))
    lap("resolve")

    objects = decode_objects(bundle)
    lap("decode")

    created = {s["snapshot_id"]: s.get("created_at") for s in bundle.get("snapshots", [])}
    _insert_all(
        engine,
        schema.snapshots,
        [
            {"repo_id": repo_id, "snapshot_id": sid, "manifest": manifest, "created_at": _moment(created[sid])}
            for sid, manifest in manifests.items()
        ],
    )
    lap("snapshots")

    commit_rows = []
    for c in bundle.get("commits", []):
        parents = [p for p in (c.get("parent_commit_id"), c.get("parent2_commit_id")) if p]
        commit_rows.append(
            {
                "repo_id": repo_id,
                "commit_id": c["commit_id"],
                "parent_ids": parents,
                "snapshot_id": c["snapshot_id"],
                "message": c["message"],
                "author": c.get("author", ""),
                "committed_at": _moment(c["committed_at"]),
                "committed_at_text": c["committed_at"],
                "commit_meta": {k: v for k, v in c.items() if k not in _COMMIT_COLUMNS},
            }
        )
    _insert_all(engine, schema.commits, commit_rows)
    lap("commits")

    _insert_all(
        engine,
        schema.objects,
        [
            {
                "object_id": object_id,
                "size_bytes": len(content),
                "storage_uri": store.uri_for(_object_key(object_id)),
                "content_cache": None,
            }
            for object_id, content in objects.items()
        ],
    )
    lap("objects")

    ref_ids = set(objects)
    for manifest in manifests.values():
        ref_ids.update(manifest.values())
    _insert_all(engine, schema.object_refs, [{"repo_id": repo_id, "object_id": oid} for oid in sorted(ref_ids)])
    lap("refs")

    asyncio.run(_put_all(store, [(_object_key(oid), content) for oid, content in objects.items()]))
    lap("puts")

    stats = {
        "commits_written": len(commit_rows),
        "snapshots_written": len(manifests),
        "objects_written": len(objects),
        "object_refs_written": len(ref_ids),
        "bundle_size_bytes": len(data),
        **{f"{name}_ms": round(seconds * 1000) for name, seconds in phases.items()},
    }
    upsert = insert(schema.bundles).values(
        repo_id=repo_id,
        bundle_key=bundle_key,
        size_bytes=len(data),
        status="indexed",
        stats=stats,
        indexed_at=sa.func.now(),
    )
    with engine.begin() as conn:
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["repo_id", "bundle_key"],
                set_={"status": "indexed", "stats": stats, "indexed_at": sa.func.now()},
            )
        )
    engine.dispose()
    if store.client is not None:
        store.client.close()
    lap("finish")
    phases["total"] = time.perf_counter() - started
    return phases


PHASES: list[tuple[str, str]] = [
    ("setup", "setup (engine, schema, client)"),
    ("fetch", "fetch + sha256"),
    ("unpack", "msgpack.unpackb"),
    ("resolve", "resolve deltas"),
    ("decode", "zstd decode"),
    ("snapshots", "snapshot rows"),
    ("commits", "commit rows"),
    ("objects", "object rows"),
    ("refs", "ref rows"),
    ("puts", "object puts"),
    ("finish", "bundle row"),
]
