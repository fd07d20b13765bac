"""The index under the real daemon (`hub-assets dev`: webserver, daemon, upload sensor): refused
bundles fail one by one while the daemon keeps going, and 50 pushes at once are each indexed
exactly once, with object writes never running beyond the object_store pool's slots."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from hub_assets.hub import BranchConflict, BundleRefused, Hub, PushResult, push
from hub_assets.store import partition_key, upload_key
from hub_assets.store.layout import UPLOADS
from hub_assets_tests.bundle.builders import History, build_history, sha256_hex
from hub_assets_tests.index.runlog import step_window

from .corpus import BASE, CORPUS, REPO, Hostile, next_good
from .daemon import DevHub, max_overlap, push_history, running_dev, wait_for_runs

# Slow, and waits for runs longer than the default per-test limit.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REFUSED = ["truncated-msgpack", "zstd-bomb", "wrong-bundle-key", "path-traversal", "message-not-utf8", "commit-cycle"]
LOAD_REPOS = 50
LOAD_FILES = 300  # objects per bundle: enough for object_blobs to take measurable time
RACE_REPO = "race"


@pytest.fixture
def dev(pg_url: str, file_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DevHub]:
    with running_dev(pg_url, file_store_url, tmp_path, monkeypatch) as hub:
        yield hub


def test_refused_bundles_fail_and_the_daemon_keeps_indexing(dev: DevHub) -> None:
    base = push_history(dev.hub, REPO, BASE)
    wait_for_runs(dev, {base}, 180)
    refused: dict[str, Hostile] = {}
    for name in REFUSED:
        case = CORPUS[name]()
        key = partition_key(case.repo, case.bundle_key or sha256_hex(case.data))
        dev.hub.store.put(upload_key(key), case.data)  # straight into the upload prefix, as a client may
        refused[key] = case

    runs = wait_for_runs(dev, set(refused), 300)

    statuses = dev.status()
    for key, case in refused.items():
        assert [r.status for r in runs[key]] == [dg.DagsterRunStatus.FAILURE], key
        error = statuses[key].get("error", "")
        assert statuses[key]["status"] == "failed" and "\n" not in error, statuses[key]
        assert error.startswith(f"bundle {key}: {case.record}: ") and re.search(case.reason, error), error
    dev.assert_running()

    # The same bundles pushed: push refuses them, and the sensor never sees them.
    for name in REFUSED:
        case = CORPUS[name]()
        with pytest.raises(BundleRefused, match=re.escape(case.record)):
            expected = dev.hub.catalog.branch_head(case.repo, "main")
            push(dev.hub, case.repo, "main", case.data, bundle_key=case.bundle_key, expected_old_head=expected)
    good = push_history(dev.hub, REPO, next_good(), expected_old_head=BASE.head)
    assert [r.status for r in wait_for_runs(dev, {good}, 180)[good]] == [dg.DagsterRunStatus.SUCCESS]
    assert dev.status()[good]["status"] == "indexed"
    dev.assert_running()
    assert not dev.instance.get_daemon_heartbeats()["SENSOR"].errors
    # Only the uploads became partitions and runs: one each, none retried, none for a refused push.
    assert set(dev.instance.get_dynamic_partitions("bundles")) == {base, good, *refused}
    assert len(dev.index_runs()) == len(refused) + 2, "one run per upload, none retried"


@dataclass(frozen=True)
class Attempt:
    repo_id: str
    history: History
    expected_old_head: str | None = None

    @property
    def key(self) -> str:
        return partition_key(self.repo_id, sha256_hex(self.history.wire()))


def push_all_at_once(hub: Hub, attempts: list[Attempt]) -> list[PushResult | BranchConflict]:
    """Every attempt pushed by its own thread, released together; a lost race is returned."""
    wires = [a.history.wire() for a in attempts]
    barrier = threading.Barrier(len(attempts))

    def attempt(index: int) -> PushResult | BranchConflict:
        a = attempts[index]
        barrier.wait(timeout=120)
        try:
            return push(
                hub,
                a.repo_id,
                a.history.branch,
                wires[index],
                head_commit_id=a.history.head,
                expected_old_head=a.expected_old_head,
            )
        except BranchConflict as conflict:
            return conflict

    with ThreadPoolExecutor(max_workers=len(attempts)) as pool:
        return list(pool.map(attempt, range(len(attempts))))


def test_fifty_pushes_at_once_indexed_once_each_within_the_pool_limit(dev: DevHub) -> None:
    advance = build_history(1, 3, seed=1000, branch="advance")
    setup = push_history(dev.hub, RACE_REPO, advance)
    loads = [Attempt(f"load-{n:02d}", build_history(1, LOAD_FILES, seed=n, zstd_every=0)) for n in range(LOAD_REPOS)]
    creators = [Attempt(RACE_REPO, build_history(1, 3, seed=1001 + n, branch="create")) for n in range(2)]
    # Full snapshots: valid before `advance` is indexed.
    ahead = [build_history(1, 3, seed=1003 + n, branch="advance", after=advance, delta=False) for n in range(2)]
    advancers = [Attempt(RACE_REPO, history, advance.head) for history in ahead]

    results = push_all_at_once(dev.hub, loads + creators + advancers)

    assert all(isinstance(r, PushResult) for r in results[:LOAD_REPOS])
    winners = []
    for branch, racers, outcomes in (("create", creators, results[-4:-2]), ("advance", advancers, results[-2:])):
        (winner,) = [racer for racer, outcome in zip(racers, outcomes, strict=True) if isinstance(outcome, PushResult)]
        assert sum(isinstance(o, BranchConflict) for o in outcomes) == 1, outcomes
        assert dev.hub.catalog.branch_head(RACE_REPO, branch) == winner.history.head
        winners.append(winner)
    keys = {setup} | {a.key for a in loads + winners}  # a lost push leaves no upload
    assert {item.key for item in dev.hub.store.list(UPLOADS)} == {upload_key(key) for key in keys}

    runs = wait_for_runs(dev, keys, 900)

    run_statuses = {key: [r.status for r in rs] for key, rs in runs.items()}
    assert [key for key, seen in run_statuses.items() if seen != [dg.DagsterRunStatus.SUCCESS]] == []
    statuses = dev.status()
    assert {statuses[a.key]["status"] for a in loads} == {"indexed"}
    records = dev.index_runs()
    assert len(records) == len(keys) and {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
    blobs = [step_window(dev.instance, r.dagster_run.run_id, "object_blobs") for r in records]
    slots = dev.instance.event_log_storage.get_concurrency_info("object_store").slot_count
    assert max_overlap(blobs) <= slots == 1, "object_blobs steps ran beyond the pool's slots"
    assert max_overlap([(r.start_time or 0, r.end_time or 0) for r in records]) >= 2, "runs did overlap"
    durations = sorted(end - start for start, end in blobs)
    assert durations[len(durations) // 2] > 0.02, durations
    dev.assert_running()
