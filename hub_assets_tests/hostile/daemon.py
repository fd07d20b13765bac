"""`hub-assets dev` as the hostile daemon tests run it: a subprocess on a test database and a file
store (no embedded PostgreSQL), and this process holding the same Dagster instance and catalog."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from hub_assets.environment import HubEnvironment, open_instance, prepare
from hub_assets.hub import Hub, push
from hub_assets.index.job import PARTITION_TAG, index_bundle
from hub_assets_tests.bundle.builders import History
from hub_assets_tests.dev_server import cli_status, start_dev
from hub_assets_tests.polling import wait_until

from .processes import hub_child_env

FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass
class DevHub:
    process: subprocess.Popen[bytes]
    env: dict[str, str]  # what `hub-assets` commands against this hub run with
    instance: dg.DagsterInstance
    hub: Hub
    log: Path

    def status(self) -> dict[str, dict[str, Any]]:
        """`hub-assets status --json`, by partition key."""
        return {f"{b['repo_id']}/{b['bundle_key']}": b for b in cli_status(self.env)}

    def runs(self, partition: str) -> list[dg.DagsterRun]:
        return list(self.instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: partition})))

    def index_runs(self) -> list[dg.RunRecord]:
        return list(self.instance.get_run_records(filters=dg.RunsFilter(job_name=index_bundle.name)))

    def assert_running(self) -> None:
        assert self.process.poll() is None, f"hub-assets dev exited; see {self.log}"


def prepare_in_test(monkeypatch: pytest.MonkeyPatch) -> HubEnvironment:
    """environment.prepare(), with every variable it exports undone after the test."""
    before = set(os.environ)
    environment = prepare()
    for name in set(os.environ) - before:
        monkeypatch.setenv(name, os.environ.pop(name))
    return environment


@contextmanager
def running_dev(
    pg_url: str, store_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch, **extra_env: str
) -> Iterator[DevHub]:
    """`hub-assets dev` on the test's database and store (and `extra_env`), and this process on
    the same instance and catalog."""
    env = hub_child_env(workdir / "hub", pg_url, store_url, **extra_env)
    for name in [n for n in os.environ if n.startswith(("HUB_", "DAGSTER_"))]:
        monkeypatch.delenv(name)
    for name in ("HUB_HOME", "HUB_DATABASE_URL", "HUB_OBJECT_STORE_URL"):
        monkeypatch.setenv(name, env[name])
    environment = prepare_in_test(monkeypatch)
    instance = open_instance(environment)
    hub = Hub.connect(environment.database_url, environment.store_url)
    server = None
    try:
        server = start_dev(env, workdir / "dev.log")
        yield DevHub(server.process, env, instance, hub, server.log)
    finally:
        if server:
            server.stop()
        hub.close()
        instance.dispose()


def push_history(hub: Hub, repo_id: str, history: History, expected_old_head: str | None = None) -> str:
    result = push(
        hub, repo_id, history.branch, history.wire(), head_commit_id=history.head, expected_old_head=expected_old_head
    )
    return result.partition_key


def wait_for_runs(dev: DevHub, keys: set[str], timeout_s: float) -> dict[str, list[dg.DagsterRun]]:
    """Runs by partition, once every partition in `keys` has a run and every run has finished."""

    def finished() -> dict[str, list[dg.DagsterRun]] | None:
        runs = {key: dev.runs(key) for key in keys}
        done = all(runs.values()) and all(r.status in FINISHED for rs in runs.values() for r in rs)
        return runs if done else None

    return wait_until(finished, timeout_s, 1.0, what=f"runs of {len(keys)} partitions to finish")


def max_overlap(windows: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) windows open at one moment; touching ones do not overlap."""
    edges = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak
