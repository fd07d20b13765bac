"""What one index run opens: one catalog connection pool and one object store, whatever number
of assets and resources use them (issue #13: at most 5 PostgreSQL sessions a run)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import make_url

from hub_assets.embedded_postgres import libpq_conninfo
from hub_assets.index import resources
from hub_assets.store import ObjectStore
from hub_assets_tests.pg_activity import settled_activity

from .conftest import HubEnv

# Two steps touch the catalog at once at most (object_blobs or a catalog-pool step beside
# snapshots), each on a connection of the run's one pool: one session each.
MAX_CATALOG_SESSIONS = 2


@pytest.mark.parametrize("store_url", ["file", "s3"], indirect=True)
def test_an_index_run_opens_one_catalog_pool_and_one_store(
    hub_env: HubEnv,
    pg_admin_url: str,
    pg_url: str,
    fixture_bytes: Callable[[str], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[ObjectStore] = []
    open_store = resources.open_store

    def counted_open_store(*args: object, **kwargs: object) -> ObjectStore:
        store = open_store(*args, **kwargs)
        opened.append(store)
        return store

    monkeypatch.setattr(resources, "open_store", counted_open_store)
    key = hub_env.upload("repo-1", fixture_bytes("muse-merge.bundle"))
    # The test's own pooled connection would keep the database from settling.
    hub_env.catalog.engine.dispose()
    admin, database = libpq_conninfo(pg_admin_url), make_url(pg_url).database
    before = settled_activity(admin, database)

    hub_env.index_ok(key)

    sessions = (settled_activity(admin, database) - before).sessions
    assert 1 <= sessions <= MAX_CATALOG_SESSIONS, f"{sessions} catalog sessions for one run"
    assert len(opened) == 1, f"{len(opened)} object stores for one run"
