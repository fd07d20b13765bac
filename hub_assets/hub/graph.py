"""Commit-graph answers of fetch and negotiate, over parent maps the catalog hands in; no I/O.

A parent map is `{commit_id: parent_ids}`; a parent missing from the map is taken as outside the
part of the graph that matters (the walk stops there)."""

from collections.abc import Iterable, Mapping, Sequence

ParentMap = Mapping[str, Sequence[str]]


def ancestors(parents: ParentMap, starts: Iterable[str]) -> set[str]:
    """`starts` (those in the map) and every commit reachable from them through parents."""
    seen: set[str] = set()
    pending = [commit_id for commit_id in starts if commit_id in parents]
    while pending:
        commit_id = pending.pop()
        if commit_id in seen:
            continue
        seen.add(commit_id)
        pending.extend(parent for parent in parents[commit_id] if parent in parents and parent not in seen)
    return seen


def merge_bases(parents: ParentMap, left: Iterable[str], right: Iterable[str]) -> set[str]:
    """The best common ancestors of `left` and `right`: the commits reachable from both that are
    not an ancestor of another such commit (a criss-cross merge has several). Linear in the map."""
    common = ancestors(parents, left) & ancestors(parents, right)
    below = ancestors(parents, (parent for commit_id in common for parent in parents[commit_id]))
    return common - below


def held_frontier(parents: ParentMap, held: set[str], sent: set[str]) -> set[str]:
    """The commits of `held` whose snapshots a receiver of `sent` builds on: the held parents of
    sent commits, and the receiver's tips (held commits no held commit names as a parent). What
    their snapshots name the receiver holds; older held snapshots would add only objects that
    were removed and came back, at the cost of reading every manifest of the history."""
    boundary = {parent for commit_id in sent for parent in parents[commit_id] if parent in held}
    named_as_parent = {parent for commit_id in held for parent in parents[commit_id]}
    return boundary | (held - named_as_parent)
