"""Catalog rows of the hub's names: repos (owner/slug -> repo_id) and hashed write tokens."""

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from . import schema
from .reads import CatalogReads, text_array


@dataclass(frozen=True)
class RepoRow:
    repo_id: str
    owner: str
    slug: str
    domain: str | None  # None until the first push names one
    default_branch: str

    @property
    def name(self) -> str:
        return f"{self.owner}/{self.slug}"


class RepoNameTaken(Exception):
    """The owner/slug of a repo a push was to make is another repo's: a racing write made it."""


def insert_repo_row(conn: sa.Connection, repo: RepoRow) -> bool:
    """A new repo; False, and nothing written, when its owner/slug is taken (a racing insert of
    the same name waits for this transaction, then finds it taken)."""
    insert = pg_insert(schema.repos).values(
        repo_id=repo.repo_id,
        owner=repo.owner,
        slug=repo.slug,
        domain=repo.domain,
        default_branch=repo.default_branch,
    )
    return conn.execute(insert.on_conflict_do_nothing().returning(schema.repos.c.repo_id)).first() is not None


class RepoCatalog(CatalogReads):
    def insert_repo(self, repo: RepoRow) -> bool:
        """A new repo; False, and nothing written, when its owner/slug is taken."""
        with self.engine.begin() as conn:
            return insert_repo_row(conn, repo)

    def settle_domain(self, repo_id: str, domain: str) -> None:
        """Give the repo `domain` unless it has one already."""
        table = schema.repos
        update = sa.update(table).where(table.c.repo_id == repo_id, table.c.domain.is_(None)).values(domain=domain)
        with self.engine.begin() as conn:
            conn.execute(update)

    def repo_by_name(self, owner: str, slug: str) -> RepoRow | None:
        table = schema.repos
        query = sa.select(*_REPO_COLUMNS).where(table.c.owner == owner, table.c.slug == slug)
        rows = self._all(query)
        return RepoRow(*rows[0]) if rows else None

    def repo_names(self, repo_ids: Iterable[str]) -> dict[str, str]:
        """owner/slug of each of `repo_ids` the hub has a name for."""
        table = schema.repos
        query = sa.select(table.c.repo_id, table.c.owner, table.c.slug).where(
            table.c.repo_id == sa.func.any(text_array(sorted(set(repo_ids))))
        )
        return {repo_id: f"{owner}/{slug}" for repo_id, owner, slug in self._all(query)}

    def bundle_branches(self, bundles: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The branch each (repo_id, bundle_key) was pushed to, where it is recorded."""
        table = schema.bundles
        query = sa.select(table.c.repo_id, table.c.bundle_key, table.c.branch).where(
            sa.tuple_(table.c.repo_id, table.c.bundle_key).in_(sorted(set(bundles))), table.c.branch.is_not(None)
        )
        return {(repo_id, bundle_key): branch for repo_id, bundle_key, branch in self._all(query)}

    def insert_token(self, token_sha256: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(schema.tokens).values(token_sha256=token_sha256, owner=owner))

    def token_owner(self, token_sha256: str) -> str | None:
        table = schema.tokens
        rows = self._all(sa.select(table.c.owner).where(table.c.token_sha256 == token_sha256))
        return rows[0][0] if rows else None


_REPO_COLUMNS = [
    schema.repos.c.repo_id,
    schema.repos.c.owner,
    schema.repos.c.slug,
    schema.repos.c.domain,
    schema.repos.c.default_branch,
]
