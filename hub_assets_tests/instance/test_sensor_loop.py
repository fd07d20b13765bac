"""Under `hub-assets dev`, the upload sensor ticks as often as its minimum interval says (1 s),
not every 5 s as Dagster's own sensor daemon loop would have it (hub_assets/instance/daemon.py),
and a push is seen by its next tick."""

from __future__ import annotations

import itertools
import time

import dagster as dg
import pytest

from hub_assets.hub import push
from hub_assets.index.sensor import upload_sensor
from hub_assets_tests.conftest import FIXTURES_DIR
from hub_assets_tests.hostile.daemon import DevHub
from hub_assets_tests.polling import wait_until

from .conftest import SMALL_HISTORY_HEAD

pytestmark = pytest.mark.slow

TICKS_OBSERVED = 8
TICK_TIMEOUT_S = 120
# A loop of 0.5 s over a 1 s minimum interval ticks every 1-1.5 s, plus the evaluation; Dagster's
# own loop ticks every 5 s.
MAX_GAP_BETWEEN_TICKS_S = 2.5
MAX_PUSH_TO_RUN_CREATED_S = 3.0


def _upload_sensor_tick_times(instance: dg.DagsterInstance) -> list[float]:
    states = [state for state in instance.all_instigator_state() if state.name == upload_sensor.name]
    if not states:
        return []
    [state] = states
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=TICKS_OBSERVED)
    return sorted(tick.timestamp for tick in ticks)


def test_the_upload_sensor_ticks_every_second_or_so_and_sees_a_push_at_once(dev: DevHub) -> None:
    def enough_ticks() -> list[float] | None:
        times = _upload_sensor_tick_times(dev.instance)
        return times if len(times) >= TICKS_OBSERVED else None

    ticks = wait_until(
        enough_ticks,
        TICK_TIMEOUT_S,
        0.5,
        what=f"{TICKS_OBSERVED} ticks of the upload sensor",
    )
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert max(gaps) <= MAX_GAP_BETWEEN_TICKS_S, f"gaps between ticks: {gaps}"

    data = (FIXTURES_DIR / "muse-small-history.bundle").read_bytes()
    pushed_at = time.time()
    result = push(dev.hub, "cadence", "main", data, head_commit_id=SMALL_HISTORY_HEAD)
    [run] = wait_until(lambda: dev.runs(result.partition_key), TICK_TIMEOUT_S, 0.1, what="the sensor's run")
    created = dev.instance.get_run_record_by_id(run.run_id)
    assert created is not None
    assert created.create_timestamp.timestamp() - pushed_at <= MAX_PUSH_TO_RUN_CREATED_S
