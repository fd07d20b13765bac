"""The shared fixtures do what later tests rely on."""

from __future__ import annotations

from collections.abc import Callable

import boto3
import psycopg
import pytest
from sqlalchemy.engine import make_url

from hub_assets.embedded_postgres import libpq_conninfo
from hub_assets_tests.conftest import create_database, drop_database, with_database
from hub_assets_tests.polling import wait_until

# Filled by the first pg_url test and checked by the next one, once pg_url's teardown has run.
_databases_seen: list[str] = []


def _database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(libpq_conninfo(admin_url)) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def test_pg_url_is_a_fresh_empty_database(pg_url: str) -> None:
    name = make_url(pg_url).database
    assert name is not None and name.startswith("hubtest_")
    with psycopg.connect(libpq_conninfo(pg_url)) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
        tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").fetchone()
    assert tables == (0,)
    _databases_seen.append(name)


def test_pg_url_database_is_dropped_after_the_test(pg_admin_url: str) -> None:
    assert _databases_seen, "runs after test_pg_url_is_a_fresh_empty_database"
    assert not _database_exists(pg_admin_url, _databases_seen[-1])


def test_drop_database_succeeds_with_open_connection(pg_admin_url: str) -> None:
    name = create_database(pg_admin_url)
    assert _database_exists(pg_admin_url, name)
    leaked = psycopg.connect(libpq_conninfo(with_database(pg_admin_url, name)))
    try:
        drop_database(pg_admin_url, name)
    finally:
        leaked.close()
    assert not _database_exists(pg_admin_url, name)


def test_s3_store_url_bucket_accepts_put_and_get(s3_store_url: str, s3_endpoint: str) -> None:
    assert s3_store_url.startswith("s3://") and s3_store_url.endswith("/hub")
    bucket = s3_store_url.removeprefix("s3://").split("/", 1)[0]
    client = boto3.client("s3")
    assert client.meta.endpoint_url == s3_endpoint
    client.put_object(Bucket=bucket, Key="hub/probe", Body=b"payload")
    assert client.get_object(Bucket=bucket, Key="hub/probe")["Body"].read() == b"payload"


def test_store_url_is_file_or_s3(store_url: str) -> None:
    assert store_url.startswith(("file:///", "s3://"))


def test_fixture_bytes_reads_bundles(fixture_bytes: Callable[[str], bytes]) -> None:
    assert fixture_bytes("muse-small-history.bundle")
    assert fixture_bytes("muse-merge.bundle")


def test_wait_until_returns_first_truthy_value() -> None:
    values = iter([0, None, "", 42])
    assert wait_until(lambda: next(values), timeout_s=5, interval_s=0.001, what="a value") == 42


def test_wait_until_names_what_on_timeout() -> None:
    with pytest.raises(AssertionError, match="the impossible"):
        wait_until(lambda: False, timeout_s=0.02, interval_s=0.005, what="the impossible")
