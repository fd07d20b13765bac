"""Assertions on refused bundles: the error must name the bundle, the record and the reason."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hub_assets.bundle import BundleError

from .builders import BUNDLE_NAME, decode


def assert_names(error: BundleError, record: str, reason: str, name: str = BUNDLE_NAME) -> None:
    """`str(error)` names the bundle `name`, contains `record` and matches the regex `reason`."""
    message = str(error)
    assert f"bundle {name}" in message, message
    assert record in message, f"{record!r} not in {message!r}"
    assert re.search(reason, message, re.IGNORECASE), f"{reason!r} does not match {message!r}"


def rejected(data: bytes, record: str, reason: str, **decode_kwargs: Any) -> BundleError:
    """Decode `data`, expect a BundleError naming the bundle, `record` and `reason`; return it."""
    with pytest.raises(BundleError) as info:
        decode(data, **decode_kwargs)
    assert_names(info.value, record, reason, decode_kwargs.get("name", BUNDLE_NAME))
    return info.value
