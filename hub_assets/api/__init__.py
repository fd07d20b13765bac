"""The hub's HTTP API: the Muse Wire Protocol the real `muse` client speaks (SPEC §10)."""

from .app import app_from_environment, create_app
from .http import ApiLimits

__all__ = ["ApiLimits", "app_from_environment", "create_app"]
