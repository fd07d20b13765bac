"""Watches the upload prefix: each new bundle becomes a partition and one run."""

import dagster as dg

from ..store.layout import UPLOADS
from .job import index_bundle
from .partitions import bundles
from .resources import ObjectStoreResource
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
