"""Pool limits hold across concurrent index runs on one instance (SPEC §7, concurrency).

Two `hub-assets index` processes (the operator's entry point, one run each) share the test's
instance. Threads would not do: two `execute_in_process` calls in one process deadlock inside
Dagster, whose per-run log manager calls `logging.config.dictConfig` while the other run's
handlers hold their locks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub_assets.index.job import PARTITION_TAG
from hub_assets.index.run import apply_pool_limits
from hub_assets_tests.bundle.builders import build_history

from .conftest import HubEnv
from .runlog import messages, step_window

HUB_ASSETS_CLI = Path(sys.executable).with_name("hub-assets")
LIMITS = {"object_store": 1, "catalog": 1}
# Enough objects that one run's object_blobs step outlasts the other run's start and bundle step.
OBJECTS_PER_BUNDLE = 400


def start_index(partition_key: str, hub_home: Path) -> subprocess.Popen[str]:
    """`hub-assets index` on the test's instance (DAGSTER_HOME is the instance's directory)."""
    env = {**os.environ, "HUB_HOME": str(hub_home), "HUB_POOL_OBJECT_STORE": "1", "HUB_POOL_CATALOG": "1"}
    return subprocess.Popen(
        [str(HUB_ASSETS_CLI), "index", partition_key],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow  # ~11 s: concurrent runs on S3
@pytest.mark.parametrize("store_url", ["s3"], indirect=True)
def test_object_blobs_of_concurrent_runs_never_overlap(hub_env: HubEnv, tmp_path: Path) -> None:
    apply_pool_limits(hub_env.instance, LIMITS)
    keys = [
        hub_env.upload(f"repo-{seed}", build_history(1, OBJECTS_PER_BUNDLE, seed=seed, zstd_every=0).wire())
        for seed in range(2)
    ]

    processes = [start_index(key, tmp_path) for key in keys]
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, out + err

    runs = {run.tags[PARTITION_TAG]: run.run_id for run in hub_env.instance.get_runs()}
    assert sorted(runs) == sorted(keys)
    first, second = sorted(step_window(hub_env.instance, run_id, "object_blobs") for run_id in runs.values())
    assert first[1] <= second[0], f"object_blobs steps overlap: {first} and {second}"
    blocked = [
        message
        for run_id in runs.values()
        for message in messages(hub_env.instance, run_id)
        if message == "Step blocked by limit for pool object_store"
    ]
    assert blocked, "the runs never contended for the pool: the test did not exercise the limit"
