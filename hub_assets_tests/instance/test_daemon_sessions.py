"""Under the real daemon (`hub-assets dev`: webserver, daemon, code server, and the run worker the
daemon launches for a push), every process keeps its instance's connections in its pool: the
database sees a handful of new sessions for a push and its run, and almost none while idle.
dagster-postgres alone: ~250 for the push and run, 13-17 a second idle (issue 13)."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from hub_assets.hub import push
from hub_assets_tests.conftest import FIXTURES_DIR
from hub_assets_tests.hostile.daemon import DevHub
from hub_assets_tests.pg_activity import quiet_activity
from hub_assets_tests.polling import wait_until

from .conftest import SMALL_HISTORY_HEAD, admin_conninfo, database_name

pytestmark = pytest.mark.slow

IDLE_WINDOW_S = 8
RUN_TIMEOUT_S = 120
# Push (catalog) + run worker (instance and catalog); pooled, the run worker opens 2-3 of each.
MAX_SESSIONS_PUSH_AND_RUN = 15
MAX_IDLE_SESSIONS_PER_S = 0.5


def test_a_daemon_launched_run_and_the_idle_daemon_open_few_sessions(dev: DevHub, pg_url: str) -> None:
    admin, database = admin_conninfo(pg_url), database_name(pg_url)
    wait_until(lambda: "SENSOR" in dev.instance.get_daemon_heartbeats(), RUN_TIMEOUT_S, 0.5, what="the sensor daemon")
    idle_from, idle_start = quiet_activity(admin, database), time.monotonic()
    time.sleep(IDLE_WINDOW_S)  # the idle window measured, not a wait for something to happen
    idle_to, idle_end = quiet_activity(admin, database), time.monotonic()
    idle_rate = (idle_to - idle_from).sessions / (idle_end - idle_start)
    assert idle_rate <= MAX_IDLE_SESSIONS_PER_S

    data = (FIXTURES_DIR / "muse-small-history.bundle").read_bytes()
    result = push(dev.hub, "sessions", "main", data, head_commit_id=SMALL_HISTORY_HEAD)

    def finished() -> list[dg.DagsterRun] | None:
        runs = dev.runs(result.partition_key)
        return runs if runs and all(run.is_finished for run in runs) else None

    [run] = wait_until(finished, RUN_TIMEOUT_S, 0.2, what="the sensor's run to finish")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    after, end = quiet_activity(admin, database), time.monotonic()
    opened = (after - idle_to).sessions - idle_rate * (end - idle_end)
    assert opened <= MAX_SESSIONS_PUSH_AND_RUN, f"{opened:.1f} sessions for a push and its run"
