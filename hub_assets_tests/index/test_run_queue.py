"""The run queue of dagster.yaml under the real daemon (`hub-assets dev`): a repo's bundles are
indexed one at a time, in push order (the `hub/repo_id` tag limit), while another repo's runs go
on beside them."""

from __future__ import annotations

import itertools
from pathlib import Path

import dagster as dg
import pytest

from hub_assets.hub import Hub
from hub_assets_tests.bundle.builders import History, build_history
from hub_assets_tests.hostile.daemon import push_history, running_dev, wait_for_runs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPOS = ("queue-a", "queue-b")
PUSHES_PER_REPO = 3
PUSH_ORDER = ["queue-a", "queue-a", "queue-b", "queue-a", "queue-b", "queue-b"]


def chain(seed: int) -> list[History]:
    """Pushes of one repo, each building on the one before (parents). Full snapshots: a push is
    validated against the catalog, where an earlier push's snapshots are only once it is indexed."""
    pushes = [build_history(2, 60, seed=seed)]
    while len(pushes) < PUSHES_PER_REPO:
        pushes.append(build_history(2, 60, seed=seed + len(pushes), after=pushes[-1], delta=False))
    return pushes


def test_a_repos_bundles_index_one_at_a_time_in_push_order_beside_another_repos(
    pg_url: str, file_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chains = {repo: chain(seed=100 * n) for n, repo in enumerate(REPOS)}
    pushed: dict[str, list[str]] = {repo: [] for repo in REPOS}
    # Pushed before the daemon starts, so its first sensor tick queues all six runs at once, in
    # push order: A1, A2, B1, … First in, first out, the queue would start A2 before B1; held
    # back while A1 runs, A2 lets B1 go first.
    hub = Hub.connect(pg_url, file_store_url)
    try:
        for repo in PUSH_ORDER:
            history = chains[repo][len(pushed[repo])]
            before = chains[repo][len(pushed[repo]) - 1].head if pushed[repo] else None
            pushed[repo].append(push_history(hub, repo, history, expected_old_head=before))
    finally:
        hub.close()

    with running_dev(pg_url, file_store_url, tmp_path, monkeypatch) as dev:
        runs = wait_for_runs(dev, {key for keys in pushed.values() for key in keys}, 300)
        records = {record.dagster_run.run_id: record for record in dev.index_runs()}
        statuses = dev.status()

    assert {key: [run.status for run in key_runs] for key, key_runs in runs.items()} == {
        key: [dg.DagsterRunStatus.SUCCESS] for key in runs
    }
    assert {status["status"] for status in statuses.values()} == {"indexed"}
    windows = {key: _window(records[key_runs[0].run_id]) for key, key_runs in runs.items()}
    for repo, keys in pushed.items():
        in_order = [windows[key] for key in keys]
        assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(in_order)), (
            f"{repo}'s runs overlapped or ran out of push order: {in_order}"
        )
    a_second, b_first = pushed[REPOS[0]][1], pushed[REPOS[1]][0]
    assert windows[b_first][0] < windows[a_second][0], "A2 started before B1, queued after it: nothing held A2 back"


def _window(record: dg.RunRecord) -> tuple[float, float]:
    assert record.start_time is not None and record.end_time is not None
    return record.start_time, record.end_time
