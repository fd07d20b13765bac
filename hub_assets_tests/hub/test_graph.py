"""The commit-graph answers of fetch and negotiate (hub/graph.py), on small hand-drawn graphs."""

from __future__ import annotations

import pytest

from hub_assets.hub import graph

#   a - b - c - d          (main)
#        \     /
#         e - f            (side, merged into d)
#   x - y                  (an unrelated root)
PARENTS = {
    "a": [],
    "b": ["a"],
    "c": ["b"],
    "e": ["b"],
    "f": ["e"],
    "d": ["c", "f"],
    "x": [],
    "y": ["x"],
}


def test_ancestors_include_the_starts_and_skip_commits_outside_the_map() -> None:
    assert graph.ancestors(PARENTS, ["c"]) == {"a", "b", "c"}
    assert graph.ancestors(PARENTS, ["d"]) == {"a", "b", "c", "d", "e", "f"}
    assert graph.ancestors(PARENTS, ["y", "unknown"]) == {"x", "y"}
    assert graph.ancestors({"b": ["a"]}, ["b"]) == {"b"}  # `a` is outside the map: the walk stops


@pytest.mark.parametrize(
    ("left", "right", "bases"),
    [
        (["d"], ["c"], {"c"}),  # an ancestor is its own base
        (["d"], ["d"], {"d"}),
        (["c"], ["f"], {"b"}),  # a fork
        (["d"], ["f", "c"], {"c", "f"}),  # both sides of the merge, neither below the other
        (["d"], ["y"], set()),  # unrelated histories
        (["d"], [], set()),
    ],
)
def test_merge_bases_are_the_common_ancestors_below_no_other(
    left: list[str], right: list[str], bases: set[str]
) -> None:
    assert graph.merge_bases(PARENTS, left, right) == bases


def test_a_criss_cross_merge_has_two_bases() -> None:
    #   r - p - m1      m1 = merge(p, q), m2 = merge(q, p)
    #     \   X
    #       q - m2
    parents = {"r": [], "p": ["r"], "q": ["r"], "m1": ["p", "q"], "m2": ["q", "p"]}
    assert graph.merge_bases(parents, ["m1"], ["m2"]) == {"p", "q"}


def test_merge_bases_of_a_long_chain_take_linear_time() -> None:
    chain = {f"c{i}": [f"c{i - 1}"] if i else [] for i in range(200_000)}
    assert graph.merge_bases(chain, ["c199999"], ["c100000"]) == {"c100000"}


@pytest.mark.parametrize(
    ("have", "want", "frontier"),
    [
        (["c"], ["d"], {"b", "c"}),  # d, e, f sent: c (the receiver's tip) and b, e's parent, are held
        (["f", "c"], ["d"], {"c", "f"}),  # both parents held
        (["a"], ["d"], {"a"}),  # b, c, e, f, d sent: only a, b's parent, is held
        (["f"], ["c"], {"b", "f"}),  # the receiver's tip on another branch, beside c's held parent
        (["y"], ["d"], {"y"}),  # an unrelated receiver: nothing to build on but its tip
    ],
)
def test_the_held_frontier_is_the_sent_commits_held_parents_and_the_receivers_tips(
    have: list[str], want: list[str], frontier: set[str]
) -> None:
    held = graph.ancestors(PARENTS, have)
    sent = graph.ancestors(PARENTS, want) - held
    assert graph.held_frontier(PARENTS, held, sent) == frontier
