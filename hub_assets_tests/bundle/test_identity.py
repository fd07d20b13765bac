"""Identities and names of SPEC §2."""

from __future__ import annotations

import pytest

from hub_assets.bundle.identity import branch_name_problem, commit_id, is_hex_id, is_repo_id, snapshot_id
from hub_assets.bundle.validate import path_problem

from .builders import fake_id, spec_commit_id, spec_snapshot_id

ONES, TWOS, THREES = "1" * 64, "2" * 64, "3" * 64
AT = "2026-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("b0ad9068-9b14-4901-a2ca-7704fc777927", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("x", True),
        ("my_repo.v2-final", True),
        (".hidden", True),
        ("", False),
        ("..", False),
        ("...", False),
        ("a..b", False),
        ("a...b", False),
        ("a/b", False),
        ("/", False),
        ("a b", False),
        ("ü", False),
        ("a\0", False),
        (None, False),
        (5, False),
    ],
)
def test_is_repo_id(value: object, ok: bool) -> None:
    assert is_repo_id(value) is ok


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("main", None),
        ("feature/x-1", None),
        ("release/v1.2", None),
        ("a" * 255, None),
        ("ü/♫", None),
        ("a-", None),
        ("", "1-255 characters"),
        ("a" * 256, "1-255 characters"),
        (None, "1-255 characters"),
        (b"main", "1-255 characters"),
        ("a\0b", "NUL"),
        ("a..b", "'..'"),
        ("..", "'..'"),
        ("/main", "start with '/'"),
        ("-main", "start with '/' or '-'"),
    ],
)
def test_branch_name_problem(name: object, problem: str | None) -> None:
    found = branch_name_problem(name)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (ONES, True),
        (fake_id(1), True),
        ("ab" * 32, True),
        ("AB" * 32, False),
        ("aB" * 32, False),
        (ONES[:63], False),
        (ONES + "1", False),
        ("g" * 64, False),
        (ONES.encode(), False),
        (None, False),
        (ONES + "\n", False),
    ],
)
def test_is_hex_id(value: object, ok: bool) -> None:
    assert is_hex_id(value) is ok


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("a/b.txt", None),
        ("x" * 4096, None),
        ("x" * 4097, "longer than 4096 bytes"),
        ("é" * 2049, "longer than 4096 bytes"),
        ("/a", "absolute"),
        ("a/../b", "'..'"),
        ("a\\b", "backslash"),
        ("a\0b", "NUL"),
        ("", "non-empty"),
        (7, "non-empty string"),
    ],
)
def test_path_problem(path: object, problem: str | None) -> None:
    found = path_problem(path)
    assert found is None if problem is None else found is not None and problem in found


def test_snapshot_id_hand_computed() -> None:
    manifest = {"b/c.mid": TWOS, "a.txt": ONES}
    # sha256("a.txt\0111…1\0b/c.mid\0222…2")
    expected = "b6ede7597e179e2c8726bef1847f08cc78fca5677dc11f87c625fcfc95118ce2"
    assert snapshot_id(manifest) == expected
    assert spec_snapshot_id(manifest) == expected


def test_snapshot_id_of_empty_manifest() -> None:
    assert snapshot_id({}) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_snapshot_id_sorts_entries_not_paths() -> None:
    # "a\0…" sorts before "a.b\0…" because NUL < '.': the entries are sorted as whole strings.
    manifest = {"a.b": ONES, "a": TWOS}
    assert snapshot_id(manifest) == spec_snapshot_id(manifest)
    assert snapshot_id(manifest) != snapshot_id({"a.b": TWOS, "a": ONES})


def test_commit_id_hand_computed() -> None:
    # sha256("eee…e\0fff…f\0333…3\0merge ♫\02026-01-01T00:00:00+00:00"), parents sorted
    expected = "8f19d8fc213380b4937c69095f8ed9d47ca10c12449713479b5661b7a9650f69"
    for parents in (["f" * 64, "e" * 64], ("e" * 64, "f" * 64)):
        assert commit_id(parents, THREES, "merge ♫", AT) == expected
        assert spec_commit_id(parents, THREES, "merge ♫", AT) == expected


def test_root_commit_id_hand_computed() -> None:
    # sha256("\0333…3\0root\02026-01-01T00:00:00+00:00"): an empty parent list joins to ""
    expected = "33eead3f3aa8eeeb3f553b69ebbff798cd67f7a150f2bee5ebb9f665e4eb54b2"
    assert commit_id([], THREES, "root", AT) == expected


ROOT = ((), THREES, "root", AT)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(((), THREES, "other", AT), id="message"),
        pytest.param(((), THREES, "root", "2026-01-01T00:00:01+00:00"), id="committed_at"),
        pytest.param(((), TWOS, "root", AT), id="snapshot"),
        pytest.param(((ONES,), THREES, "root", AT), id="parents"),
        pytest.param(((ONES, ONES), THREES, "root", AT), id="parent-twice"),
    ],
)
def test_commit_id_covers_every_field(other: tuple[tuple[str, ...], str, str, str]) -> None:
    assert commit_id(*other) != commit_id(*ROOT)
    assert commit_id(*other) == spec_commit_id(*other)
