"""The PostgreSQL catalog (SPEC §5)."""

from .catalog import AcceptedPush, Catalog, RepoView
from .schema import PENDING

__all__ = ["PENDING", "AcceptedPush", "Catalog", "RepoView"]
