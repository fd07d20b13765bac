"""What one index run opens: one catalog connection pool and one object store, whatever number
of assets and resources use them (issue #13: at most 5 PostgreSQL sessions a run); and no schema
probe once the process has learned the instance's schema (what a forked run worker inherits)."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from hub_assets.embedded_postgres import libpq_conninfo
from hub_assets.index import resources
from hub_assets.index.run import index_partitions
from hub_assets.instance import storage as instance_storage
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


def reflection_queries_of_a_run(hub_env: HubEnv, key: str, learned: bool, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The catalog-reflection statements (pg_catalog) an index run sends on the instance's engine,
    in an instance built as a new process would build it: no schema fact known yet, then (when
    `learned`) learn_schema, as the run workers' forkserver does before forking."""
    monkeypatch.setattr(instance_storage, "_schema_facts", {})
    with dg.DagsterInstance.from_ref(hub_env.instance.get_ref()) as instance:
        if learned:
            instance_storage.learn_schema(instance)
        statements: list[str] = []
        engine = instance.run_storage._shared.engine  # type: ignore[attr-defined]

        def record(conn: object, cursor: object, statement: str, *args: object) -> None:
            if "pg_catalog" in statement:
                statements.append(statement)

        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            assert all(outcome.success for outcome in index_partitions(instance, [key]))
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
    return statements


@pytest.mark.parametrize("store_url", ["file"], indirect=True)
def test_a_run_after_learn_schema_asks_no_schema_probe(
    hub_env: HubEnv, fixture_bytes: Callable[[str], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = hub_env.upload("repo-1", fixture_bytes("muse-small-history.bundle"))
    second = hub_env.upload("repo-2", fixture_bytes("muse-merge.bundle"))
    assert reflection_queries_of_a_run(hub_env, first, learned=False, monkeypatch=monkeypatch)
    assert reflection_queries_of_a_run(hub_env, second, learned=True, monkeypatch=monkeypatch) == []
