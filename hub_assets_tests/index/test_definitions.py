"""The code location loads, as Dagster's tools load it, with the execution choices SPEC §7 relies on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from hub_assets.definitions import defs
from hub_assets.index.assets import commits, object_blobs, object_refs, object_rows, snapshots
from hub_assets.index.executor import threaded_executor
from hub_assets.index.job import index_bundle
from hub_assets.settings import DATABASE_URL, OBJECT_STORE_URL

DAGSTER_CLI = Path(sys.executable).with_name("dagster")


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)


def test_dagster_cli_validates_the_module(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        DATABASE_URL: "postgresql+psycopg://nobody@127.0.0.1:1/none",
        OBJECT_STORE_URL: (tmp_path / "store").as_uri(),
    }
    done = subprocess.run(
        [str(DAGSTER_CLI), "definitions", "validate", "-m", "hub_assets.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_index_job_runs_in_one_process_on_threads() -> None:
    job = defs.resolve_job_def(index_bundle.name)
    assert job.executor_def is threaded_executor
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "bundle",
        "object_blobs",
        "object_rows",
        "object_refs",
        "snapshots",
        "commits",
    }


@pytest.mark.parametrize(
    ("asset", "pool"),
    [
        (object_blobs, "object_store"),
        (object_rows, "catalog"),
        (object_refs, "catalog"),
        (snapshots, "catalog"),
        (commits, "catalog"),
    ],
    ids=lambda value: value if isinstance(value, str) else value.key.to_user_string(),
)
def test_asset_pools(asset: dg.AssetsDefinition, pool: str) -> None:
    assert asset.op.pool == pool
