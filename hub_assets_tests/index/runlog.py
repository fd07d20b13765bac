"""What a run left in the instance: step windows, log lines, check evaluations, materializations."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from dagster._core.events import AssetCheckEvaluation

from hub_assets.index.assets import index_assets

STEP_ENDS = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


def index_asset_keys() -> list[dg.AssetKey]:
    return [key for asset in index_assets for key in asset.keys]


def index_check_keys() -> set[dg.AssetCheckKey]:
    return {key for asset in index_assets for key in asset.check_keys}


def step_events(
    instance: dg.DagsterInstance, run_id: str, step_key: str, types: set[dg.DagsterEventType]
) -> list[dg.EventLogEntry]:
    return [entry for entry in instance.all_logs(run_id, of_type=types) if entry.step_key == step_key]


def step_window(instance: dg.DagsterInstance, run_id: str, step_key: str) -> tuple[float, float]:
    """(start, end) timestamps of the one execution of `step_key` in the run."""
    (start,) = step_events(instance, run_id, step_key, {dg.DagsterEventType.STEP_START})
    (end,) = step_events(instance, run_id, step_key, STEP_ENDS)
    return start.timestamp, end.timestamp


def failed_steps(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.step_key or "" for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]


def messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Every message of the run's event log, user log lines and Dagster events alike."""
    return [entry.user_message or entry.message for entry in instance.all_logs(run_id)]


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[AssetCheckEvaluation]:
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return [e.dagster_event.asset_check_evaluation_data for e in entries if e.dagster_event]


def materialization_metadata(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str
) -> Sequence[dict[str, object]]:
    """Metadata of every materialization of the asset partition, newest first, as plain values."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=100
    ).records
    return [
        {name: value.value for name, value in record.asset_materialization.metadata.items()}
        for record in records
        if record.asset_materialization
    ]
