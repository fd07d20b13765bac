"""Clone (SPEC §8): a branch's whole history as a Muse PackBundle."""

import sys

from .context import Hub, HubError, NotFound
from .fetch import fetch_pack
from .push import check_names


def clone(hub: Hub, repo_id: str, branch: str) -> bytes:
    """The pack a client fetching the branch with nothing in hand gets, without its size cap
    (the operator writes it to a file)."""
    check_names(repo_id, branch)
    head = hub.catalog.branch_head(repo_id, branch)
    if head is None:
        raise NotFound(f"branch {branch!r} not found in repo {repo_id}")
    if head not in hub.catalog.known_commits(repo_id, [head]):
        raise HubError(f"branch {branch!r} of {repo_id} points at {head}, which is not indexed yet")
    return fetch_pack(hub, repo_id, [head], [], max_bytes=sys.maxsize)
