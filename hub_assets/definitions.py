"""The code location: one Definitions holding the index of pushed bundles."""

import dagster as dg
from dagster_aws.s3 import S3Resource

from .index.assets import index_assets
from .index.job import index_bundle
from .index.resources import BundleSource, CatalogResource, ObjectStoreResource
from .index.sensor import push_sweep_sensor, upload_sensor
from .settings import DATABASE_URL, OBJECT_STORE_URL

catalog = CatalogResource(url=dg.EnvVar(DATABASE_URL))
store = ObjectStoreResource(url=dg.EnvVar(OBJECT_STORE_URL), s3=S3Resource())

defs = dg.Definitions(
    assets=index_assets,
    jobs=[index_bundle],
    sensors=[upload_sensor, push_sweep_sensor],
    resources={"catalog": catalog, "store": store, "source": BundleSource()},
)
