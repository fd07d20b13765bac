"""Index partitions now, in this process: what `hub-assets index` and the tests call."""

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from ..settings import pool_limits
from ..store import split_partition_key
from .job import index_bundle
from .partitions import bundles


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


def index_partitions(
    defs: dg.Definitions, instance: dg.DagsterInstance, partition_keys: Sequence[str]
) -> list[IndexOutcome]:
    """Materialize each partition with the `index_bundle` job; failures are returned, not raised.
    A key that is not `<repo_id>/<64 hex>` fails without becoming a partition."""
    valid = [key for key in partition_keys if split_partition_key(key)]
    instance.add_dynamic_partitions(bundles.name, valid)
    job = defs.resolve_job_def(index_bundle.name)
    outcomes = []
    for key in partition_keys:
        if key not in valid:
            reason = f"partition key {key[:200]!r} is not <repo_id>/<64 hex bundle key>"
            outcomes.append(IndexOutcome(key, False, "", reason))
            continue
        result = job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)
        outcomes.append(IndexOutcome(key, result.success, result.run_id, None if result.success else _reason(result)))
    return outcomes


def _reason(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            failure = event.step_failure_data
            if failure.user_failure_data and failure.user_failure_data.description:
                return failure.user_failure_data.description
            if failure.error:
                return failure.error.message.strip()
    return "run failed"
