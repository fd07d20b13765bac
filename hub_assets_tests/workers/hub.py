"""A scaled-out hub for a test: its own Redis broker, `hub-assets dev` (UI, daemon, sensor) launching
runs onto it (HUB_RUN_LAUNCHER=celery), and `hub-assets worker`s executing them, all on the test's
database and store; the test process holds the same instance and catalog."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from hub_assets.index.assets import index_assets
from hub_assets_tests.bundle.builders import History, build_history
from hub_assets_tests.hostile.daemon import DevHub, max_overlap, push_history, running_dev, wait_for_runs
from hub_assets_tests.hostile.processes import hub_child_env
from hub_assets_tests.index.runlog import step_window
from hub_assets_tests.polling import wait_until

from .processes import RedisBroker, Worker, start_worker

WORKER_TAG = "hub/worker"


@dataclass
class ScaledHub:
    dev: DevHub
    broker: RedisBroker
    workers: list[Worker]
    worker_env: dict[str, str]
    workdir: Path
    _stack: ExitStack = field(default_factory=ExitStack)

    def add_worker(self, prefix: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Worker:
        """One more worker, with a home of its own (as on another machine)."""
        n = len(self.workers)
        worker_env = {**(env or self.worker_env), "HUB_HOME": str(self.workdir / f"worker-{n}")}
        worker = start_worker(worker_env, self.workdir / f"worker-{n}.log", prefix=prefix)
        self._stack.callback(worker.stop)
        self.workers.append(worker)
        return worker


@contextmanager
def scaled_hub(
    pg_url: str,
    store_url: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
    broker_host: str = "127.0.0.1",
    **extra_env: str,
) -> Iterator[ScaledHub]:
    broker = RedisBroker.start(workdir / "broker", broker_host)
    aws = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    pool_env = {"HUB_RUN_LAUNCHER": "celery", "HUB_BROKER_URL": broker.url, **aws, **extra_env}
    try:
        with running_dev(pg_url, store_url, workdir, monkeypatch, **pool_env) as dev:
            worker_env = hub_child_env(workdir, pg_url, store_url, **pool_env)
            hub = ScaledHub(dev, broker, [], worker_env, workdir)
            with hub._stack:
                for _ in range(workers):
                    hub.add_worker()
                yield hub
    finally:
        broker.stop()


def chains(repos: list[str], pushes_per_repo: int, files: int = 40) -> dict[str, list[History]]:
    """Per repo, pushes that each build on the one before (parents). Their snapshots are whole: a
    delta on the previous push's snapshot could not be pushed before that push is indexed."""
    histories = {}
    for n, repo in enumerate(repos):
        pushes = [build_history(2, files, seed=100 * n)]
        while len(pushes) < pushes_per_repo:
            pushes.append(build_history(2, files, seed=100 * n + len(pushes), after=pushes[-1], delta=False))
        histories[repo] = pushes
    return histories


def push_round_robin(dev: DevHub, histories: dict[str, list[History]], rounds: range) -> dict[str, list[str]]:
    """Push `rounds` of every repo's chain, one repo after the other; partition keys by repo, in
    push order. A round is pushed once the sensor has requested the runs of the one before: the
    sensor orders uploads by S3's LastModified, whose resolution is a second, so two pushes of a
    repo within one second could be requested in either order."""
    pushed: dict[str, list[str]] = {repo: [] for repo in histories}
    for index in rounds:
        for repo, chain in histories.items():
            before = chain[index - 1].head if index else None
            pushed[repo].append(push_history(dev.hub, repo, chain[index], expected_old_head=before))
        wait_until(lambda: all(dev.runs(keys[-1]) for keys in pushed.values()), 120, 0.2, what="runs requested")
    return pushed


def run_windows(records: list[dg.RunRecord]) -> dict[str, tuple[float, float]]:
    """(start, end) of each run, by run id."""
    return {r.dagster_run.run_id: (r.start_time or 0.0, r.end_time or 0.0) for r in records}


def assert_in_push_order(records: list[dg.RunRecord], pushed: dict[str, list[str]]) -> None:
    """Every repo's runs one at a time, in push order (the `hub/repo_id` tag limit)."""
    by_partition = {r.dagster_run.tags["dagster/partition"]: r for r in records}
    windows = run_windows(records)
    for repo, keys in pushed.items():
        in_order = [windows[by_partition[key].dagster_run.run_id] for key in keys]
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(in_order)), f"{repo}: {in_order}"


def assert_within_pool_limits(dev: DevHub, records: list[dg.RunRecord]) -> None:
    """The steps of each pool (object_store, catalog) never ran beyond its slots, across all workers."""
    steps_by_pool: dict[str, list[str]] = {}
    for asset in index_assets:
        if asset.op.pool:
            steps_by_pool.setdefault(asset.op.pool, []).append(asset.op.name)
    assert set(steps_by_pool) == {"object_store", "catalog"}
    for pool, steps in steps_by_pool.items():
        windows = [step_window(dev.instance, r.dagster_run.run_id, step) for r in records for step in steps]
        slots = dev.instance.event_log_storage.get_concurrency_info(pool).slot_count
        assert max_overlap(windows) <= slots, f"steps of pool {pool} ran beyond its {slots} slots"


def assert_indexed_once_in_push_order(hub: ScaledHub, pushed: dict[str, list[str]]) -> list[dg.RunRecord]:
    """Once every pushed bundle's run has finished: each bundle indexed by exactly one run (none
    failed, none retried), each repo's runs one at a time in push order. The index runs' records."""
    keys = {key for keys in pushed.values() for key in keys}
    runs = wait_for_runs(hub.dev, keys, 600)
    assert {key: [r.status for r in rs] for key, rs in runs.items()} == {
        key: [dg.DagsterRunStatus.SUCCESS] for key in keys
    }, "each bundle indexed by exactly one run, none failed or retried"
    assert {status["status"] for status in hub.dev.status().values()} == {"indexed"}
    records = hub.dev.index_runs()
    assert len(records) == len(keys)
    assert_in_push_order(records, pushed)
    return records
