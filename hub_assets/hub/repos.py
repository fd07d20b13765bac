"""Repos by name and write tokens (SPEC §10): what the CLI and the HTTP API call.

A token is shown once, when it is made; the catalog keeps only its sha256, so a copy of the
catalog grants nothing. Tokens are random (256 bits), so an unsalted hash is enough: there is no
dictionary to try them against.
"""

import hashlib
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ..catalog import RepoNameTaken, RepoRow
from .context import Hub, HubError
from .thin_push import ThinPushResult, thin_push

DEFAULT_DOMAIN = "code"
DEFAULT_BRANCH = "main"
TOKEN_PREFIX = "mh_"
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def name_problem(what: str, value: object) -> str | None:
    """Why `value` is not a valid owner or slug (`what` says which), or None when it is."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value in (".", ".."):
        return f"{what} {str(value)[:80]!r} must be 1-64 of [A-Za-z0-9._-], not '.' or '..'"
    return None


def check_repo_name(owner: str, slug: str) -> None:
    for what, value in (("owner", owner), ("slug", slug)):
        if problem := name_problem(what, value):
            raise HubError(problem)


def parse_repo_name(name: str) -> tuple[str, str]:
    """(owner, slug) of `OWNER/SLUG`."""
    owner, _, slug = name.partition("/")
    if not slug:
        raise HubError(f"repo name {name[:140]!r} must be OWNER/SLUG")
    check_repo_name(owner, slug)
    return owner, slug


def create_repo(hub: Hub, owner: str, slug: str, domain: str | None = DEFAULT_DOMAIN) -> RepoRow:
    """A new repo with a fresh UUID; HubError when owner/slug is taken. `domain` None: the
    first push's commits choose it."""
    repo = _new_repo_row(owner, slug, domain)
    if not hub.catalog.insert_repo(repo):
        raise HubError(f"repo {owner}/{slug} exists already")
    return repo


def _new_repo_row(owner: str, slug: str, domain: str | None) -> RepoRow:
    """The row of a repo not made yet, with a fresh UUID."""
    check_repo_name(owner, slug)
    if domain is not None and not _NAME.fullmatch(domain):
        raise HubError(f"domain {domain[:80]!r} must be 1-64 of [A-Za-z0-9._-]")
    return RepoRow(str(uuid.uuid4()), owner, slug, domain, DEFAULT_BRANCH)


def find_repo(hub: Hub, owner: str, slug: str) -> RepoRow | None:
    return hub.catalog.repo_by_name(owner, slug)


def repo_for_write(hub: Hub, owner: str, slug: str) -> RepoRow:
    """The repo a write goes to, made now if it does not exist yet: the first `muse push` to a
    new remote uploads its objects before its commits, so the repo exists from its first write,
    its domain left for the push to settle (`settle_domain`). Racing first writes get the one
    repo whichever made it."""
    repo = find_repo(hub, owner, slug)
    if repo is not None:
        return repo
    try:
        return create_repo(hub, owner, slug, domain=None)
    except HubError:
        repo = find_repo(hub, owner, slug)
        if repo is None:
            raise
        return repo


def push_to_repo(
    hub: Hub,
    owner: str,
    slug: str,
    branch: str,
    commits: list[dict[str, Any]],
    snapshots: list[dict[str, Any]],
    *,
    force: bool,
) -> ThinPushResult:
    """A thin push to owner/slug. A repo that does not exist yet is made by the push, at its
    commit point, with the domain its commits name: a refused push leaves no repo behind. A
    first push that loses the name to a racing write goes to the repo that write made, as a
    push coming after it."""
    repo = find_repo(hub, owner, slug)
    if repo is None:
        made = _new_repo_row(owner, slug, pushed_domain(commits))
        try:
            return thin_push(hub, made.repo_id, branch, commits, snapshots, force=force, new_repo=made)
        except RepoNameTaken:
            return push_to_repo(hub, owner, slug, branch, commits, snapshots, force=force)
    result = thin_push(hub, repo.repo_id, branch, commits, snapshots, force=force)
    settle_domain(hub, repo, commits)
    return result


def settle_domain(hub: Hub, repo: RepoRow, commits: Iterable[Mapping[str, Any]]) -> None:
    """A repo without a domain takes the one the pushed commits name (Muse writes it into
    `structured_delta.domain`, or a top-level `domain`), else `code`."""
    if repo.domain is None:
        hub.catalog.settle_domain(repo.repo_id, pushed_domain(commits))


def pushed_domain(commits: Iterable[Mapping[str, Any]]) -> str:
    for commit in commits:
        delta = commit.get("structured_delta")
        for named in (commit.get("domain"), delta.get("domain") if isinstance(delta, Mapping) else None):
            if isinstance(named, str) and _NAME.fullmatch(named):
                return named
    return DEFAULT_DOMAIN


def create_token(hub: Hub, owner: str) -> str:
    """A new write token for `owner`'s repos, in clear: the only time it exists outside the
    caller's hands."""
    if problem := name_problem("owner", owner):
        raise HubError(problem)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    hub.catalog.insert_token(token_sha256(token), owner)
    return token


def token_owner(hub: Hub, token: str) -> str | None:
    """The owner a token writes for, or None for a token the hub never made."""
    return hub.catalog.token_owner(token_sha256(token))


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
