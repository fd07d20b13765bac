"""The catalog tables of SPEC §5, created idempotently."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

PENDING = "pending"

metadata = sa.MetaData()
_now = sa.text("now()")


def _timestamp(name: str, nullable: bool = False, default: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=_now if default else None)


objects = sa.Table(
    "musehub_objects",
    metadata,
    sa.Column("object_id", sa.Text, primary_key=True),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("storage_uri", sa.Text, nullable=False),
    sa.Column("content_cache", BYTEA, nullable=True),
    _timestamp("created_at"),
)

object_refs = sa.Table(
    "musehub_object_refs",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("object_id", sa.Text, primary_key=True),
)

snapshots = sa.Table(
    "musehub_snapshots",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("snapshot_id", sa.Text, primary_key=True),
    sa.Column("manifest", JSONB, nullable=False),
    _timestamp("created_at"),
)

commits = sa.Table(
    "musehub_commits",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("commit_id", sa.Text, primary_key=True),
    sa.Column("parent_ids", JSONB, nullable=False),
    sa.Column("snapshot_id", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    _timestamp("committed_at", default=False),
    # timestamptz normalises the text; the exact text is part of the commit id, so keep it too.
    sa.Column("committed_at_text", sa.Text, nullable=False),
    sa.Column("commit_meta", JSONB, nullable=False),
)

branches = sa.Table(
    "musehub_branches",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("head_commit_id", sa.Text, nullable=False),
    _timestamp("updated_at"),
)

bundles = sa.Table(
    "musehub_bundles",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("bundle_key", sa.Text, primary_key=True),
    sa.Column("branch", sa.Text, nullable=True),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    _timestamp("pushed_at"),
    _timestamp("indexed_at", nullable=True, default=False),
    sa.Column("stats", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.CheckConstraint("status IN ('pushed', 'indexed', 'failed')", name="musehub_bundles_status"),
)

# The hub's names for repos (SPEC §10). repo_id is text like every other table's repo_id: a UUID
# for repos made here, while pushes through the CLI may name any repo id, and the index looks
# repos up by whatever id a partition carries. domain is NULL for a repo a write token made by
# uploading objects before its first push, until that push's commits name one.
repos = sa.Table(
    "musehub_repos",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("slug", sa.Text, nullable=False),
    sa.Column("domain", sa.Text, nullable=True),
    sa.Column("default_branch", sa.Text, nullable=False),
    _timestamp("created_at"),
    sa.UniqueConstraint("owner", "slug", name="musehub_repos_owner_slug"),
)

# Write tokens, by the sha256 of the token: the token itself is shown once and never stored.
tokens = sa.Table(
    "musehub_tokens",
    metadata,
    sa.Column("token_sha256", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    _timestamp("created_at"),
)

# pglz compression of large manifests is most of the cost of writing a snapshot
# (shared notes, perf floors); manifests are sha256-heavy and compress poorly anyway.
_MANIFEST_STORAGE = "ALTER TABLE musehub_snapshots ALTER COLUMN manifest SET STORAGE EXTERNAL"
# A push's inline objects are most of the bytes its commit point writes (3.7 MB for a 2.8 MB
# bundle of 340 objects). lz4 compresses them at memory speed, so PostgreSQL writes less to the
# table and its WAL (that push's transaction 37 -> 31 ms, its p50 on S3 56-66 -> 45-52 ms,
# benchmarks/RESULTS.md). pglz gave up on those objects and still cost time, so a server built
# without lz4 (the embedded PostgreSQL 18 is) stores them uncompressed. Keyed by the column's
# (attstorage, attcompression) each statement leaves.
_CONTENT_CACHE_STORAGE = {
    ("x", "l"): "ALTER TABLE musehub_objects ALTER COLUMN content_cache SET STORAGE EXTENDED, "
    "ALTER COLUMN content_cache SET COMPRESSION lz4",
    ("e", ""): "ALTER TABLE musehub_objects ALTER COLUMN content_cache SET STORAGE EXTERNAL",
}
_SCHEMA_LOCK = 0x6D7573656875  # any constant: serialises concurrent create_schema calls
_STATE = sa.text(
    "SELECT "
    + ", ".join(f"to_regclass('{name}') IS NOT NULL" for name in metadata.tables)
    + """,
    (SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'),
    (SELECT ARRAY[attstorage::text, attcompression::text] FROM pg_attribute
     WHERE attrelid = to_regclass('musehub_objects') AND attname = 'content_cache')"""
)


def create_schema(engine: sa.Engine) -> None:
    """Create every catalog table that is missing, with the storage settings above, which an
    existing catalog gets too; safe to call from many processes at once. Cheap when all is in
    place (one query), as every index run calls it."""
    with engine.connect() as conn:
        *tables, lz4, content_cache = conn.execute(_STATE).one()
    wanted = ("x", "l") if lz4 else ("e", "")
    if all(tables) and tuple(content_cache) == wanted:
        return
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        metadata.create_all(conn, checkfirst=True)
        conn.execute(sa.text(_MANIFEST_STORAGE))
        conn.execute(sa.text(_CONTENT_CACHE_STORAGE[wanted]))
