"""Which commit a push moves its branch to, and whether that is a fast-forward: shared by every
door a push comes through (the CLI, the HTTP API)."""

from collections.abc import Iterable

from ..bundle import CommitRecord
from .context import Hub, HubError


def choose_head(commits: list[CommitRecord], branch_heads: dict[str, str], branch: str, given: str | None) -> str:
    """`given` if there is one, else the bundle's `branch_heads[branch]`, else the tip of its
    commit graph (a commit no other commit of the bundle names as a parent): the one tip, or of
    several the one whose `branch` field (which Muse writes into every commit) names `branch`."""
    if given:
        return given
    if branch in branch_heads:
        return branch_heads[branch]
    parents = {p for c in commits for p in c.parent_ids}
    tips = [c for c in commits if c.commit_id not in parents]
    if len(tips) > 1:
        tips = [c for c in tips if c.meta.get("branch") == branch] or tips
    if len(tips) != 1:
        raise HubError(
            f"{len(tips)} tips (commits no other pushed commit names as a parent), none alone naming"
            f" branch {branch!r} and no branch_heads[{branch!r}]: name the head to push"
        )
    return tips[0].commit_id


def descends_from(hub: Hub, repo_id: str, commits: Iterable[CommitRecord], head: str, ancestor: str) -> bool:
    """Whether `ancestor` is `head` or one of its ancestors, through the bundle's commits and
    then the catalog's."""
    parents = {c.commit_id: c.parent_ids for c in commits}
    pending, seen = [head], set()
    while pending:
        commit_id = pending.pop()
        if commit_id == ancestor:
            return True
        if commit_id in seen:
            continue
        seen.add(commit_id)
        if commit_id in parents:
            pending.extend(parents[commit_id])
        elif any(row.commit_id == ancestor for row in hub.catalog.history(repo_id, commit_id)):
            return True
    return False
