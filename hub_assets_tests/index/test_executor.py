"""The threaded executor: independent steps run at once, dependencies and retries hold, and a
failure ends the run as the in-process executor would. Small jobs pin each behaviour; the real
index job's step order is checked on a real partition.

Runs go through `execute_job`, as `index_partitions` does (`execute_in_process` would swap in
Dagster's in-process executor), so each job is built by a module-level function."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import dagster as dg
import pytest
from dagster._utils.interrupts import check_captured_interrupt

from hub_assets.catalog import Catalog
from hub_assets.index.executor import threaded_executor
from hub_assets.index.run import _reason
from hub_assets.store import ObjectStore

from .conftest import HubEnv
from .runlog import failed_steps, step_window

BARRIER_TIMEOUT_S = 20
_INDEX_STEPS = ("bundle", "object_blobs", "object_rows", "object_refs", "snapshots", "commits")
_trace: list[str] = []
_trace_lock = threading.Lock()
_meeting = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)


def _record(name: str) -> None:
    with _trace_lock:
        _trace.append(name)


def _job(name: str, assets: list[dg.AssetsDefinition], **resources: object) -> dg.JobDefinition:
    job = dg.define_asset_job(name, executor_def=threaded_executor)
    return dg.Definitions(assets=assets, jobs=[job], resources=resources).resolve_job_def(name)


def _execute(job_fn: Callable[[], dg.JobDefinition], instance: dg.DagsterInstance) -> dg.JobExecutionResult:
    _trace.clear()
    _meeting.reset()
    with dg.execute_job(dg.reconstructable(job_fn), instance) as result:
        return result


# --- independent steps meet inside their bodies: one at a time, the barrier would break ------


@dg.asset(key="root")
def _root() -> None: ...


@dg.asset(key="left", deps=["root"])
def _left() -> None:
    _meeting.wait()


@dg.asset(key="right", deps=["root"])
def _right() -> None:
    _meeting.wait()


def meeting_job() -> dg.JobDefinition:
    return _job("meeting", [_root, _left, _right])


def test_independent_steps_run_at_the_same_time(dagster_instance: dg.DagsterInstance) -> None:
    result = _execute(meeting_job, dagster_instance)
    assert result.success, [e.message for e in result.all_events if e.is_failure]


# --- a step waits for everything it depends on -------------------------------------------------


@dg.asset(key="first")
def _first() -> None:
    _record("first")


@dg.asset(key="second", deps=["first"])
def _second() -> None:
    _record("second")


@dg.asset(key="third", deps=["first"])
def _third() -> None:
    _record("third")


@dg.asset(key="last", deps=["second", "third"])
def _last() -> None:
    assert sorted(_trace) == ["first", "second", "third"]
    _record("last")


def diamond_job() -> dg.JobDefinition:
    return _job("diamond", [_first, _second, _third, _last])


def test_a_step_starts_after_everything_it_depends_on(dagster_instance: dg.DagsterInstance) -> None:
    assert _execute(diamond_job, dagster_instance).success
    assert _trace[0] == "first" and _trace[-1] == "last"


# --- retries ---------------------------------------------------------------------------------


@dg.asset(key="flaky", retry_policy=dg.RetryPolicy(max_retries=2))
def _flaky() -> None:
    _record("flaky")
    if len(_trace) < 2:
        raise RuntimeError("transient")


@dg.asset(key="after_flaky", deps=["flaky"])
def _after_flaky() -> None: ...


def retry_job() -> dg.JobDefinition:
    return _job("retry", [_flaky, _after_flaky])


def test_a_retried_step_runs_again_and_the_run_succeeds(dagster_instance: dg.DagsterInstance) -> None:
    assert _execute(retry_job, dagster_instance).success
    assert _trace == ["flaky", "flaky"]


# --- failures --------------------------------------------------------------------------------


@dg.asset(key="broken")
def _broken() -> None:
    raise RuntimeError("no good")


@dg.asset(key="downstream", deps=["broken"])
def _downstream() -> None:
    _record("downstream")


@dg.asset(key="independent")
def _independent() -> None:
    _record("independent")


def failing_job() -> dg.JobDefinition:
    return _job("failing", [_broken, _downstream, _independent])


def test_a_failed_step_fails_the_run_and_skips_what_depends_on_it(dagster_instance: dg.DagsterInstance) -> None:
    result = _execute(failing_job, dagster_instance)
    assert not result.success
    assert failed_steps(dagster_instance, result.run_id) == ["broken"]
    assert _trace == ["independent"]


class _InterruptingIO(dg.IOManager):
    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        raise KeyboardInterrupt

    def load_input(self, context: dg.InputContext) -> object:
        raise AssertionError("never loaded")


@dg.asset(key="produces", io_manager_key="interrupting_io")
def _produces() -> int:
    return 1


def interrupted_job() -> dg.JobDefinition:
    return _job("interrupted", [_produces], interrupting_io=_InterruptingIO())


def test_an_interrupt_on_a_step_thread_ends_the_run(dagster_instance: dg.DagsterInstance) -> None:
    """An error that is not a step failure, raised on a step thread, reaches the orchestrating
    thread: the run ends failed instead of waiting for the step for ever."""
    result = _execute(interrupted_job, dagster_instance)
    assert not result.success
    run = dagster_instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE


@dg.asset(key="asks_to_stop")
def _asks_to_stop() -> None:
    """Does what `dagster run terminate` does to a run worker: SIGINT (Dagster maps SIGTERM to
    it), which only the main thread sees; returns once the executor there has seen it."""
    os.kill(os.getpid(), signal.SIGINT)
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while not check_captured_interrupt():
        assert time.monotonic() < deadline, "the orchestrating thread never saw the signal"
        time.sleep(0.01)
    _record("asks_to_stop")


@dg.asset(key="after_stop", deps=["asks_to_stop"])
def _after_stop() -> None:
    _record("after_stop")


def stopping_job() -> dg.JobDefinition:
    return _job("stopping", [_asks_to_stop, _after_stop])


def test_termination_lets_the_running_step_end_and_starts_no_other(dagster_instance: dg.DagsterInstance) -> None:
    with dg.execute_job(dg.reconstructable(stopping_job), dagster_instance) as result:
        run = dagster_instance.get_run_by_id(result.run_id)
    assert _trace == ["asks_to_stop"]
    assert not result.success
    assert "interrupted" in _reason(result)  # no step failed: the reason is the run's own
    assert run is not None and run.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE)


@dg.asset(key="stops_first")
def _stops_first() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    _wait_for(check_captured_interrupt, "the orchestrating thread never saw the signal")


@dg.asset(key="pooled_still_running", pool="probe_pool")
def _pooled_still_running() -> None:
    # Still running when the hook of `stops_first` takes the interrupt (and clears it).
    _wait_for(check_captured_interrupt, "no interrupt")
    _wait_for(lambda: not check_captured_interrupt(), "the interrupt was never taken")


@dg.failure_hook
def _noting_hook(context: dg.HookContext) -> None: ...


def hooked_stopping_job() -> dg.JobDefinition:
    job = dg.define_asset_job("hooked_stopping", executor_def=threaded_executor, hooks={_noting_hook})
    return dg.Definitions(assets=[_stops_first, _pooled_still_running], jobs=[job]).resolve_job_def("hooked_stopping")


def _wait_for(condition: Callable[[], bool], failure: str) -> None:
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.01)


def test_a_run_ended_early_frees_the_pool_slots_of_steps_still_running(dagster_instance: dg.DagsterInstance) -> None:
    """The hook of the first step to end takes the interrupt and raises on the orchestrating
    thread while another step holds a pool slot: that step's end must still free it."""
    dagster_instance.event_log_storage.set_concurrency_slots("probe_pool", 1)
    with dg.execute_job(dg.reconstructable(hooked_stopping_job), dagster_instance) as result:
        assert not result.success
    assert dagster_instance.event_log_storage.get_concurrency_info("probe_pool").claimed_slots == []


# --- the index job ---------------------------------------------------------------------------


def test_index_job_keeps_its_step_order(hub_env: HubEnv, fixture_bytes: Callable[[str], bytes]) -> None:
    key = hub_env.upload("r-executor", fixture_bytes("muse-merge.bundle"))
    [outcome] = hub_env.index_ok(key)
    window = {step: step_window(hub_env.instance, outcome.run_id, step) for step in _INDEX_STEPS}
    assert window["bundle"][1] <= min(window["object_blobs"][0], window["snapshots"][0])
    assert window["object_blobs"][1] <= window["object_rows"][0]
    assert window["object_rows"][1] <= window["object_refs"][0]
    assert max(window["snapshots"][1], window["object_refs"][1]) <= window["commits"][0]


def test_steps_starting_at_once_below_bundle_decode_it_once(
    hub_env: HubEnv, fixture_bytes: Callable[[str], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-materialization of object_blobs and snapshots alone: both steps start together and
    each needs the decoded bundle; one decodes it, the other waits for it. The first decode is
    held until the other step is inside `load` too, so the steps are proven to have overlapped."""
    from hub_assets.index import resources
    from hub_assets.index.job import PARTITION_TAG
    from hub_assets.index.run import index_job

    key = hub_env.upload("r-once", fixture_bytes("muse-merge.bundle"))
    hub_env.index_ok(key)
    inside_load: list[str] = []
    most_inside_load = 0
    decodes = 0
    count_lock = threading.Lock()
    load, decode = resources.BundleSource.load, resources.decode_bundle

    def counted_load(
        self: resources.BundleSource, partition_key: str, catalog: Catalog, store: ObjectStore
    ) -> resources.BundleRun:
        nonlocal most_inside_load
        with count_lock:
            inside_load.append(partition_key)
            most_inside_load = max(most_inside_load, len(inside_load))
        try:
            return load(self, partition_key, catalog, store)
        finally:
            with count_lock:
                inside_load.pop()

    def decode_once_both_are_inside(*args: object, **kwargs: object) -> object:
        nonlocal decodes
        with count_lock:
            decodes += 1
        deadline = time.monotonic() + BARRIER_TIMEOUT_S
        while len(inside_load) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        return decode(*args, **kwargs)

    monkeypatch.setattr(resources.BundleSource, "load", counted_load)
    monkeypatch.setattr(resources, "decode_bundle", decode_once_both_are_inside)
    selection = [dg.AssetKey("object_blobs"), dg.AssetKey("snapshots")]
    with dg.execute_job(
        dg.reconstructable(index_job), hub_env.instance, tags={PARTITION_TAG: key}, asset_selection=selection
    ) as result:
        assert result.success

    assert most_inside_load == 2, "the two steps were never inside load at the same time"
    assert decodes == 1
