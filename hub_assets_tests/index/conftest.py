"""The index under test: the real Definitions, a fresh catalog, both stores, and the Dagster
instance production runs on (`dagster_instance`, hub_assets_tests/conftest.py), empty for each test."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from hub_assets import definitions
from hub_assets.catalog import Catalog
from hub_assets.index.run import IndexOutcome, index_partitions
from hub_assets.settings import DATABASE_URL, OBJECT_STORE_URL
from hub_assets.store import ObjectStore, open_store, partition_key, upload_key
from hub_assets_tests.instance_home import (
    instance_dir as instance_dir,  # where tests written before instance_home.py look
)

# Columns a second run may legitimately change: clocks, and the timings inside stats.
VOLATILE_COLUMNS = frozenset({"created_at", "updated_at", "indexed_at", "pushed_at"})
CATALOG_TABLES = ("musehub_objects", "musehub_object_refs", "musehub_snapshots", "musehub_commits")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stable(table: str, row: dict[str, Any]) -> dict[str, Any]:
    kept = {name: value for name, value in row.items() if name not in VOLATILE_COLUMNS}
    if table == "musehub_bundles" and isinstance(kept.get("stats"), dict):
        kept["stats"] = {key: value for key, value in kept["stats"].items() if not key.endswith("_ms")}
    return kept


@dataclass
class UploadEnv:
    """The store the code location reads uploads from, the Definitions, and a Dagster instance."""

    store: ObjectStore
    instance: dg.DagsterInstance
    defs: dg.Definitions = field(init=False, default=definitions.defs)

    def upload(self, repo_id: str, data: bytes, bundle_key: str | None = None) -> str:
        """Put `data` under uploads/<repo_id>/<bundle_key> (default: its sha256); return the partition key."""
        key = partition_key(repo_id, bundle_key or sha256_hex(data))
        self.store.put(upload_key(key), data)
        return key

    def store_listing(self, prefix: str = "") -> list[tuple[str, int]]:
        return sorted((item.key, item.size) for item in self.store.list(prefix))


@dataclass
class HubEnv(UploadEnv):
    """What a test of the index works with: also the catalog the runs write to."""

    catalog: Catalog

    def index(self, *keys: str) -> list[IndexOutcome]:
        return index_partitions(self.instance, list(keys))

    def index_ok(self, *keys: str) -> list[IndexOutcome]:
        outcomes = self.index(*keys)
        assert all(o.success for o in outcomes), [o.error for o in outcomes if not o.success]
        return outcomes

    def rows(self, table: str, order_by: str = "1") -> list[dict[str, Any]]:
        with self.catalog.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY {order_by}"))]

    def execute(self, statement: str) -> None:
        with self.catalog.engine.begin() as conn:
            conn.execute(sa.text(statement))

    def count(self, table: str) -> int:
        with self.catalog.engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()

    def catalog_digest(self) -> str:
        return catalog_digest(self.catalog, self.store)


def catalog_digest(catalog: Catalog, store: ObjectStore) -> str:
    """sha256 over every musehub_* row (by primary key, clocks and timings left out) and the store
    listing (every key: uploads, objects, quarantine)."""
    inspector = sa.inspect(catalog.engine)
    tables = sorted(name for name in inspector.get_table_names() if name.startswith("musehub_"))
    state: dict[str, Any] = {"store": sorted((item.key, item.size) for item in store.list(""))}
    with catalog.engine.connect() as conn:
        for table in tables:
            order = ", ".join(inspector.get_pk_constraint(table)["constrained_columns"]) or "1"
            query = sa.text(f"SELECT to_jsonb(t) FROM {table} t ORDER BY {order}")
            state[table] = [_stable(table, row) for (row,) in conn.execute(query)]
    return sha256_hex(json.dumps(state, sort_keys=True, default=str).encode())


@pytest.fixture
def upload_env(
    pg_url: str, store_url: str, dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> Iterator[UploadEnv]:
    """For the sensor: the store it watches, and an empty catalog it reads repo names from."""
    monkeypatch.setenv(DATABASE_URL, pg_url)
    monkeypatch.setenv(OBJECT_STORE_URL, store_url)
    store = open_store(store_url)
    try:
        yield UploadEnv(store, dagster_instance)
    finally:
        store.close()


@pytest.fixture
def hub_env(
    pg_url: str, store_url: str, dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HubEnv]:
    monkeypatch.setenv(DATABASE_URL, pg_url)
    monkeypatch.setenv(OBJECT_STORE_URL, store_url)
    store = open_store(store_url)
    catalog = Catalog.connect(pg_url)
    catalog.create_schema()
    try:
        yield HubEnv(store, dagster_instance, catalog)
    finally:
        catalog.engine.dispose()
        store.close()
