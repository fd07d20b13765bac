"""Resources: the catalog, the object store, and the run's decoded bundles."""

import threading
import time
from dataclasses import dataclass, field, replace
from functools import cached_property

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from ..bundle import Bundle, Limits, decode_bundle
from ..catalog import Catalog
from ..settings import CHUNK_ROWS, IN_FLIGHT, bundle_limits, catalog_chunk_rows, objects_in_flight
from ..store import ObjectStore, open_store, split_partition_key, upload_key
from .timing import TimedStream


class CatalogResource(dg.ConfigurableResource):
    """The PostgreSQL catalog; one connection pool per run."""

    url: str = Field(description="SQLAlchemy URL, postgresql+psycopg://…")
    chunk_rows: int | None = Field(default=None, description=f"Rows per bulk write chunk; unset: {CHUNK_ROWS}.")
    _catalog: Catalog = PrivateAttr()
    _schema_checked: bool = PrivateAttr(default=False)
    _checking: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # No connection yet: a run that never asks for the catalog opens no session.
        self._catalog = Catalog.connect(self.url, self.chunk_rows or catalog_chunk_rows())

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._catalog.engine.dispose()

    @property
    def catalog(self) -> Catalog:
        """The catalog, its tables created on first use."""
        with self._checking:
            if not self._schema_checked:
                self._catalog.create_schema()
                self._schema_checked = True
        return self._catalog


class ObjectStoreResource(dg.ConfigurableResource):
    """The object store at `url`; S3 settings come from `s3` and the AWS_* variables."""

    url: str = Field(description="s3://bucket[/prefix] or file:///absolute/path")
    s3: dg.ResourceDependency[S3Resource]
    in_flight: int | None = Field(default=None, description=f"Object writes in flight per step; unset: {IN_FLIGHT}.")
    _store: ObjectStore = PrivateAttr()
    _in_flight: int = PrivateAttr()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._in_flight = self.in_flight or objects_in_flight()
        self._store = open_store(self.url, self.s3, max_connections=self._in_flight)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._store.close()

    @property
    def store(self) -> ObjectStore:
        return self._store

    @property
    def puts_in_flight(self) -> int:
        return self._in_flight


@dataclass
class BundleRun:
    """One bundle within one run: the decoded bundle and the time each phase took."""

    repo_id: str
    bundle: Bundle
    started: float
    phases_ms: dict[str, int] = field(default_factory=dict)

    @cached_property
    def ref_ids(self) -> list[str]:
        """The bundle's object refs, sorted; one pass over every manifest entry, so made once a run."""
        return sorted(self.bundle.object_ref_ids())


class BundleSource(dg.ConfigurableResource):
    """Decoded bundles, verified and validated, cached for the run.

    A bundle is content-addressed, so the decoded form of a partition never goes stale:
    the first asset of a run decodes it and the others reuse it, in memory, without
    pickling it through an IO manager. A run that starts further down decodes it again.

    The catalog and the store come from the asset asking, not as nested resources: Dagster
    sets up its own copy of a nested resource, so each run would open a second connection
    pool and a second store beside the assets' own.
    """

    # Unset limits come from the HUB_* variables when the run starts, not when the code loads,
    # so a long-lived process sees the environment of each run.
    max_commits: int | None = Field(default=None, description="Commits per bundle.")
    max_snapshots: int | None = Field(default=None, description="Snapshots per bundle.")
    max_objects: int | None = Field(default=None, description="Objects per bundle.")
    max_manifest_entries: int | None = Field(default=None, description="Entries per resolved snapshot.")
    max_object_bytes: int | None = Field(default=None, description="Decoded size of one object.")
    verify_object_ids: bool | None = Field(
        default=None, description="Hash every object against its declared id (for hubs taking untrusted pushes)."
    )
    _runs: dict[str, BundleRun] = PrivateAttr(default_factory=dict)
    _loading: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _limits(self) -> Limits:
        configured = {name: getattr(self, name) for name in vars(Limits())}
        return replace(bundle_limits(), **{name: value for name, value in configured.items() if value is not None})

    def load(self, partition_key: str, catalog: Catalog, store: ObjectStore) -> BundleRun:
        """The partition's bundle, read from `store` and resolved against `catalog`; raises
        BundleError when it must be refused. Steps running at once (a run started below
        `bundle`) wait for one decode rather than each making one."""
        with self._loading:
            return self._runs.get(partition_key) or self._decode(partition_key, catalog, store)

    def _decode(self, partition_key: str, catalog: Catalog, store: ObjectStore) -> BundleRun:
        started = time.perf_counter()
        repo_id, bundle_key = _split(partition_key)
        with store.open(upload_key(partition_key)) as raw:
            stream = TimedStream(raw)
            bundle = decode_bundle(
                stream,
                bundle_key=bundle_key,
                name=partition_key,
                limits=self._limits(),
                catalog=catalog.view(repo_id),
            )
        total_ms = _ms_since(started)
        run = BundleRun(repo_id, bundle, started)
        run.phases_ms["fetch_bundle_ms"] = stream.read_ms
        run.phases_ms["unpack_ms"] = total_ms - stream.read_ms
        self._runs[partition_key] = run
        return run


def _split(partition_key: str) -> tuple[str, str]:
    parts = split_partition_key(partition_key)
    if parts is None:
        raise ValueError(f"partition key {partition_key!r} is not <repo_id>/<64 hex bundle key>")
    return parts


def _ms_since(start: float) -> int:
    return round((time.perf_counter() - start) * 1000)
