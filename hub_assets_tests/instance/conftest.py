"""Dagster instances on the project's dagster.yaml, each on a fresh database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy.engine import make_url

from hub_assets.embedded_postgres import libpq_conninfo, with_database
from hub_assets.settings import DAGSTER_PG_URL, dagster_pg_url
from hub_assets_tests.hostile.daemon import DevHub, running_dev
from hub_assets_tests.instance_home import InstanceHome

SMALL_HISTORY_HEAD = "f3a2e612019d367ddb7daaa5304a97c0bf68020536f3b9a98da409e6fc3350a5"  # muse-small-history's main


def open_project_instance(home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    """An instance of the repo's dagster.yaml, as `hub-assets` opens it, storing in `pg_url`'s database."""
    instance_home = InstanceHome.create(home, pg_url)
    for variable, value in instance_home.env().items():
        monkeypatch.setenv(variable, value)
    return instance_home.open()


@pytest.fixture
def project_instance(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    instance = open_project_instance(tmp_path / "dagster", pg_url, monkeypatch)
    try:
        yield instance
    finally:
        instance.dispose()


def storage_url(pg_url: str) -> str:
    """`pg_url` (the catalog's form) as Dagster's storage takes it, whatever this process's environment says."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(DAGSTER_PG_URL, raising=False)
        return dagster_pg_url(pg_url)


def admin_conninfo(pg_url: str) -> str:
    """A connection to the `postgres` database of `pg_url`'s server: reading counters there is not
    counted in the database measured."""
    return libpq_conninfo(with_database(pg_url, "postgres"))


def database_name(pg_url: str) -> str:
    name = make_url(pg_url).database
    assert name
    return name


@pytest.fixture
def dev(pg_url: str, file_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DevHub]:
    """`hub-assets dev` on the test's database and a file store."""
    with running_dev(pg_url, file_store_url, tmp_path, monkeypatch) as hub:
        yield hub
