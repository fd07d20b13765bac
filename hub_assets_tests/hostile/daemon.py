"""`hub-assets dev` as the hostile daemon tests run it: a subprocess on a test database and a file
store (no embedded PostgreSQL), and this process holding the same Dagster instance and catalog."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from hub_assets.environment import HubEnvironment, open_instance, prepare
from hub_assets.hub import Hub
from hub_assets.index.job import PARTITION_TAG, index_bundle
from hub_assets_tests.conftest import free_port
from hub_assets_tests.polling import wait_until
from hub_assets_tests.test_dev import _answers, _status

from .processes import CLI, hub_child_env

UI_START_TIMEOUT_S = 120


@dataclass
class DevHub:
    process: subprocess.Popen[bytes]
    env: dict[str, str]  # what `hub-assets` commands against this hub run with
    instance: dg.DagsterInstance
    hub: Hub
    log: Path

    def status(self) -> dict[str, dict[str, Any]]:
        """`hub-assets status --json`, by partition key."""
        return {f"{b['repo_id']}/{b['bundle_key']}": b for b in _status(self.env)}

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
def running_dev(pg_url: str, store_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DevHub]:
    env = hub_child_env(workdir / "hub", pg_url, store_url)
    for name in [n for n in os.environ if n.startswith(("HUB_", "DAGSTER_"))]:
        monkeypatch.delenv(name)
    for name in ("HUB_HOME", "HUB_DATABASE_URL", "HUB_OBJECT_STORE_URL"):
        monkeypatch.setenv(name, env[name])
    environment = prepare_in_test(monkeypatch)
    port = free_port()
    log = workdir / "dev.log"
    # Output to a file: a pipe nobody drains would block dev once Dagster's logs fill it.
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*CLI, "dev", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    instance = open_instance(environment)
    hub = Hub.connect(environment.database_url, environment.store_url)
    try:
        ui = f"http://127.0.0.1:{port}/server_info"
        wait_until(lambda: _answers(ui) or process.poll() is not None, UI_START_TIMEOUT_S, 0.5, what="the Dagster UI")
        dev = DevHub(process, env, instance, hub, log)
        dev.assert_running()
        yield dev
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
        hub.close()
        instance.dispose()


def max_overlap(windows: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) windows open at one moment; touching ones do not overlap."""
    edges = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak
