"""Catalog reads: what the index checks, and what fetch, clone, the ghost guard and status serve."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from . import schema
from .schema import PENDING

# Inline objects are at most HUB_INLINE_OBJECT_MAX_BYTES (1 MiB by default) each: a fetch of
# this many holds at most 16 MiB.
_INLINE_ROWS_PER_FETCH = 16


def text_array(values: list[str]) -> Any:
    return sa.literal(values, sa.ARRAY(sa.Text))


_HISTORY = sa.text(
    """
    WITH RECURSIVE history(commit_id) AS (
        SELECT CAST(:head AS text)
        UNION
        SELECT parent.commit_id
        FROM history
        JOIN musehub_commits c ON c.repo_id = :repo_id AND c.commit_id = history.commit_id
        CROSS JOIN LATERAL jsonb_array_elements_text(c.parent_ids) AS parent(commit_id)
    )
    SELECT c.* FROM musehub_commits c JOIN history USING (commit_id) WHERE c.repo_id = :repo_id
    """
)


# The semi-join reads each snapshot once however many of the commits share it; the array of ids
# asked about is hashed, not scanned for each manifest entry.
_NAMED_BY_COMMITS = sa.text(
    """
    SELECT DISTINCT named.object_id
    FROM musehub_snapshots s
    CROSS JOIN LATERAL jsonb_each_text(s.manifest) AS named(path, object_id)
    WHERE s.repo_id = :repo_id
      AND s.snapshot_id IN (
        SELECT c.snapshot_id FROM musehub_commits c WHERE c.repo_id = :repo_id AND c.commit_id = ANY(:commit_ids)
      )
      AND named.object_id IN (SELECT unnest(CAST(:object_ids AS text[])))
    """
)


class CatalogReads:
    engine: sa.Engine

    def _all(self, query: Any, **params: Any) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return list(conn.execute(query, params))

    def object_row_summary(self, object_ids: list[str]) -> dict[str, int]:
        """How many of `object_ids` have a row, are promoted, and still hold an inline copy."""
        table = schema.objects
        query = sa.select(
            sa.func.count(),
            sa.func.count().filter(table.c.storage_uri != PENDING),
            sa.func.count().filter(table.c.content_cache.is_not(None)),
        ).where(table.c.object_id == sa.func.any(text_array(object_ids)))
        rows, promoted, cached = self._all(query)[0]
        return {"rows": rows, "promoted": promoted, "cached": cached}

    def count_refs(self, repo_id: str, object_ids: list[str]) -> int:
        table = schema.object_refs
        query = sa.select(sa.func.count()).where(
            table.c.repo_id == repo_id, table.c.object_id == sa.func.any(text_array(object_ids))
        )
        return self._all(query)[0][0]

    def object_states(self, object_ids: Iterable[str]) -> tuple[set[str], dict[str, bytes]]:
        """Of `object_ids`: the ids whose bytes are already in the store, and the inline bytes
        (content_cache) of the pending rows; one query, as an index run asks both at once."""
        table = schema.objects
        query = sa.select(table.c.object_id, table.c.storage_uri != PENDING, table.c.content_cache).where(
            table.c.object_id == sa.func.any(text_array(list(object_ids)))
        )
        promoted, inline = set(), {}
        for object_id, is_promoted, data in self._all(query):
            if is_promoted:
                promoted.add(object_id)
            elif data is not None:
                inline[object_id] = bytes(data)
        return promoted, inline

    def registered_objects(self, repo_id: str, object_ids: Iterable[str]) -> set[str]:
        """The ids among `object_ids` the repo may serve: referenced by it, and with a row."""
        refs, objects = schema.object_refs, schema.objects
        query = (
            sa.select(refs.c.object_id)
            .join(objects, objects.c.object_id == refs.c.object_id)
            .where(refs.c.repo_id == repo_id, refs.c.object_id == sa.func.any(text_array(list(object_ids))))
        )
        return {row[0] for row in self._all(query)}

    def servable_object(self, repo_id: str, object_id: str) -> sa.Row | None:
        """(content_cache, storage_uri) of an object the repo references, else None."""
        refs, objects = schema.object_refs, schema.objects
        query = (
            sa.select(objects.c.content_cache, objects.c.storage_uri)
            .join(refs, refs.c.object_id == objects.c.object_id)
            .where(refs.c.repo_id == repo_id, refs.c.object_id == object_id)
        )
        rows = self._all(query)
        return rows[0] if rows else None

    def branch_head(self, repo_id: str, name: str) -> str | None:
        table = schema.branches
        query = sa.select(table.c.head_commit_id).where(table.c.repo_id == repo_id, table.c.name == name)
        rows = self._all(query)
        return rows[0][0] if rows else None

    def branch_heads(self, repo_id: str) -> dict[str, str]:
        table = schema.branches
        query = sa.select(table.c.name, table.c.head_commit_id).where(table.c.repo_id == repo_id)
        return {name: head for name, head in self._all(query)}

    def history(self, repo_id: str, head: str) -> list[sa.Row]:
        """Every commit row reachable from `head` in the repo (unordered)."""
        return self._all(_HISTORY, repo_id=repo_id, head=head)

    def commit_parents(self, repo_id: str) -> dict[str, list[str]]:
        """commit id -> parent ids of every commit of the repo: the whole graph in one indexed
        scan (6 ms for 1,035 commits, where a recursive walk in SQL took 134 ms), for walks
        in memory (hub/graph.py)."""
        table = schema.commits
        query = sa.select(table.c.commit_id, table.c.parent_ids).where(table.c.repo_id == repo_id)
        return dict(self._all(query))

    def commit_rows(self, repo_id: str, commit_ids: list[str]) -> list[sa.Row]:
        table = schema.commits
        query = sa.select(table).where(
            table.c.repo_id == repo_id, table.c.commit_id == sa.func.any(text_array(commit_ids))
        )
        return self._all(query)

    def objects_named_by_commits(self, repo_id: str, commit_ids: list[str], object_ids: list[str]) -> set[str]:
        """The ids among `object_ids` that a snapshot of one of `commit_ids` names. Each
        manifest is read where it is stored: only the ids asked about come back."""
        return {
            row[0]
            for row in self._all(_NAMED_BY_COMMITS, repo_id=repo_id, commit_ids=commit_ids, object_ids=object_ids)
        }

    def servable_sizes(self, repo_id: str, object_ids: list[str]) -> dict[str, tuple[int, bool]]:
        """object id -> (size, whether it has an inline copy) of the ids the repo may serve."""
        refs, objects = schema.object_refs, schema.objects
        query = (
            sa.select(objects.c.object_id, objects.c.size_bytes, objects.c.content_cache.is_not(None))
            .join(refs, refs.c.object_id == objects.c.object_id)
            .where(refs.c.repo_id == repo_id, refs.c.object_id == sa.func.any(text_array(object_ids)))
        )
        return {object_id: (size, cached) for object_id, size, cached in self._all(query)}

    def inline_contents(self, object_ids: list[str]) -> dict[str, bytes]:
        """The inline copies (content_cache) of those of `object_ids` that have one."""
        table = schema.objects
        query = sa.select(table.c.object_id, table.c.content_cache).where(
            table.c.object_id == sa.func.any(text_array(object_ids)), table.c.content_cache.is_not(None)
        )
        return {object_id: bytes(data) for object_id, data in self._all(query)}

    def branches_at(self, repo_id: str, commit_ids: list[str]) -> dict[str, str]:
        """name -> head of the repo's branches whose head is one of `commit_ids`."""
        table = schema.branches
        query = sa.select(table.c.name, table.c.head_commit_id).where(
            table.c.repo_id == repo_id, table.c.head_commit_id == sa.func.any(text_array(commit_ids))
        )
        return dict(sorted((name, head) for name, head in self._all(query)))

    def snapshot_rows(self, repo_id: str, snapshot_ids: list[str]) -> list[sa.Row]:
        table = schema.snapshots
        query = sa.select(table).where(
            table.c.repo_id == repo_id, table.c.snapshot_id == sa.func.any(text_array(snapshot_ids))
        )
        return self._all(query)

    def bundle_rows(self, repo_id: str | None = None) -> list[sa.Row]:
        table = schema.bundles
        query = sa.select(table).order_by(table.c.pushed_at, table.c.repo_id, table.c.bundle_key)
        if repo_id is not None:
            query = query.where(table.c.repo_id == repo_id)
        return self._all(query)

    def known_commits(self, repo_id: str, commit_ids: list[str]) -> set[str]:
        """The ids among `commit_ids` that are commits of the repo (one query, any number)."""
        table = schema.commits
        query = sa.select(table.c.commit_id).where(
            table.c.repo_id == repo_id, table.c.commit_id == sa.func.any(text_array(commit_ids))
        )
        return {row[0] for row in self._all(query)}

    @contextmanager
    def inline_objects(self, object_ids: Iterable[str]) -> Iterator[tuple[int, Iterator[tuple[str, bytes]]]]:
        """Of `object_ids`, the rows still only inline (pending, with their bytes in
        content_cache): how many, then each (object id, bytes) in id order, streamed from one
        snapshot of the catalog, so the count holds even while an index run promotes some of
        them and only a few of their bytes are in memory at once."""
        table = schema.objects
        inline = sa.and_(
            table.c.object_id == sa.func.any(text_array(list(object_ids))),
            table.c.storage_uri == PENDING,
            table.c.content_cache.is_not(None),
        )
        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            count = conn.execute(sa.select(sa.func.count()).where(inline)).scalar_one()
            query = sa.select(table.c.object_id, table.c.content_cache).where(inline).order_by(table.c.object_id)
            rows = conn.execution_options(yield_per=_INLINE_ROWS_PER_FETCH).execute(query)
            yield count, ((object_id, bytes(data)) for object_id, data in rows)
