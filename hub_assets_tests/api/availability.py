"""Skips for the tests that need fetch (`fetch_pack`, `negotiate`: branch issue-12-fetch) until it
is in this tree."""

from __future__ import annotations

import importlib

import pytest


def _has(module: str, name: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


needs_fetch = pytest.mark.skipif(
    not (_has("hub_assets.hub.fetch", "fetch_pack") and _has("hub_assets.hub.fetch", "negotiate")),
    reason="needs hub_assets.hub.fetch.fetch_pack and negotiate",
)
