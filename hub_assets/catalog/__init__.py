"""The PostgreSQL catalog (SPEC §5)."""

from .catalog import Catalog, RepoView
from .schema import PENDING

__all__ = ["PENDING", "Catalog", "RepoView"]
