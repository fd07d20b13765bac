"""The index against an S3 store that refuses connections, answers 5xx or stalls mid-put: faults
that clear are retried away and leave what one clean run leaves; a store that stays down fails the
run with the store's error, the bundle `failed`, and nothing half-visible.

Slow for now (10-20 s a case, about a minute of a default run that must stay under 10 minutes)."""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import dagster as dg
import pytest

from hub_assets.index.run import IndexOutcome
from hub_assets_tests.index.runlog import failed_steps, step_events

from .conftest import Rig, RigFactory
from .proxy import FaultProxy, Faults
from .state import State, progress, state_of, visible_problems

pytestmark = pytest.mark.slow


class Clearing(NamedTuple):
    faults: Faults
    counter: str  # FaultProxy.seen of the fault, which must have happened
    timeout_s: int | None = None  # HUB_S3_TIMEOUT_S
    hanging: int = 0  # stalled requests the clients gave up on, still hanging when the run ends


# Without `from_first_put` the faults hit the bundle step's boto3 reads; with it, obstore's puts.
CLEARING = {
    "refused-first-connections": Clearing(Faults(refuse_first=8), "refused"),
    "refused-for-2s": pytest.param(Clearing(Faults(refuse_s=2.0), "refused"), marks=pytest.mark.slow),
    "refused-while-putting": pytest.param(
        Clearing(Faults(refuse_first=30, from_first_put=True), "refused"), marks=pytest.mark.slow
    ),
    "refused-for-2s-while-putting": pytest.param(
        Clearing(Faults(refuse_s=2.0, from_first_put=True), "refused"), marks=pytest.mark.slow
    ),
    "503-first-puts": Clearing(Faults(put_errors=20, put_status=503), "put_errors"),
    "500-first-puts": pytest.param(
        Clearing(Faults(put_errors=20, put_status=500), "put_errors"), marks=pytest.mark.slow
    ),
    "stalled-puts-dropped": Clearing(Faults(stall_puts=5, stall_s=1.0), "stalled"),
    # The proxy hangs for a minute: the client must give up first (HUB_S3_TIMEOUT_S) and retry.
    "stalled-puts-timed-out": pytest.param(
        Clearing(Faults(stall_puts=5, stall_s=60.0), "stalled", timeout_s=3, hanging=5), marks=pytest.mark.slow
    ),
}
STAYS_DOWN = {
    "refusing-connections": (Faults(refuse_s=math.inf), "bundle", r"Connection was closed|Could not connect"),
    "503-every-put": (Faults(put_errors=10**9, put_status=503), "object_blobs", r"503 Service Unavailable"),
}


def index_through(
    rig: Rig, faults: Faults, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[IndexOutcome, FaultProxy, int]:
    """Index the rig's partition with the store behind a fault proxy (the test's own view of the
    store, opened before, goes straight to it). Also returns how many stalled requests were still
    hanging when the run ended."""
    with FaultProxy(s3_endpoint, faults).running() as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        (outcome,) = rig.hub.index(rig.partition_key)
        hanging = proxy.hanging
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return outcome, proxy, hanging


@pytest.mark.parametrize("case", CLEARING.values(), ids=CLEARING.keys())
def test_faults_that_clear_leave_one_clean_runs_state(
    open_rig: RigFactory,
    reference_states: dict[str, State],
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    case: Clearing,
) -> None:
    rig = open_rig("s3")
    if case.timeout_s:
        monkeypatch.setenv("HUB_S3_TIMEOUT_S", str(case.timeout_s))

    outcome, proxy, hanging = index_through(rig, case.faults, s3_endpoint, monkeypatch)

    assert outcome.success, outcome.error
    assert proxy.seen[case.counter] > 0, proxy.seen
    assert hanging == case.hanging
    assert visible_problems(rig.hub) == []
    assert state_of(rig.hub) == reference_states["s3"]


@pytest.mark.parametrize(("faults", "step", "reason"), STAYS_DOWN.values(), ids=STAYS_DOWN.keys())
def test_store_that_stays_down_fails_the_run_clearly(
    open_rig: RigFactory,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    faults: Faults,
    step: str,
    reason: str,
) -> None:
    rig = open_rig("s3")

    outcome, _, _ = index_through(rig, faults, s3_endpoint, monkeypatch)

    assert not outcome.success
    assert outcome.error and re.search(reason, outcome.error), outcome.error
    assert failed_steps(rig.hub.instance, outcome.run_id) == [step]
    retries = step_events(rig.hub.instance, outcome.run_id, step, {dg.DagsterEventType.STEP_UP_FOR_RETRY})
    assert len(retries) == 3
    (bundle,) = rig.hub.rows("musehub_bundles")
    assert bundle["status"] == "failed"
    assert re.search(reason, bundle["stats"]["error"]), bundle["stats"]
    left = progress(rig.hub)
    assert (left["promoted"], left["commits"]) == (0, 0), left
    assert visible_problems(rig.hub) == []
