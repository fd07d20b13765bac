"""Dagster instance of hub_assets: its storage."""
