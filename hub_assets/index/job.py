"""The job that indexes one bundle partition, and what it records when it fails."""

import dagster as dg

from .assets import index_assets
from .executor import threaded_executor
from .resources import CatalogResource

PARTITION_TAG = "dagster/partition"


@dg.failure_hook(required_resource_keys={"catalog"})
def mark_bundle_failed(context: dg.HookContext) -> None:
    """A step failed for good (after its retries): the bundle is `failed`, with the reason."""
    run = context.instance.get_run_by_id(context.run_id)
    partition_key = run.tags.get(PARTITION_TAG) if run else None
    if not partition_key or "/" not in partition_key:
        return
    repo_id, bundle_key = partition_key.split("/", 1)
    error = context.op_exception
    reason = getattr(error, "description", None) or str(error) or type(error).__name__
    catalog: CatalogResource = context.resources.catalog
    catalog.catalog.finish_bundle(repo_id, bundle_key, "failed", {"error": reason, "step": context.step_key})


# One process runs the whole partition: a subprocess per step costs ~1.5 s each on two
# cores (shared notes §3) and would make every step decode the bundle again. Its threads run
# object puts and snapshot writes at once.
index_bundle = dg.define_asset_job(
    "index_bundle",
    selection=dg.AssetSelection.assets(*index_assets),
    executor_def=threaded_executor,
    hooks={mark_bundle_failed},
)
