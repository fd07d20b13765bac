"""What the sync paths (push, fetch, clone, stream push) work against."""

from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field

from .. import settings
from ..bundle import Limits
from ..catalog import Catalog
from ..store import ObjectStore, open_store

# A publish is a few store requests and one UPDATE: 4 threads keep up with far more pushes a second
# than one process accepts.
PUBLISHER_THREADS = 4


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
    # Where an accepted push's bytes are published to the upload prefix once the push has
    # returned: a server's pusher then waits only for the commit point, after which the push is
    # fetchable. None: published before the push returns (the CLI, whose process ends with it).
    # Either way a kill before publishing leaves it to the sweep (hub/sweep.py).
    publisher: Executor | None = None

    @classmethod
    def connect(cls, database_url: str, store_url: str, *, publish_in_background: bool = False) -> "Hub":
        catalog = Catalog.connect(database_url)
        catalog.create_schema()
        publisher = ThreadPoolExecutor(PUBLISHER_THREADS, "publish") if publish_in_background else None
        return cls(catalog, open_store(store_url), publisher=publisher)

    def close(self) -> None:
        """Finish the publishing still under way, then release connections."""
        if self.publisher is not None:
            self.publisher.shutdown(wait=True)
        self.store.close()
        self.catalog.engine.dispose()
