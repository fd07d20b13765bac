"""The whole-manifest checks of the decoder's fast path agree with the rules entry by entry: never
True when an entry breaks a rule, and True for every manifest of short good entries."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hub_assets.bundle.identity import is_hex_id
from hub_assets.bundle.validate import MAX_PATH_BYTES, _all_good_paths, _all_hex_ids, path_problem

# Characters the rules care about, among ordinary ones and multi-byte UTF-8.
PATH_CHARS = st.sampled_from(["a", "b", "/", ".", "\\", "\0", "é", "𝄞", "-"])
PATHS = st.one_of(st.text(PATH_CHARS, max_size=12), st.integers(), st.binary(max_size=4))
IDS = st.one_of(
    st.text(st.sampled_from("0123456789abcdefA"), min_size=62, max_size=66),
    st.integers(),
    st.none(),
)


@settings(max_examples=2000)
@given(st.lists(PATHS, max_size=6, unique=True))
def test_paths_at_once_agree_with_each_path(paths: list[Any]) -> None:
    each_good = all(path_problem(path) is None for path in paths)
    assert _all_good_paths(paths) == each_good
    assert _all_good_paths(dict.fromkeys(paths)) == each_good


def test_long_paths_are_left_to_the_one_by_one_check() -> None:
    at_limit = "é" * (MAX_PATH_BYTES // 2)  # 4096 bytes: good, but more characters than the fast check takes
    assert path_problem(at_limit) is None and not _all_good_paths([at_limit])
    assert _all_good_paths(["𝄞" * (MAX_PATH_BYTES // 4)])


@settings(max_examples=2000)
@given(st.lists(IDS, max_size=5))
def test_ids_at_once_agree_with_each_id(values: list[Any]) -> None:
    assert _all_hex_ids(values) == all(is_hex_id(value) for value in values)
