"""A run worker SIGKILLed under the daemon (`hub-assets dev`) in the middle of object_blobs: run
monitoring finds the worker gone (the local launcher's health check) and fails the run, frees the
pool slot the dead run held, and run_retries (dagster.yaml) re-runs it from the failure to the
state one uninterrupted run leaves."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, RETRY_NUMBER_TAG

from hub_assets_tests.hostile.daemon import FINISHED, DevHub, running_dev
from hub_assets_tests.index.runlog import step_events
from hub_assets_tests.polling import wait_until

from .conftest import Rig, RigFactory
from .state import State, state_of, visible_problems

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

_WORKER_STARTED = re.compile(r"Started process for run \(pid: (\d+)\)")


def worker_in_object_blobs(dev: DevHub, rig: Rig) -> tuple[dg.DagsterRun, int] | None:
    """The partition's run and its worker's pid, once the run is inside object_blobs."""
    runs = dev.runs(rig.partition_key)
    if len(runs) != 1:
        return None
    (run,) = runs
    if not step_events(dev.instance, run.run_id, "object_blobs", {dg.DagsterEventType.STEP_START}):
        return None
    engine_events = dev.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    pids = [int(match[1]) for entry in engine_events if (match := _WORKER_STARTED.search(entry.message))]
    return (run, pids[0]) if pids else None


def test_a_run_worker_killed_under_the_daemon_is_retried_to_one_clean_runs_state(
    open_rig: RigFactory, reference_states: dict[str, State], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = open_rig("s3")
    aws = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    # One object put at a time: object_blobs lasts long enough to be killed in the middle.
    with running_dev(rig.database_url, rig.store_url, tmp_path, monkeypatch, HUB_OBJECTS_IN_FLIGHT="1", **aws) as dev:
        killed, pid = wait_until(lambda: worker_in_object_blobs(dev, rig), 180, 0.05, what="a run inside object_blobs")
        os.kill(pid, signal.SIGKILL)

        def retried_and_finished() -> list[dg.DagsterRun] | None:
            runs = dev.runs(rig.partition_key)
            return runs if len(runs) == 2 and all(run.status in FINISHED for run in runs) else None

        runs = wait_until(retried_and_finished, 240, 0.5, what="the killed run to fail and its retry to finish")

    (retry,) = [run for run in runs if run.run_id != killed.run_id]
    assert [run.status for run in runs if run.run_id == killed.run_id] == [dg.DagsterRunStatus.FAILURE]
    assert (retry.tags[PARENT_RUN_ID_TAG], retry.tags[RETRY_NUMBER_TAG]) == (killed.run_id, "1")
    assert retry.status == dg.DagsterRunStatus.SUCCESS
    assert visible_problems(rig.hub) == []
    assert state_of(rig.hub) == reference_states["s3"]
