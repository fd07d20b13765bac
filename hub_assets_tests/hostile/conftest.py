"""Fixtures of the hostile tests: the index's HubEnv (a fresh catalog, store and Dagster instance
per test) and the sync paths on the same catalog and store."""

from __future__ import annotations

import pytest

from hub_assets.hub import Hub
from hub_assets_tests.index.conftest import HubEnv, hub_env

__all__ = ["hub", "hub_env"]


@pytest.fixture
def hub(hub_env: HubEnv) -> Hub:
    """push, read_object… on `hub_env`'s catalog and store, with the limits the environment sets now."""
    return Hub(hub_env.catalog, hub_env.store)
