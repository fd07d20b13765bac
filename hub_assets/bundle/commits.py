"""Commit graph order: parents before children, cycles refused."""

from collections import deque
from operator import attrgetter

from .errors import BundleError
from .manifests import unique
from .records import CommitRecord


def order_commits(commits: list[CommitRecord]) -> list[CommitRecord]:
    """Commits parents-first (Kahn's algorithm, ties in the order sent). Parents outside the
    bundle are taken as already present."""
    by_id: dict[str, CommitRecord] = unique(commits, attrgetter("commit_id"), "commit")
    children: dict[str, list[str]] = {}
    waiting_on: dict[str, int] = {}
    for commit in by_id.values():
        inside = [p for p in dict.fromkeys(commit.parent_ids) if p in by_id]
        waiting_on[commit.commit_id] = len(inside)
        for parent in inside:
            children.setdefault(parent, []).append(commit.commit_id)
    ready = deque(commit_id for commit_id, count in waiting_on.items() if count == 0)
    ordered: list[CommitRecord] = []
    while ready:
        commit_id = ready.popleft()
        ordered.append(by_id[commit_id])
        for child in children.get(commit_id, ()):
            waiting_on[child] -= 1
            if waiting_on[child] == 0:
                ready.append(child)
    if len(ordered) < len(by_id):
        stuck = next(commit_id for commit_id, count in waiting_on.items() if count > 0)
        raise BundleError(f"commit {stuck}", "cycle in commit parents")
    return ordered
