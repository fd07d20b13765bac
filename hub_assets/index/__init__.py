"""The Dagster side: partitions, resources, assets, checks, sensor and job of the index."""
