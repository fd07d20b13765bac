"""Fixtures of the sync-path tests: a Hub on the test's database and store, and an indexer."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import dagster as dg
import pytest

from hub_assets.hub import Hub
from hub_assets.index.run import IndexOutcome, index_partitions
from hub_assets.settings import DATABASE_URL, OBJECT_STORE_URL

Indexer = Callable[..., list[IndexOutcome]]


def open_hub(database_url: str, store_url: str, *, publish_in_background: bool = False) -> Iterator[Hub]:
    hub = Hub.connect(database_url, store_url, publish_in_background=publish_in_background)
    try:
        yield hub
    finally:
        hub.close()


@pytest.fixture
def hub(pg_url: str, store_url: str) -> Iterator[Hub]:
    """A Hub on a fresh database and the parametrized (file, then S3) store."""
    yield from open_hub(pg_url, store_url)


@pytest.fixture
def file_hub(pg_url: str, file_store_url: str) -> Iterator[Hub]:
    """A Hub on a fresh database and a file store, for tests where the store does not matter."""
    yield from open_hub(pg_url, file_store_url)


def _indexer(
    database_url: str, store_url: str, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> Indexer:
    monkeypatch.setenv(DATABASE_URL, database_url)
    monkeypatch.setenv(OBJECT_STORE_URL, store_url)

    def index(*partition_keys: str, expect_success: bool = True) -> list[IndexOutcome]:
        outcomes = index_partitions(instance, list(partition_keys))
        if expect_success:
            failed = [(o.partition_key, o.error) for o in outcomes if not o.success]
            assert not failed, f"index runs failed: {failed}"
        return outcomes

    return index


@pytest.fixture
def index(
    pg_url: str, store_url: str, dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> Indexer:
    """`index(*partition_keys)`: materialize those partitions now, against `hub`'s database and
    store, on the instance production runs on."""
    return _indexer(pg_url, store_url, dagster_instance, monkeypatch)


@pytest.fixture
def file_index(
    pg_url: str, file_store_url: str, dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> Indexer:
    """`index` against `file_hub`'s database and store."""
    return _indexer(pg_url, file_store_url, dagster_instance, monkeypatch)
