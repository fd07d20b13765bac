"""The PostgreSQL catalog (SPEC §5)."""

from .catalog import AcceptedPush, Catalog, RepoView
from .repos import RepoNameTaken, RepoRow
from .schema import PENDING

__all__ = ["PENDING", "AcceptedPush", "Catalog", "RepoNameTaken", "RepoRow", "RepoView"]
