"""Watches the upload prefix: each new bundle becomes a partition and one run. Beside it, the
sweep of what killed pushes left (hub/sweep.py)."""

from datetime import timedelta

import dagster as dg

from ..catalog import Catalog
from ..hub import Hub
from ..hub.sweep import sweep
from ..settings import quarantine_grace_s
from ..store.layout import UPLOADS
from .job import index_bundle
from .partitions import bundles
from .resources import CatalogResource, ObjectStoreResource
from .upload_cursor import UploadCursor, plan_uploads

REPO_TAG = "hub/repo_id"  # drives the per-repo run queue limit (dagster.yaml)
# What operators search the UI's runs by: the repo's owner/slug and the pushed branch.
REPO_NAME_TAG = "hub/repo"
BRANCH_TAG = "hub/branch"


def run_tags(catalog: Catalog, partition_keys: list[str]) -> dict[str, dict[str, str]]:
    """The tags of each partition's run: the repo id, and the repo's name and the branch where
    the catalog knows them (a push records its bundle before its upload appears)."""
    pairs = {key: tuple(key.split("/", 1)) for key in partition_keys}
    names = catalog.repo_names(repo_id for repo_id, _ in pairs.values())
    branches = catalog.bundle_branches(pairs.values())
    tags = {}
    for key, (repo_id, bundle_key) in pairs.items():
        tags[key] = {REPO_TAG: repo_id}
        if repo_id in names:
            tags[key][REPO_NAME_TAG] = names[repo_id]
        if (repo_id, bundle_key) in branches:
            tags[key][BRANCH_TAG] = branches[repo_id, bundle_key]
    return tags


@dg.sensor(job=index_bundle, minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def upload_sensor(
    context: dg.SensorEvaluationContext, store: ObjectStoreResource, catalog: CatalogResource
) -> dg.SensorResult:
    """Adds a partition and requests a run for each upload not seen before (run_key = partition
    key, so a run is never requested twice even if the cursor were lost)."""
    plan = plan_uploads(store.store.list(UPLOADS), UploadCursor.parse(context.cursor))
    for key in plan.rejected_keys:
        context.log.warning(f"skipping upload {key!r}: not uploads/<repo_id>/<64 hex bundle key>")
    if not plan.partition_keys:
        return dg.SensorResult(skip_reason="no new uploads", cursor=plan.cursor.dump())
    tags = run_tags(catalog.catalog, plan.partition_keys)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=key, tags=tags[key]) for key in plan.partition_keys],
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
