"""Faults of a Celery worker pool under the real daemon: a worker killed in the middle of a run, a
broker restarted with runs in its queue."""

from __future__ import annotations

import signal
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, RETRY_NUMBER_TAG

from hub_assets_tests.faults.conftest import Rig, RigFactory
from hub_assets_tests.faults.proxy import FaultProxy, Faults
from hub_assets_tests.faults.state import State, state_of, visible_problems
from hub_assets_tests.hostile.daemon import FINISHED
from hub_assets_tests.index.runlog import step_events
from hub_assets_tests.polling import wait_until

from .hub import WORKER_TAG, ScaledHub, assert_indexed_once_in_push_order, chains, push_round_robin, scaled_hub

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPOS = [f"restart-{n}" for n in range(5)]
QUEUE = "hub-index"


def run_in_object_blobs(hub: ScaledHub, rig: Rig, proxy: FaultProxy) -> dg.DagsterRun | None:
    """The partition's one run, once a worker has it inside object_blobs with an object write hanging."""
    runs = hub.dev.runs(rig.partition_key)
    if len(runs) != 1 or WORKER_TAG not in runs[0].tags or not proxy.hanging:
        return None
    started = step_events(hub.dev.instance, runs[0].run_id, "object_blobs", {dg.DagsterEventType.STEP_START})
    return runs[0] if started else None


def test_a_worker_killed_in_object_blobs_is_replaced_by_the_other_to_one_clean_runs_state(
    open_rig: RigFactory,
    reference_states: dict[str, State],
    s3_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = open_rig("s3")
    # The run's first object write hangs (S3 behind a proxy): the worker is killed in the middle of
    # object_blobs, with the writes before it done and the ones after it not.
    with FaultProxy(s3_endpoint, Faults(stall_puts=1, stall_s=300)).running() as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        with scaled_hub(rig.database_url, rig.store_url, tmp_path, monkeypatch, workers=2) as hub:
            killed = wait_until(lambda: run_in_object_blobs(hub, rig, proxy), 180, 0.1, what="a write in object_blobs")
            (victim,) = [worker for worker in hub.workers if worker.name == killed.tags[WORKER_TAG]]
            victim.kill()

            def retried_and_finished() -> list[dg.DagsterRun] | None:
                runs = hub.dev.runs(rig.partition_key)
                return runs if len(runs) == 2 and all(run.status in FINISHED for run in runs) else None

            runs = wait_until(retried_and_finished, 300, 0.5, what="the killed run to fail and its retry to finish")
            (survivor,) = [worker for worker in hub.workers if worker is not victim]

    (retry,) = [run for run in runs if run.run_id != killed.run_id]
    assert [run.status for run in runs if run.run_id == killed.run_id] == [dg.DagsterRunStatus.FAILURE]
    assert (retry.tags[PARENT_RUN_ID_TAG], retry.tags[RETRY_NUMBER_TAG]) == (killed.run_id, "1")
    assert retry.status == dg.DagsterRunStatus.SUCCESS
    assert retry.tags[WORKER_TAG] == survivor.name
    assert [(run_id, outcome) for _, run_id, outcome, _ in survivor.finished_runs()] == [(retry.run_id, "succeeded")]
    assert visible_problems(rig.hub) == []
    assert state_of(rig.hub) == reference_states["s3"]


def test_a_broker_killed_and_restarted_with_runs_in_its_queue_loses_none(
    pg_url: str, s3_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    histories = chains(REPOS, 2)
    with scaled_hub(pg_url, s3_store_url, tmp_path, monkeypatch, workers=1) as hub:
        first = push_round_robin(hub.dev, histories, range(1))
        # One worker, one run at a time: the other launched runs wait in the broker's queue.
        wait_until(lambda: hub.broker.queued(QUEUE) >= 2, 120, 0.05, what="runs waiting in the broker's queue")
        hub.broker.restart(signal.SIGKILL)
        second = push_round_robin(hub.dev, histories, range(1, 2))
        pushed = {repo: first[repo] + second[repo] for repo in REPOS}
        assert_indexed_once_in_push_order(hub, pushed)
        hub.dev.assert_running()
