"""Bulk, idempotent row writes: COPY into a staging table, then one INSERT ... ON CONFLICT per chunk.

COPY is the cheapest way to get rows into PostgreSQL; the staging table lets the final
INSERT resolve conflicts, which makes every writer safe to run twice. Rows the caller has
just found missing can skip the staging table (`copy_new_rows`).
"""

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa

CHUNK_BYTES = 16 * 1024 * 1024


def batched(rows: Iterable[Sequence[Any]], max_rows: int, max_bytes: int) -> Iterator[list[Sequence[Any]]]:
    """Chunks of at most `max_rows` rows and about `max_bytes` of text, bytes and values that
    give a `size_hint`: a row count alone would let a chunk of large manifests grow to hundreds
    of megabytes."""
    chunk: list[Sequence[Any]] = []
    size = 0
    for row in rows:
        chunk.append(row)
        size += sum(len(value) if isinstance(value, str | bytes) else getattr(value, "size_hint", 0) for value in row)
        if len(chunk) >= max_rows or size >= max_bytes:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def copy_rows(
    conn: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    on_conflict: str,
    chunk_rows: int,
    chunk_bytes: int = CHUNK_BYTES,
) -> int:
    """Write `rows` into `table` within the caller's transaction; return the rows the final
    INSERT touched (inserted, or updated by `on_conflict`)."""
    names = ", ".join(columns)
    staging = f"stage_{table.name}_{hashlib.sha1(names.encode()).hexdigest()[:8]}"
    # Staging columns are uncompressed text: COPY then only stores bytes, and each value is
    # parsed and (not) compressed once, by the cast into the real column. A jsonb or default
    # text staging column would pay pglz on every large manifest twice.
    casts = ", ".join(f"{name}::{table.c[name].type.compile(dialect=conn.dialect)}" for name in columns)
    cursor = conn.connection.driver_connection.cursor()
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} ({', '.join(f'{name} text' for name in columns)})")
    cursor.execute(
        f"ALTER TABLE {staging} " + ", ".join(f"ALTER COLUMN {name} SET STORAGE EXTERNAL" for name in columns)
    )
    written = 0
    for chunk in batched(rows, chunk_rows, chunk_bytes):
        cursor.execute(f"TRUNCATE {staging}")
        with cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for row in chunk:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO {table.name} ({names}) SELECT {casts} FROM {staging} {on_conflict}")
        written += cursor.rowcount
    return written


def copy_new_rows(
    conn: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    on_conflict: str,
    chunk_rows: int,
    chunk_bytes: int = CHUNK_BYTES,
) -> int:
    """Like `copy_rows`, for rows expected to be new: each chunk is COPYed straight into `table`,
    so the server parses and stores each value once, while the client is still encoding the
    next rows. A chunk that meets a row written meanwhile (a concurrent run) is rolled back to
    its savepoint and written through `copy_rows`, whose ON CONFLICT settles it."""
    names = ", ".join(columns)
    # Binary COPY: no text escaping of large values on either side (0.36 s -> 0.24 s for the
    # reference push's snapshots).
    types = [table.c[name].type.compile(dialect=conn.dialect).lower() for name in columns]
    cursor = conn.connection.driver_connection.cursor()
    written = 0
    for chunk in batched(rows, chunk_rows, chunk_bytes):
        try:
            with conn.begin_nested(), cursor.copy(f"COPY {table.name} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in chunk:
                    copy.write_row(row)
            written += len(chunk)
        except psycopg.errors.UniqueViolation:
            written += copy_rows(conn, table, columns, chunk, on_conflict, chunk_rows, chunk_bytes)
    return written
