"""Skips for the tests that need the sync paths of the other halves of issue 12 (thin push on
branch issue-12-push, fetch on issue-12-fetch) until they are in this tree."""

from __future__ import annotations

import importlib

import pytest


def _has(module: str, name: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


needs_thin_push = pytest.mark.skipif(
    not _has("hub_assets.hub.thin_push", "thin_push"), reason="needs hub_assets.hub.thin_push.thin_push"
)
needs_fetch = pytest.mark.skipif(
    not (_has("hub_assets.hub.fetch", "fetch_pack") and _has("hub_assets.hub.fetch", "negotiate")),
    reason="needs hub_assets.hub.fetch.fetch_pack and negotiate",
)
