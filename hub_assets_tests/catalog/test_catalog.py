"""The catalog writers and reads against a real PostgreSQL (SPEC §5), one fresh database per test."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from hub_assets.bundle import CommitRecord, ResolvedSnapshot
from hub_assets.catalog import PENDING, Catalog

REPO = "b0ad9068-9b14-4901-a2ca-7704fc777927"
OTHER_REPO = "5f0c7d2e-3a41-4c8e-9d7b-0e6a1f2b3c4d"
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def hex_id(label: object) -> str:
    return hashlib.sha256(f"catalog-test:{label}".encode()).hexdigest()


def object_rows(n: int, tag: str = "") -> list[tuple[str, bytes]]:
    return [(hex_id(f"object{tag}{i}"), f"bytes of object {tag}{i} ✓".encode() * (i + 1)) for i in range(n)]


def manifest_of(i: int) -> dict[str, str]:
    return {
        f"tracks/{i}/ligne-é.mid": hex_id(f"m{i}a"),
        f"音楽/{i}/主旋律.musicxml": hex_id(f"m{i}b"),
        "emoji 🎹/key.txt": hex_id(f"m{i}c"),
        "plain.txt": hex_id(i),
    }


def snapshot_records(n: int) -> list[ResolvedSnapshot]:
    return [ResolvedSnapshot(hex_id(f"snapshot{i}"), manifest_of(i), T0 + timedelta(minutes=i)) for i in range(n)]


def commit_records(n: int) -> list[CommitRecord]:
    commits = []
    for i in range(n):
        moment = T0 + timedelta(hours=i, microseconds=i)
        # Parents deliberately out of lexicographic order: the stored order must be the given one.
        parents = (hex_id(f"commit{i - 1}"), "0" * 64) if i % 2 else (hex_id(f"commit{i - 1}"),) if i else ()
        commits.append(
            CommitRecord(
                commit_id=hex_id(f"commit{i}"),
                snapshot_id=hex_id(f"snapshot{i}"),
                message=f"commit {i}: ajouté la mélodie 🎶",
                author=f"Zoë {i}",
                # Muse's own text, which timestamptz would normalise: kept verbatim alongside.
                committed_at=moment.isoformat().replace("+00:00", "Z") if i % 3 == 0 else moment.isoformat(),
                committed_at_time=moment,
                parent_ids=parents,
                meta={
                    "n": i,
                    "tags": ["ré", {"nested": [1, 2.5, None, True]}],
                    "agent": {"name": "muse", "version": "0.1", "empty": {}},
                    "ünïcode": "日本語",
                },
            )
        )
    return commits


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def catalog(engine: sa.Engine) -> Catalog:
    catalog = Catalog(engine)
    catalog.create_schema()
    return catalog


# Columns whose value is the server's clock, not the caller's: left out when two separate writes are compared.
CLOCK_COLUMNS = {"created_at", "updated_at", "pushed_at", "indexed_at"}


def table_digest(engine: sa.Engine, skip_clock: bool = False) -> dict[str, str]:
    """A digest per musehub_* table of all its rows, ordered by primary key."""
    inspector = sa.inspect(engine)
    digests = {}
    with engine.connect() as conn:
        for name in sorted(t for t in inspector.get_table_names() if t.startswith("musehub_")):
            pk = inspector.get_pk_constraint(name)["constrained_columns"]
            columns = [c["name"] for c in inspector.get_columns(name)]
            if skip_clock:
                columns = [c for c in columns if c not in CLOCK_COLUMNS]
            select = ", ".join(f"{c}::text" for c in columns)
            rows = conn.execute(sa.text(f"SELECT {select} FROM {name} ORDER BY {', '.join(pk)}")).all()
            digests[name] = hashlib.sha256(repr(rows).encode()).hexdigest() + f" ({len(rows)} rows)"
    return digests


def truncate_all(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        names = [t for t in sa.inspect(conn).get_table_names() if t.startswith("musehub_")]
        conn.execute(sa.text(f"TRUNCATE {', '.join(names)}"))


@dataclass(frozen=True)
class Writer:
    name: str
    write: Callable[[Catalog], int]


WRITERS = [
    Writer("add_inline_objects", lambda c: c.add_inline_objects(object_rows(10))),
    Writer(
        "add_stored_objects",
        lambda c: c.add_stored_objects((oid, len(data), f"file:///s/{oid}") for oid, data in object_rows(10)),
    ),
    Writer("add_object_refs", lambda c: c.add_object_refs(REPO, (oid for oid, _ in object_rows(10)))),
    Writer("add_snapshots", lambda c: c.add_snapshots(REPO, snapshot_records(10))),
    Writer("add_commits", lambda c: c.add_commits(REPO, commit_records(10))),
]


# --- schema -----------------------------------------------------------------------------------


def test_create_schema_twice(engine: sa.Engine) -> None:
    catalog = Catalog(engine)
    catalog.create_schema()
    catalog.add_object_refs(REPO, ["a" * 64])
    catalog.create_schema()
    assert catalog.count_refs(REPO, ["a" * 64]) == 1
    # Large manifests skip pglz (SPEC perf notes): the column is stored EXTERNAL, also after a re-run.
    query = sa.text(
        "SELECT attstorage FROM pg_attribute WHERE attrelid = 'musehub_snapshots'::regclass AND attname = 'manifest'"
    )
    with engine.connect() as conn:
        assert conn.execute(query).scalar_one() == "e"


def server_has_lz4(engine: sa.Engine) -> bool:
    query = "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    with engine.connect() as conn:
        return conn.execute(sa.text(query)).scalar_one()


def content_cache_storage(engine: sa.Engine) -> tuple[str, str]:
    """(attstorage, attcompression) of musehub_objects.content_cache."""
    query = sa.text(
        "SELECT attstorage::text, attcompression::text FROM pg_attribute"
        " WHERE attrelid = 'musehub_objects'::regclass AND attname = 'content_cache'"
    )
    with engine.connect() as conn:
        return tuple(conn.execute(query).one())


def test_inline_bytes_are_lz4_compressed_where_the_server_has_lz4(catalog: Catalog) -> None:
    lz4 = server_has_lz4(catalog.engine)
    assert content_cache_storage(catalog.engine) == (("x", "l") if lz4 else ("e", ""))
    data = b"".join(hex_id(i).encode() * 4 for i in range(64))  # 16 KiB, over the TOAST threshold
    catalog.add_inline_objects([(hex_id("big"), data)])
    query = sa.text("SELECT pg_column_compression(content_cache) FROM musehub_objects")
    with catalog.engine.connect() as conn:
        assert conn.execute(query).scalar_one() == ("lz4" if lz4 else None)
    assert bytes(object_row(catalog, hex_id("big")).content_cache) == data


def test_create_schema_gives_an_existing_catalog_the_inline_storage(catalog: Catalog) -> None:
    [(oid, data)] = object_rows(1)
    catalog.add_inline_objects([(oid, data)])
    wanted = content_cache_storage(catalog.engine)
    # The other setting: as made before lz4 was used, or as another server's catalog.
    other = "EXTERNAL, ALTER COLUMN content_cache SET COMPRESSION default" if wanted[0] == "x" else "EXTENDED"
    with catalog.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE musehub_objects ALTER COLUMN content_cache SET STORAGE {other}"))
    assert content_cache_storage(catalog.engine) != wanted
    catalog.create_schema()
    assert content_cache_storage(catalog.engine) == wanted
    assert bytes(object_row(catalog, oid).content_cache) == data


def test_create_schema_concurrently_on_fresh_database(pg_url: str) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def create() -> None:
        catalog = Catalog.connect(pg_url)
        try:
            barrier.wait()
            catalog.create_schema()
        except BaseException as error:
            errors.append(error)
        finally:
            catalog.engine.dispose()

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    engine = sa.create_engine(pg_url)
    try:
        names = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"musehub_objects", "musehub_object_refs", "musehub_snapshots", "musehub_commits"} <= names
    assert {"musehub_branches", "musehub_bundles"} <= names


# --- writers: idempotence and chunking --------------------------------------------------------


@pytest.mark.parametrize("writer", WRITERS, ids=[w.name for w in WRITERS])
def test_writer_is_idempotent(catalog: Catalog, writer: Writer) -> None:
    assert writer.write(catalog) == 10
    before = table_digest(catalog.engine)
    assert writer.write(catalog) == 0
    assert table_digest(catalog.engine) == before


@pytest.mark.parametrize("writer", WRITERS, ids=[w.name for w in WRITERS])
def test_chunked_write_equals_single_chunk(catalog: Catalog, writer: Writer) -> None:
    assert writer.write(Catalog(catalog.engine, chunk_rows=5000)) == 10
    one_chunk = table_digest(catalog.engine, skip_clock=True)
    truncate_all(catalog.engine)
    assert writer.write(Catalog(catalog.engine, chunk_rows=3)) == 10
    assert table_digest(catalog.engine, skip_clock=True) == one_chunk
    assert writer.write(Catalog(catalog.engine, chunk_rows=3)) == 0


def test_chunking_counts_manifests_by_their_size() -> None:
    from hub_assets.catalog.bulk import batched
    from hub_assets.catalog.catalog import ManifestJson

    manifest = {f"tracks/{i:04}.mid": hex_id(i) for i in range(1000)}  # ~85 KB of JSON
    rows = [(REPO, ManifestJson(manifest))] * 10
    assert [len(chunk) for chunk in batched(rows, max_rows=1000, max_bytes=200_000)] == [3, 3, 3, 1]


def test_chunking_by_bytes() -> None:
    from hub_assets.catalog.bulk import batched

    rows = [("x" * 100,)] * 10
    assert [len(chunk) for chunk in batched(rows, max_rows=1000, max_bytes=250)] == [3, 3, 3, 1]
    assert [len(chunk) for chunk in batched(rows, max_rows=4, max_bytes=10**9)] == [4, 4, 2]
    assert list(batched([], 3, 10)) == []


def test_snapshots_skip_present_rows_and_write_the_rest(catalog: Catalog) -> None:
    records = snapshot_records(10)
    assert catalog.add_snapshots(REPO, records[2:5]) == 3
    assert catalog.add_snapshots(REPO, records) == 7
    assert catalog.add_snapshots(OTHER_REPO, records) == 10
    assert catalog.view(REPO).snapshot_manifests({r.snapshot_id for r in records}) == {
        r.snapshot_id: r.manifest for r in records
    }


def test_direct_copy_meeting_a_concurrent_row_falls_back_within_the_transaction(catalog: Catalog) -> None:
    """A row written by another run between the caller's check and its COPY: the chunk is
    rolled back to a savepoint and written through ON CONFLICT; earlier writes of the same
    transaction stay."""
    from hub_assets.catalog import schema
    from hub_assets.catalog.bulk import copy_new_rows
    from hub_assets.catalog.catalog import ManifestJson

    records = snapshot_records(6)
    catalog.add_snapshots(REPO, records[3:4])
    columns = ["repo_id", "snapshot_id", "manifest", "created_at"]
    rows = [(REPO, r.snapshot_id, ManifestJson(r.manifest), r.created_at) for r in records]
    with catalog.engine.begin() as conn:
        assert copy_new_rows(conn, schema.snapshots, columns, rows[:2], "ON CONFLICT DO NOTHING", 2) == 2
        assert copy_new_rows(conn, schema.snapshots, columns, rows[2:], "ON CONFLICT DO NOTHING", 2) == 3
    expected = {r.snapshot_id: r.manifest for r in records}
    assert catalog.view(REPO).snapshot_manifests(set(expected)) == expected


# --- objects: pending, promotion, write-once --------------------------------------------------


def object_row(catalog: Catalog, object_id: str) -> sa.Row:
    query = sa.text("SELECT size_bytes, storage_uri, content_cache FROM musehub_objects WHERE object_id = :id")
    with catalog.engine.connect() as conn:
        return conn.execute(query, {"id": object_id}).one()


def test_inline_object_is_pending_with_cache(catalog: Catalog) -> None:
    [(oid, data)] = object_rows(1)
    assert catalog.add_inline_objects([(oid, data)]) == 1
    row = object_row(catalog, oid)
    assert (row.size_bytes, row.storage_uri, bytes(row.content_cache)) == (len(data), PENDING, data)
    assert catalog.object_states([oid])[0] == set()
    # A second inline write of the same id leaves the pending row as it is.
    assert catalog.add_inline_objects([(oid, b"other")]) == 0
    assert bytes(object_row(catalog, oid).content_cache) == data


def test_inline_objects_repeating_an_id_in_one_call_write_it_once(catalog: Catalog) -> None:
    """The direct COPY meets its own duplicate: the chunk falls back to ON CONFLICT."""
    [(oid, data), (other, other_data)] = object_rows(2)
    assert catalog.add_inline_objects([(oid, data), (other, other_data), (oid, data)]) == 2
    assert bytes(object_row(catalog, oid).content_cache) == data
    assert catalog.object_row_summary([oid, other]) == {"rows": 2, "promoted": 0, "cached": 2}


def test_stored_objects_promote_pending_row(catalog: Catalog) -> None:
    [(oid, data)] = object_rows(1)
    catalog.add_inline_objects([(oid, data)])
    uri = f"s3://hub/objects/{oid[:2]}/{oid[2:]}"
    assert catalog.add_stored_objects([(oid, len(data), uri)]) == 1
    row = object_row(catalog, oid)
    assert (row.size_bytes, row.storage_uri, row.content_cache) == (len(data), uri, None)
    assert catalog.object_row_summary([oid]) == {"rows": 1, "promoted": 1, "cached": 0}


def test_promoted_row_is_write_once(catalog: Catalog) -> None:
    [(oid, data)] = object_rows(1)
    first = f"file:///first/{oid}"
    assert catalog.add_stored_objects([(oid, len(data), first)]) == 1
    assert catalog.add_stored_objects([(oid, len(data) + 99, "s3://other/place")]) == 0
    assert tuple(object_row(catalog, oid)) == (len(data), first, None)


def test_inline_write_leaves_promoted_row(catalog: Catalog) -> None:
    [(oid, data)] = object_rows(1)
    uri = f"file:///store/{oid}"
    catalog.add_stored_objects([(oid, len(data), uri)])
    assert catalog.add_inline_objects([(oid, b"different bytes")]) == 0
    assert tuple(object_row(catalog, oid)) == (len(data), uri, None)


def test_stored_objects_mixed_batch(catalog: Catalog) -> None:
    rows = object_rows(6)
    catalog.add_inline_objects(rows[:4])  # 0..3 pending
    catalog.add_stored_objects([(oid, len(d), f"file:///a/{oid}") for oid, d in rows[:2]])  # 0, 1 promoted
    written = catalog.add_stored_objects([(oid, len(d), f"file:///b/{oid}") for oid, d in rows])
    assert written == 4  # 2, 3 promoted; 4, 5 new
    ids = [oid for oid, _ in rows]
    assert catalog.object_states(ids)[0] == set(ids)
    assert [object_row(catalog, oid).storage_uri.split("/")[3] for oid in ids] == ["a", "a", "b", "b", "b", "b"]
    assert catalog.object_row_summary(ids) == {"rows": 6, "promoted": 6, "cached": 0}


def test_object_states_split_promoted_from_inline(catalog: Catalog) -> None:
    rows = object_rows(5)
    ids = [oid for oid, _ in rows]
    catalog.add_inline_objects(rows)
    catalog.add_stored_objects([(ids[1], 1, "file:///x/1"), (ids[3], 1, "file:///x/3")])
    unknown = hex_id("never written")
    promoted, inline = catalog.object_states([*ids, unknown])
    assert promoted == {ids[1], ids[3]}
    assert inline == {oid: data for oid, data in rows if oid not in promoted}
    assert catalog.object_states([]) == (set(), {})


# --- snapshots and commits --------------------------------------------------------------------


def test_snapshot_manifests_round_trip(catalog: Catalog) -> None:
    snapshots = [*snapshot_records(3), ResolvedSnapshot(hex_id("empty"), {}, None)]
    assert catalog.add_snapshots(REPO, snapshots) == 4
    manifests = catalog.view(REPO).snapshot_manifests({s.snapshot_id for s in snapshots})
    assert manifests == {s.snapshot_id: s.manifest for s in snapshots}
    assert all(isinstance(m, dict) for m in manifests.values())
    rows = catalog.snapshot_rows(REPO, [snapshots[0].snapshot_id])
    assert rows[0].created_at == T0


def test_repo_view_is_scoped_to_its_repo(catalog: Catalog) -> None:
    shared, own = snapshot_records(2)
    other_manifest = {"other.txt": hex_id("other")}
    catalog.add_snapshots(REPO, [shared, own])
    # The same snapshot id in another repo, with a different manifest: neither view sees the other's row.
    catalog.add_snapshots(OTHER_REPO, [ResolvedSnapshot(shared.snapshot_id, other_manifest, None)])
    only_other = ResolvedSnapshot(hex_id("only other"), other_manifest, None)
    catalog.add_snapshots(OTHER_REPO, [only_other])
    ids = {shared.snapshot_id, own.snapshot_id, only_other.snapshot_id, hex_id("nowhere")}

    view = catalog.view(REPO)
    assert view.existing_snapshots(ids) == {shared.snapshot_id, own.snapshot_id}
    assert view.snapshot_manifests(ids) == {shared.snapshot_id: shared.manifest, own.snapshot_id: own.manifest}
    other = catalog.view(OTHER_REPO)
    assert other.existing_snapshots(ids) == {shared.snapshot_id, only_other.snapshot_id}
    assert other.snapshot_manifests({shared.snapshot_id}) == {shared.snapshot_id: other_manifest}
    assert catalog.view("no-such-repo").existing_snapshots(ids) == set()
    assert view.existing_snapshots(set()) == set()


def test_commit_rows_are_kept_verbatim(catalog: Catalog) -> None:
    commits = commit_records(4)
    assert catalog.add_commits(REPO, commits) == 4
    rows = {row.commit_id: row for row in catalog.history(REPO, commits[-1].commit_id)}
    assert set(rows) == {c.commit_id for c in commits}
    for commit in commits:
        row = rows[commit.commit_id]
        assert row.parent_ids == list(commit.parent_ids)  # first parent first, not sorted
        assert row.committed_at_text == commit.committed_at
        assert row.committed_at == commit.committed_at_time
        assert row.commit_meta == commit.meta
        assert (row.snapshot_id, row.message, row.author) == (commit.snapshot_id, commit.message, commit.author)
    assert rows[commits[3].commit_id].parent_ids[0] == commits[2].commit_id
    assert rows[commits[0].commit_id].parent_ids == []


def test_commit_meta_keys_survive_exactly(catalog: Catalog) -> None:
    meta = {"b": 1, "a": {"z": [3, 2, 1], "y": "\u00e9\u0301"}, "": "", "big": 2**53 + 1, "f": 0.1}
    commit = CommitRecord(
        hex_id("meta"),
        hex_id("s"),
        "m",
        "a",
        "2026-01-01T00:00:00+01:00",
        datetime(2026, 1, 1, tzinfo=UTC) - timedelta(hours=1),
        (),
        meta,
    )
    catalog.add_commits(REPO, [commit])
    [row] = catalog.history(REPO, commit.commit_id)
    assert row.commit_meta == meta
    assert row.committed_at_text == "2026-01-01T00:00:00+01:00"


def test_object_refs_are_per_repo(catalog: Catalog) -> None:
    ids = [oid for oid, _ in object_rows(4)]
    assert catalog.add_object_refs(REPO, ids[:3]) == 3
    assert catalog.add_object_refs(OTHER_REPO, ids[2:]) == 2
    assert catalog.add_object_refs(REPO, ids) == 1
    assert catalog.count_refs(REPO, ids) == 4
    assert catalog.count_refs(OTHER_REPO, ids) == 2
