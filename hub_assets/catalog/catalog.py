"""The catalog: every read and write of the index and of the hub's sync paths."""

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
import zstandard
from psycopg.types.json import Jsonb
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..bundle import CommitRecord, Manifest, ObjectRecord, ResolvedSnapshot, decoded_bytes
from . import schema
from .bulk import copy_new_rows, copy_rows, insert_keys, present_keys
from .repos import RepoCatalog, RepoNameTaken, RepoRow, insert_repo_row
from .schema import PENDING


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class ManifestJson(Jsonb):
    """A manifest for a jsonb column, encoded by orjson when sent: manifests are most of a
    bundle's catalog bytes (33 MB at the reference push) and orjson encodes them 5-10x faster
    than json, to the same text. Jsonb, not text: a binary COPY must send jsonb's wire format.
    `size_hint` (about its encoded size) keeps bulk chunks bounded in bytes."""

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest, dumps=orjson.dumps)
        self.size_hint = sum(map(len, manifest)) + 72 * len(manifest)


class RepoView:
    """One repo's catalog, as decoding sees it (the CatalogView protocol)."""

    def __init__(self, engine: sa.Engine, repo_id: str) -> None:
        self._engine = engine
        self._repo_id = repo_id

    def snapshot_manifests(self, snapshot_ids: set[str]) -> dict[str, Manifest]:
        return dict(self._select(schema.snapshots.c.manifest, snapshot_ids))

    def existing_snapshots(self, snapshot_ids: set[str]) -> set[str]:
        return {snapshot_id for snapshot_id, _ in self._select(sa.literal(1), snapshot_ids)}

    def _select(self, column: Any, snapshot_ids: set[str]) -> list[tuple[str, Any]]:
        table = schema.snapshots
        query = sa.select(table.c.snapshot_id, column).where(
            table.c.repo_id == self._repo_id, table.c.snapshot_id.in_(sorted(snapshot_ids))
        )
        with self._engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]


PENDING_UPLOAD = "pending_upload"

T = TypeVar("T")


@dataclass(frozen=True)
class AcceptedPush:
    """What a validated push writes at its commit point (Catalog.accept_push). A thin push
    (commits and snapshots over HTTP, objects uploaded before) brings its commit and snapshot
    rows too, so they are fetchable the moment its branch moves; a bundle push leaves those to
    the index."""

    repo_id: str
    branch: str
    head: str
    expected_old_head: str | None
    force: bool
    bundle_key: str
    size_bytes: int
    inline_objects: Sequence[ObjectRecord]  # validated, with content: fetchable before any index run
    pending_upload: str | None  # the key the bytes wait under, until published to the upload prefix
    snapshots: Sequence[ResolvedSnapshot] = ()
    commits: Sequence[CommitRecord] = ()
    new_repo: RepoRow | None = None  # the repo the push makes: it exists only if the push is accepted


class Catalog(RepoCatalog):
    """PostgreSQL catalog of SPEC §5. Writers are bulk, chunked and idempotent."""

    def __init__(self, engine: sa.Engine, chunk_rows: int = 5000) -> None:
        self.engine = engine
        self.chunk_rows = chunk_rows

    @classmethod
    def connect(cls, url: str, chunk_rows: int = 5000) -> "Catalog":
        return cls(sa.create_engine(url, pool_pre_ping=True), chunk_rows)

    def create_schema(self) -> None:
        schema.create_schema(self.engine)

    def view(self, repo_id: str) -> RepoView:
        return RepoView(self.engine, repo_id)

    def _copy(self, table: sa.Table, columns: list[str], rows: Iterable[tuple], on_conflict: str) -> int:
        with self.engine.begin() as conn:
            return copy_rows(conn, table, columns, rows, on_conflict, self.chunk_rows)

    def _copy_missing(
        self,
        conn: sa.Connection,
        table: sa.Table,
        columns: list[str],
        items: Iterable[tuple[str, T]],
        to_row: Callable[[T], tuple],
        key: str,
        **scope: str,
    ) -> int:
        """The rows of the `items` ((value of `key`, item)) whose `key` (within the `scope`
        column values) is not in `table` yet: one query finds those present, the rest go
        straight in by binary COPY (`copy_new_rows`), each row made by `to_row` only as COPY
        takes it. For rows with large values, which staging would make PostgreSQL write twice."""
        items = list(items)
        present = present_keys(conn, table, key, [item_key for item_key, _ in items], **scope)
        missing = (to_row(item) for item_key, item in items if item_key not in present)
        return copy_new_rows(conn, table, columns, missing, "ON CONFLICT DO NOTHING", self.chunk_rows)

    def _add_inline_objects(self, conn: sa.Connection, objects: Iterable[ObjectRecord]) -> int:
        decompressor = zstandard.ZstdDecompressor()
        return self._copy_missing(
            conn,
            schema.objects,
            ["object_id", "size_bytes", "storage_uri", "content_cache"],
            ((o.object_id, o) for o in objects),
            # Decoded as COPY takes it, while the server stores the objects before.
            lambda o: (o.object_id, o.size_bytes, PENDING, decoded_bytes(o, decompressor)),
            key="object_id",
        )

    def add_inline_objects(self, rows: Iterable[tuple[str, bytes]]) -> int:
        """Objects fetchable before any index run: bytes in `content_cache`, store URI pending.
        An existing row, pending or promoted, is left as it is (write-once)."""
        with self.engine.begin() as conn:
            objects = (ObjectRecord(object_id, data, "identity", len(data)) for object_id, data in rows)
            return self._add_inline_objects(conn, objects)

    def add_stored_objects(self, rows: Iterable[tuple[str, int, str]]) -> int:
        """Objects now in the store: new rows, or pending rows promoted to their store URI with
        the inline copy dropped. A row already promoted is never changed."""
        return self._copy(
            schema.objects,
            ["object_id", "size_bytes", "storage_uri"],
            rows,
            "ON CONFLICT (object_id) DO UPDATE SET storage_uri = EXCLUDED.storage_uri, content_cache = NULL"
            f" WHERE musehub_objects.storage_uri = '{PENDING}'",
        )

    def add_object_refs(self, repo_id: str, object_ids: Iterable[str]) -> int:
        with self.engine.begin() as conn:
            return self._add_object_refs(conn, repo_id, object_ids)

    def _add_object_refs(self, conn: sa.Connection, repo_id: str, object_ids: Iterable[str]) -> int:
        return insert_keys(conn, schema.object_refs, "object_id", object_ids, self.chunk_rows, repo_id=repo_id)

    def add_snapshots(self, repo_id: str, snapshots: Iterable[ResolvedSnapshot]) -> int:
        """Snapshot rows not yet in the catalog (manifests are most of the catalog's bytes). A
        snapshot sent without `created_at` gets the time it was written."""
        with self.engine.begin() as conn:
            return self._add_snapshots(conn, repo_id, snapshots)

    def _add_snapshots(self, conn: sa.Connection, repo_id: str, snapshots: Iterable[ResolvedSnapshot]) -> int:
        now = datetime.now(UTC)
        # Sorted, as every writer of a table shared by concurrent transactions (see accept_push).
        ordered = sorted(snapshots, key=lambda s: s.snapshot_id)
        return self._copy_missing(
            conn,
            schema.snapshots,
            ["repo_id", "snapshot_id", "manifest", "created_at"],
            ((s.snapshot_id, s) for s in ordered),
            lambda s: (repo_id, s.snapshot_id, ManifestJson(s.manifest), s.created_at or now),
            key="snapshot_id",
            repo_id=repo_id,
        )

    def add_commits(self, repo_id: str, commits: Iterable[CommitRecord]) -> int:
        with self.engine.begin() as conn:
            return self._add_commits(conn, repo_id, commits)

    def _add_commits(self, conn: sa.Connection, repo_id: str, commits: Iterable[CommitRecord]) -> int:
        columns = ["repo_id", "commit_id", "parent_ids", "snapshot_id", "message", "author"]
        columns += ["committed_at", "committed_at_text", "commit_meta"]
        rows = (
            (
                repo_id,
                c.commit_id,
                to_json(list(c.parent_ids)),
                c.snapshot_id,
                c.message,
                c.author,
                c.committed_at_time,
                c.committed_at,
                to_json(c.meta),
            )
            for c in sorted(commits, key=lambda c: c.commit_id)
        )
        return copy_rows(conn, schema.commits, columns, rows, "ON CONFLICT DO NOTHING", self.chunk_rows)

    def record_bundle(self, repo_id: str, bundle_key: str, size_bytes: int, branch: str | None = None) -> None:
        """A pushed bundle, status `pushed`; an existing record keeps its status."""
        with self.engine.begin() as conn:
            _record_bundle(conn, repo_id, bundle_key, size_bytes, branch, {})

    def accept_push(self, push: AcceptedPush, before_commit: Callable[[], None] = lambda: None) -> bool:
        """A push's commit point, one transaction: the branch's compare-and-swap, the inline
        objects and their refs, the snapshot and commit rows a thin push brings, and the
        bundle's record (with `pending_upload`, the key its bytes wait under until they are
        published to the upload prefix). False, and nothing written, when the compare-and-swap
        fails. `before_commit` runs last inside the transaction (a write the commit must not
        precede, still under way); if it raises, nothing is written. A push that makes its repo
        (`new_repo`) inserts its row first: RepoNameTaken, nothing written, when a racing write
        took the name."""
        with self.engine.begin() as conn:
            if push.new_repo is not None and not insert_repo_row(conn, push.new_repo):
                raise RepoNameTaken(f"repo {push.new_repo.name} was made by another write meanwhile")
            if not _move_branch(conn, push.repo_id, push.branch, push.head, push.expected_old_head, push.force):
                return False
            # Sorted, here and in the snapshot and commit writers: two pushes sharing rows insert
            # them in one order, so neither waits on a row the other will only write later (no
            # deadlock).
            inline = sorted(push.inline_objects, key=attrgetter("object_id"))
            if inline:
                self._add_inline_objects(conn, inline)
                self._add_object_refs(conn, push.repo_id, map(attrgetter("object_id"), inline))
            if push.snapshots:
                self._add_snapshots(conn, push.repo_id, push.snapshots)
            if push.commits:
                self._add_commits(conn, push.repo_id, push.commits)
            stats = {PENDING_UPLOAD: push.pending_upload} if push.pending_upload else {}
            _record_bundle(conn, push.repo_id, push.bundle_key, push.size_bytes, push.branch, stats)
            before_commit()
        return True

    def pending_uploads(self) -> list[sa.Row]:
        """(repo_id, bundle_key, pending_upload) of the accepted pushes whose bytes may not be
        under the upload prefix yet (a push killed after its commit point)."""
        table = schema.bundles
        pending = table.c.stats[PENDING_UPLOAD].astext
        query = sa.select(table.c.repo_id, table.c.bundle_key, pending.label("pending_upload")).where(
            table.c.stats.has_key(PENDING_UPLOAD)
        )
        return self._all(query)

    def upload_published(self, repo_id: str, bundle_key: str) -> None:
        """The bundle's bytes are under the upload prefix: it no longer waits for them."""
        table = schema.bundles
        update = (
            sa.update(table)
            .where(table.c.repo_id == repo_id, table.c.bundle_key == bundle_key)
            .values(stats=table.c.stats.op("-")(PENDING_UPLOAD))
        )
        with self.engine.begin() as conn:
            conn.execute(update)

    def finish_bundle(self, repo_id: str, bundle_key: str, status: str, stats: dict[str, Any]) -> None:
        """Set the outcome of an index run. A bundle that reached the upload prefix without a
        push has no record yet: it gets one (size 0 until a push records it)."""
        table = schema.bundles
        values = {"status": status, "stats": stats, "indexed_at": sa.func.now() if status == "indexed" else None}
        upsert = pg_insert(table).values(repo_id=repo_id, bundle_key=bundle_key, size_bytes=0, **values)
        with self.engine.begin() as conn:
            conn.execute(upsert.on_conflict_do_update(index_elements=["repo_id", "bundle_key"], set_=values))

    def move_branch(self, repo_id: str, name: str, head: str, expected_old_head: str | None, force: bool) -> bool:
        """Compare-and-swap of a branch head: True if the branch now points at `head` because it
        still pointed at `expected_old_head` (None: did not exist), or because of `force`."""
        with self.engine.begin() as conn:
            return _move_branch(conn, repo_id, name, head, expected_old_head, force)


def _record_bundle(
    conn: sa.Connection, repo_id: str, bundle_key: str, size_bytes: int, branch: str | None, stats: dict[str, Any]
) -> None:
    insert = pg_insert(schema.bundles).values(
        repo_id=repo_id, bundle_key=bundle_key, branch=branch, size_bytes=size_bytes, status="pushed", stats=stats
    )
    conn.execute(insert.on_conflict_do_nothing())


def _move_branch(
    conn: sa.Connection, repo_id: str, name: str, head: str, expected_old_head: str | None, force: bool
) -> bool:
    table = schema.branches
    values = {"head_commit_id": head, "updated_at": sa.func.now()}
    insert = pg_insert(table).values(repo_id=repo_id, name=name, **values)
    if force:
        statement = insert.on_conflict_do_update(index_elements=["repo_id", "name"], set_=values)
    elif expected_old_head is None:
        statement = insert.on_conflict_do_nothing()
    else:
        statement = (
            sa.update(table)
            .where(table.c.repo_id == repo_id, table.c.name == name, table.c.head_commit_id == expected_old_head)
            .values(**values)
        )
    # RETURNING, not rowcount: an INSERT's rowcount is not reported through this driver.
    return conn.execute(statement.returning(table.c.head_commit_id)).first() is not None
