"""Index partitions now, in this process: what `hub-assets index` and the tests call."""

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from ..settings import pool_limits
from ..store import split_partition_key
from .job import PARTITION_TAG, index_bundle
from .partitions import bundles

HOST_TAG = "hub/host"
PID_TAG = "hub/pid"


@dataclass(frozen=True)
class IndexOutcome:
    partition_key: str
    success: bool
    run_id: str
    error: str | None


def apply_pool_limits(instance: dg.DagsterInstance, limits: dict[str, int] | None = None) -> None:
    """Per-pool slot counts live in the instance database, not in dagster.yaml."""
    for pool, slots in (limits or pool_limits()).items():
        instance.event_log_storage.set_concurrency_slots(pool, slots)


def index_job() -> dg.JobDefinition:
    """The `index_bundle` job of the code location: what `index_partitions` reconstructs."""
    from ..definitions import defs

    return defs.resolve_job_def(index_bundle.name)


def index_partitions(instance: dg.DagsterInstance, partition_keys: Sequence[str]) -> list[IndexOutcome]:
    """Materialize each partition with the `index_bundle` job, in this process; failures are
    returned, not raised. A key that is not `<repo_id>/<64 hex>` fails without becoming a partition.

    `execute_job`, not `execute_in_process`: the latter swaps in the one-step-at-a-time
    executor, and a run here must be the run the daemon would launch, threads included."""
    valid = [key for key in partition_keys if split_partition_key(key)]
    release_dead_runs(instance)
    instance.add_dynamic_partitions(bundles.name, valid)
    job = dg.reconstructable(index_job)
    outcomes = []
    for key in partition_keys:
        if key not in valid:
            reason = f"partition key {key[:200]!r} is not <repo_id>/<64 hex bundle key>"
            outcomes.append(IndexOutcome(key, False, "", reason))
            continue
        tags = {PARTITION_TAG: key, HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
        # Not entered as a context: entering sets the run's resources up again (a catalog engine,
        # the store), only to read outputs, which an index run has none of worth reading.
        result = dg.execute_job(job, instance, tags=tags, raise_on_error=False)
        reason = None if result.success else _reason(result)
        outcomes.append(IndexOutcome(key, result.success, result.run_id, reason))
    return outcomes


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail the runs this host started in a process that is gone (SIGKILL, OOM) and free their
    pool slots. Such a run stays STARTED and keeps its slots, and no daemon watches an in-process
    run, so every later run would wait for those slots for ever."""
    host = socket.gethostname()
    runs = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags={HOST_TAG: host}))
    released = []
    for run in runs:
        pid = int(run.tags[PID_TAG])
        if not _process_alive(pid):
            instance.report_run_failed(run, f"its process {pid} on {host} is gone")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            released.append(run.run_id)
    return released


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reason(result: dg.JobExecutionResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            failure = event.step_failure_data
            if failure.user_failure_data and failure.user_failure_data.description:
                return failure.user_failure_data.description
            if failure.error:
                # Retries exhausted: "Exceeded max_retries of 3", caused by the error itself.
                root = failure.error
                while root.cause:
                    root = root.cause
                top = failure.error.message.strip()
                return top if root is failure.error else f"{root.message.strip()} ({top})"
    # No step failed: the run itself did (interrupted, or an error between steps).
    run_failure = result.get_run_failure_event()
    return run_failure.message if run_failure and run_failure.message else "run failed"
