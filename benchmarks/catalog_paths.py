"""Write paths into the catalog, measured: which way of getting many rows into PostgreSQL is fastest.

    .venv/bin/python benchmarks/catalog_paths.py [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Against a scratch database (created here, dropped at the end) of the local server, it writes

  * 200,000 rows into a table shaped like musehub_object_refs (repo_id text, object_id text, PK both);
  * ~1,000 snapshot rows whose `manifest` jsonb holds ~350 path -> 64-hex entries (~36 MB of JSON),
    once with the manifest column at its default storage and once with SET STORAGE EXTERNAL;

with each of these paths:

  (a) SQLAlchemy insert(...).on_conflict_do_nothing(), executemany in chunks of 500 (psycopg 3);
  (b) COPY into a temp staging table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING
      (hub_assets.catalog.bulk.copy_rows, as the Catalog writers call it);
  (c) one INSERT ... SELECT FROM unnest(text[], ...) ON CONFLICT DO NOTHING per chunk of 5,000;
  (d) COPY straight into the target table, no staging and no conflict handling (the floor).

Each is run 3 times into a freshly truncated table, in one transaction including its commit; the
median is printed. Serialising manifests to JSON is part of every snapshot measurement.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub_assets.catalog.bulk import copy_rows
from hub_assets.embedded_postgres import libpq_conninfo, with_database

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REF_ROWS = 200_000
SNAPSHOT_ROWS = 1_000
MANIFEST_ENTRIES = 350
REPEATS = 3
SA_CHUNK = 500
UNNEST_CHUNK = 5_000
COPY_CHUNK = 5_000  # Catalog's default chunk_rows

metadata = sa.MetaData()
refs = sa.Table(
    "bench_object_refs",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("object_id", sa.Text, primary_key=True),
)
snapshots = sa.Table(
    "bench_snapshots",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("snapshot_id", sa.Text, primary_key=True),
    sa.Column("manifest", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
)

Rows = list[tuple[Any, ...]]
Path_ = Callable[[sa.Connection, sa.Table, Sequence[str], Rows], None]


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- the data -----------------------------------------------------------------------------------


def hex64(rng: random.Random) -> str:
    return rng.randbytes(32).hex()


def ref_rows(rng: random.Random) -> Rows:
    repo = str(uuid.UUID(int=rng.getrandbits(128)))
    return [(repo, hex64(rng)) for _ in range(REF_ROWS)]


def snapshot_rows(rng: random.Random) -> Rows:
    repo = str(uuid.UUID(int=rng.getrandbits(128)))
    rows = []
    for s in range(SNAPSHOT_ROWS):
        manifest = {
            f"tracks/s{s:04d}/instr-{i // 10:03d}/part-{i % 10:02d}.mid": hex64(rng) for i in range(MANIFEST_ENTRIES)
        }
        rows.append((repo, hex64(rng), manifest))
    return rows


def is_snapshot(table: sa.Table) -> bool:
    return "manifest" in table.c


def serialised(table: sa.Table, rows: Rows) -> Rows:
    """Rows as text for COPY / unnest: manifests become JSON here (inside the measurement)."""
    return [(r, s, to_json(m)) for r, s, m in rows] if is_snapshot(table) else rows


# --- the paths ----------------------------------------------------------------------------------


def path_sa_executemany(conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Rows) -> None:
    statement = pg_insert(table).on_conflict_do_nothing()
    for start in range(0, len(rows), SA_CHUNK):
        conn.execute(statement, [dict(zip(columns, row, strict=True)) for row in rows[start : start + SA_CHUNK]])


def path_copy_staging(conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Rows) -> None:
    copy_rows(conn, table, columns, serialised(table, rows), "ON CONFLICT DO NOTHING", COPY_CHUNK)


def path_unnest(conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Rows) -> None:
    rows = serialised(table, rows)
    casts = ", ".join(f"u.{name}::{table.c[name].type.compile(dialect=conn.dialect)}" for name in columns)
    arrays = ", ".join("%s::text[]" for _ in columns)
    names = ", ".join(columns)
    query = (
        f"INSERT INTO {table.name} ({names}) SELECT {casts} FROM unnest({arrays}) AS u({names}) ON CONFLICT DO NOTHING"
    )
    cursor = conn.connection.driver_connection.cursor()
    for start in range(0, len(rows), UNNEST_CHUNK):
        chunk = rows[start : start + UNNEST_CHUNK]
        cursor.execute(query, [list(values) for values in zip(*chunk, strict=True)])


def path_copy_direct(conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Rows) -> None:
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in serialised(table, rows):
            copy.write_row(row)


PATHS: list[tuple[str, Path_]] = [
    ("a sa executemany/500", path_sa_executemany),
    ("b copy+staging", path_copy_staging),
    ("c unnest/5000", path_unnest),
    ("d copy direct (floor)", path_copy_direct),
]


# --- measuring ----------------------------------------------------------------------------------


def measure(engine: sa.Engine, table: sa.Table, columns: Sequence[str], rows: Rows, path: Path_) -> tuple[float, int]:
    """Median seconds of REPEATS runs into a truncated table, and the table's size after a run."""
    times = []
    size = 0
    for _ in range(REPEATS):
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {table.name}"))
        started = time.perf_counter()
        with engine.begin() as conn:
            path(conn, table, columns, rows)
        times.append(time.perf_counter() - started)
        with engine.connect() as conn:
            count = conn.execute(sa.text(f"SELECT count(*) FROM {table.name}")).scalar_one()
            size = conn.execute(sa.text(f"SELECT pg_total_relation_size('{table.name}')")).scalar_one()
        if count != len(rows):
            raise AssertionError(f"{table.name}: {count} rows written, expected {len(rows)}")
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default=ADMIN_URL)
    args = parser.parse_args()

    rng = random.Random(20260101)
    ref_data = ref_rows(rng)
    snapshot_data = snapshot_rows(rng)
    json_mb = sum(len(to_json(m)) for _, _, m in snapshot_data) / 1e6
    print(f"refs: {len(ref_data):,} rows; snapshots: {len(snapshot_data):,} rows, {json_mb:.1f} MB of manifest JSON")

    name = f"bench_catalog_{uuid.uuid4().hex[:12]}"
    admin = libpq_conninfo(args.admin_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    engine = sa.create_engine(with_database(args.admin_url, name))
    results: list[tuple[str, str, int, float, int]] = []
    try:
        metadata.create_all(engine)
        for label, path in PATHS:
            seconds, size = measure(engine, refs, ["repo_id", "object_id"], ref_data, path)
            results.append((label, "object_refs", len(ref_data), seconds, size))
            print(f"  {label} / object_refs: {seconds:.2f}s", file=sys.stderr)
        for storage in ("default", "external"):
            with engine.begin() as conn:
                # EXTENDED is jsonb's default: pglz-compress, then move out of line if still large.
                mode = "EXTERNAL" if storage == "external" else "EXTENDED"
                conn.execute(sa.text(f"ALTER TABLE {snapshots.name} ALTER COLUMN manifest SET STORAGE {mode}"))
            for label, path in PATHS:
                columns = ["repo_id", "snapshot_id", "manifest"]
                seconds, size = measure(engine, snapshots, columns, snapshot_data, path)
                results.append((label, f"snapshots/{storage}", len(snapshot_data), seconds, size))
                print(f"  {label} / snapshots {storage}: {seconds:.2f}s", file=sys.stderr)
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    header = f"| {'path':<22} | {'table':<19} | {'rows':>7} | {'seconds':>7} | {'rows/s':>9} | {'table MB':>8} |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for label, table, rows, seconds, size in results:
        rate, mb = rows / seconds, size / 1e6
        print(f"| {label:<22} | {table:<19} | {rows:>7,} | {seconds:>7.2f} | {rate:>9,.0f} | {mb:>8.1f} |")


if __name__ == "__main__":
    main()
