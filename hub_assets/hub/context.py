"""What the sync paths (push, fetch, clone, stream push) work against."""

from dataclasses import dataclass, field

from .. import settings
from ..bundle import Limits
from ..catalog import Catalog
from ..store import ObjectStore, open_store


class HubError(Exception):
    """A sync request refused; the message is the one-line reason given to the client."""


class NotFound(HubError):
    """The same answer for what does not exist and what the repo may not see."""


class BundleRefused(HubError):
    """The bundle breaks a rule of SPEC §3; the message names the bundle, the record and the reason."""


class BranchConflict(HubError):
    """The branch moved since the client read it."""


class NotFastForward(BranchConflict):
    """The pushed head does not descend from the branch head the push expected."""


@dataclass
class Hub:
    catalog: Catalog
    store: ObjectStore
    limits: Limits = field(default_factory=settings.bundle_limits)
    inline_bundle_max_bytes: int = field(default_factory=settings.inline_bundle_max_bytes)
    inline_object_max_bytes: int = field(default_factory=settings.inline_object_max_bytes)

    @classmethod
    def connect(cls, database_url: str, store_url: str) -> "Hub":
        catalog = Catalog.connect(database_url)
        catalog.create_schema()
        return cls(catalog, open_store(store_url))

    def close(self) -> None:
        self.store.close()
        self.catalog.engine.dispose()
