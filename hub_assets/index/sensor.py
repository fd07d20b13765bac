"""Watches the upload prefix: each new bundle becomes a partition and one run. Beside it, the
sweep of what killed pushes left (hub/sweep.py)."""

from datetime import timedelta

import dagster as dg

from ..hub import Hub
from ..hub.sweep import sweep
from ..settings import quarantine_grace_s
from ..store.layout import UPLOADS
from .job import index_bundle
from .partitions import bundles
from .resources import CatalogResource, ObjectStoreResource
from .upload_cursor import UploadCursor, plan_uploads

REPO_TAG = "hub/repo_id"


@dg.sensor(job=index_bundle, minimum_interval_seconds=2, default_status=dg.DefaultSensorStatus.RUNNING)
def upload_sensor(context: dg.SensorEvaluationContext, store: ObjectStoreResource) -> dg.SensorResult:
    """Adds a partition and requests a run for each upload not seen before (run_key = partition
    key, so a run is never requested twice even if the cursor were lost)."""
    plan = plan_uploads(store.store.list(UPLOADS), UploadCursor.parse(context.cursor))
    for key in plan.rejected_keys:
        context.log.warning(f"skipping upload {key!r}: not uploads/<repo_id>/<64 hex bundle key>")
    if not plan.partition_keys:
        return dg.SensorResult(skip_reason="no new uploads", cursor=plan.cursor.dump())
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=key, run_key=key, tags={REPO_TAG: key.split("/", 1)[0]})
            for key in plan.partition_keys
        ],
        dynamic_partitions_requests=[bundles.build_add_request(plan.partition_keys)],
        cursor=plan.cursor.dump(),
    )


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def push_sweep_sensor(
    context: dg.SensorEvaluationContext, catalog: CatalogResource, store: ObjectStoreResource
) -> dg.SkipReason:
    """Publishes the uploads of pushes killed after their commit point, and removes quarantine
    keys and partial writes that refused or killed pushes left (older than
    HUB_QUARANTINE_GRACE_S). Requests no runs: an upload it publishes is the upload sensor's."""
    report = sweep(Hub(catalog.catalog, store.store), timedelta(seconds=quarantine_grace_s()))
    return dg.SkipReason(str(report))
