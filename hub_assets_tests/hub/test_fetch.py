"""Fetch (SPEC §6.3, §8): pushed objects are served before any index run, from the store after
it, and only to a repo that references them."""

from __future__ import annotations

import importlib
import random
from typing import Any

import pytest

from hub_assets.catalog import PENDING
from hub_assets.hub import Hub, NotFound, push, read_object
from hub_assets.store import object_key, partition_key, upload_key

from ..bundle.builders import fake_id, sha256_hex
from .conftest import Indexer
from .helpers import FIXTURE_NAMES, Fixture, load_bundle, load_fixture, object_rows, one_commit_bundle, push_new

REPO = "repo-a"


@pytest.fixture(params=FIXTURE_NAMES)
def fixture(request: pytest.FixtureRequest) -> Fixture:
    return load_fixture(request.param)


def assert_all_served(hub: Hub, repo_id: str, contents: dict[str, bytes]) -> None:
    for object_id, data in contents.items():
        assert read_object(hub, repo_id, object_id) == data, object_id


def assert_none_served(hub: Hub, repo_id: str, object_ids: list[str]) -> None:
    for object_id in object_ids:
        with pytest.raises(NotFound):
            read_object(hub, repo_id, object_id)


def assert_promoted(hub: Hub, object_ids: list[str]) -> None:
    """Every object is in the store under its key and its row points there, with no inline copy."""
    rows = object_rows(hub, object_ids)
    assert sorted(rows) == sorted(object_ids)
    for object_id, row in rows.items():
        assert row.content_cache is None, object_id
        assert row.storage_uri == hub.store.uri_for(object_key(object_id))
        assert hub.store.exists(object_key(object_id))


def test_pushed_objects_are_served_before_and_after_the_index(hub: Hub, index: Indexer, fixture: Fixture) -> None:
    result = push_new(hub, REPO, fixture.data, fixture.head)
    assert result.inline_objects == len(fixture.contents)

    assert_all_served(hub, REPO, fixture.contents)
    rows = object_rows(hub, list(fixture.contents))
    assert {i: (r.storage_uri, r.content_cache, r.size_bytes) for i, r in rows.items()} == {
        i: (PENDING, data, len(data)) for i, data in fixture.contents.items()
    }
    assert not any(hub.store.exists(object_key(i)) for i in fixture.contents)

    index(result.partition_key)
    assert_promoted(hub, list(fixture.contents))
    assert_all_served(hub, REPO, fixture.contents)


# --- the inline bundle limit ------------------------------------------------------------------


def record_decoding(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each decode by push kept the objects' content."""
    # The package re-exports the function `push`, which hides the module of the same name.
    module = importlib.import_module("hub_assets.hub.push")
    kept: list[bool] = []
    decode = module.decode_bundle

    def recording(*args: Any, object_content: bool, **kwargs: Any) -> Any:
        kept.append(object_content)
        return decode(*args, object_content=object_content, **kwargs)

    monkeypatch.setattr(module, "decode_bundle", recording)
    return kept


def test_bundle_over_the_inline_limit_is_validated_without_its_objects_bytes(
    hub: Hub, index: Indexer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixture = load_fixture("muse-small-history.bundle")
    hub.inline_bundle_max_bytes = len(fixture.data) - 1
    kept = record_decoding(monkeypatch)
    result = push_new(hub, REPO, fixture.data, fixture.head)
    assert kept == [False]
    assert result.inline_objects == 0
    assert object_rows(hub, list(fixture.contents)) == {}
    assert_none_served(hub, REPO, list(fixture.contents))
    assert hub.catalog.branch_head(REPO, "main") == fixture.head

    index(result.partition_key)
    assert_all_served(hub, REPO, fixture.contents)


def test_bundle_at_the_inline_limit_is_parsed(hub: Hub) -> None:
    fixture = load_fixture("muse-small-history.bundle")
    hub.inline_bundle_max_bytes = len(fixture.data)
    assert push_new(hub, REPO, fixture.data, fixture.head).inline_objects == len(fixture.contents)
    assert_all_served(hub, REPO, fixture.contents)


def test_push_by_key_of_a_large_upload_validates_it_and_registers_nothing_inline(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixture = load_fixture("muse-merge.bundle")
    hub.inline_bundle_max_bytes = 1000
    key = partition_key(REPO, sha256_hex(fixture.data))
    hub.store.put(upload_key(key), fixture.data)
    kept = record_decoding(monkeypatch)
    result = push(hub, REPO, "main", bundle_key=sha256_hex(fixture.data))
    assert (kept, result.partition_key, result.inline_objects) == ([False], key, 0)
    assert result.head_commit_id == fixture.head  # from branch_heads
    assert {row.bundle_key: row.status for row in hub.catalog.bundle_rows(REPO)} == {result.bundle_key: "pushed"}
    assert_none_served(hub, REPO, list(fixture.contents))


def test_real_bundle_over_the_default_inline_limit(hub: Hub, index: Indexer, monkeypatch: pytest.MonkeyPatch) -> None:
    large = random.Random(0).randbytes(4 * 1024 * 1024 + 1)
    data, head = one_commit_bundle({"big.bin": large, "small.txt": b"small\n"})
    bundle = load_bundle(data)
    assert len(data) > hub.inline_bundle_max_bytes == 4 * 1024 * 1024
    kept = record_decoding(monkeypatch)
    result = push_new(hub, REPO, data, head)
    assert kept == [False]
    assert_none_served(hub, REPO, list(bundle.contents))

    index(result.partition_key)
    assert_all_served(hub, REPO, bundle.contents)
    assert_promoted(hub, list(bundle.contents))


# --- the inline object limit ------------------------------------------------------------------


def test_object_over_the_inline_limit_never_enters_the_cache(hub: Hub, index: Indexer) -> None:
    limit = 1000
    files = {
        "under.txt": b"u" * (limit - 1),
        "at.txt": b"a" * limit,
        "over.txt": b"o" * (limit + 1),
        "big.txt": random.Random(1).randbytes(5 * limit),
    }
    # zstd: the limit applies to the decoded size, not to the few bytes sent.
    data, head = one_commit_bundle(files, encoding="zstd")
    bundle = load_bundle(data)
    inline = [i for i, content in bundle.contents.items() if len(content) <= limit]
    large = [i for i in bundle.contents if i not in inline]
    assert len(inline) == 2 and len(large) == 2
    hub.inline_object_max_bytes = limit

    result = push_new(hub, REPO, data, head)
    assert result.inline_objects == 2
    assert sorted(object_rows(hub, list(bundle.contents))) == sorted(inline)
    assert_all_served(hub, REPO, {i: bundle.contents[i] for i in inline})
    assert_none_served(hub, REPO, large)

    index(result.partition_key)
    assert_promoted(hub, list(bundle.contents))
    assert_all_served(hub, REPO, bundle.contents)


# --- the ghost guard on fetch -----------------------------------------------------------------


def not_found_text(hub: Hub, repo_id: str, object_id: str) -> tuple[type[BaseException], str]:
    """The type and text of the refusal, with the asked-for id masked."""
    with pytest.raises(NotFound) as info:
        read_object(hub, repo_id, object_id)
    return type(info.value), str(info.value).replace(object_id, "<id>")


def test_another_repos_object_is_not_found_like_a_missing_one(hub: Hub, index: Indexer) -> None:
    a = load_fixture("muse-small-history.bundle")
    b = load_fixture("muse-merge.bundle")
    pushed_a = push_new(hub, "repo-a", a.data, a.head)
    push_new(hub, "repo-b", b.data, b.head)
    only_a = sorted(set(a.contents) - set(b.contents))
    shared = sorted(set(a.contents) & set(b.contents))
    assert only_a and shared

    missing = not_found_text(hub, "repo-b", fake_id("missing"))
    assert missing[0] is NotFound

    def check() -> None:
        for object_id in only_a:
            assert not_found_text(hub, "repo-b", object_id) == missing
            assert not_found_text(hub, "repo-b", object_id) == not_found_text(hub, "repo-b", fake_id(object_id))
        assert_all_served(hub, "repo-b", {i: b.contents[i] for i in shared})
        # A repo nobody pushed to is answered the same way too.
        assert not_found_text(hub, "repo-c", only_a[0]) == not_found_text(hub, "repo-c", fake_id("other"))

    check()  # inline copies only
    index(pushed_a.partition_key)
    check()  # promoted to the store
    assert_all_served(hub, "repo-a", a.contents)
