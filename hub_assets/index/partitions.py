"""One dynamic partition per pushed bundle, keyed `<repo_id>/<bundle_key>`."""

import dagster as dg

bundles = dg.DynamicPartitionsDefinition(name="bundles")
