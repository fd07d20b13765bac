"""Materializing a bundle partition (SPEC §7): the catalog and store it leaves, on both stores."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from hub_assets.index.timing import PHASES
from hub_assets.store import object_key, split_partition_key
from hub_assets_tests.bundle.builders import (
    Raw,
    build_history,
    fake_id,
    full_snapshot,
    make_commit,
    pack,
    raw_delta,
    sha256_hex,
    zstd_zeros_frame,
)

from .conftest import CATALOG_TABLES, HubEnv
from .expected import Expected, commit_meta, expected_from_wire, parent_ids
from .runlog import (
    check_evaluations,
    failed_steps,
    index_asset_keys,
    index_check_keys,
    materialization_metadata,
    messages,
)

REPO = "repo-1"
FIXTURES = ["muse-small-history.bundle", "muse-merge.bundle"]
STATS_KEYS = {
    "commits_written",
    "snapshots_written",
    "objects_written",
    "object_refs_written",
    "bundle_size_bytes",
    "fetch_bundle_ms",
    "unpack_ms",
    "object_puts_ms",
    "object_insert_ms",
    "object_refs_ms",
    "snapshot_insert_ms",
    "commit_insert_ms",
    "elapsed_ms",
}


# --- assertions on the end state ----------------------------------------------------------------


def assert_objects_stored(hub: HubEnv, objects: dict[str, bytes]) -> None:
    """Each object is in the store under its key with its decoded bytes, and its row points there."""
    rows = {row["object_id"]: row for row in hub.rows("musehub_objects")}
    for object_id, data in objects.items():
        key = object_key(object_id)
        assert hub.store.get(key) == data, object_id
        row = rows[object_id]
        assert row["storage_uri"] == hub.store.uri_for(key)
        assert (row["content_cache"], row["size_bytes"]) == (None, len(data))


def assert_indexed(hub: HubEnv, pk: str, expected: Expected) -> None:
    """The catalog and store hold exactly what SPEC §7 says one indexed bundle leaves."""
    repo_id, bundle_key = pk.split("/", 1)
    assert hub.count("musehub_objects") == len(expected.objects)
    assert_objects_stored(hub, expected.objects)
    assert hub.store_listing("objects/") == sorted((object_key(o), len(d)) for o, d in expected.objects.items())

    refs = hub.rows("musehub_object_refs")
    assert sorted((r["repo_id"], r["object_id"]) for r in refs) == sorted((repo_id, o) for o in expected.ref_ids)
    snapshots = {r["snapshot_id"]: r["manifest"] for r in hub.rows("musehub_snapshots") if r["repo_id"] == repo_id}
    assert snapshots == expected.manifests

    commits = {r["commit_id"]: r for r in hub.rows("musehub_commits") if r["repo_id"] == repo_id}
    assert commits.keys() == expected.commits.keys()
    for commit_id, raw in expected.commits.items():
        row = commits[commit_id]
        assert row["parent_ids"] == parent_ids(raw), "first parent first"
        assert [row[name] for name in ("snapshot_id", "message", "author")] == [
            raw[name] for name in ("snapshot_id", "message", "author")
        ]
        assert row["commit_meta"] == commit_meta(raw)

    (bundle,) = hub.rows("musehub_bundles")
    assert (bundle["repo_id"], bundle["bundle_key"], bundle["status"]) == (repo_id, bundle_key, "indexed")
    assert bundle["stats"].keys() >= STATS_KEYS
    assert {k: bundle["stats"][k] for k in expected.stats_counts()} == expected.stats_counts()


def assert_run_recorded(hub: HubEnv, pk: str, run_id: str) -> None:
    """Every asset recorded metadata with its elapsed time, and every blocking check passed."""
    for asset_key in index_asset_keys():
        latest = materialization_metadata(hub.instance, asset_key, pk)[0]
        assert isinstance(latest.get("elapsed_ms"), int), (asset_key, latest)
    evaluations = check_evaluations(hub.instance, run_id)
    assert {e.asset_check_key for e in evaluations} == index_check_keys()
    assert all(e.passed for e in evaluations), [e.asset_check_key for e in evaluations if not e.passed]


# --- happy paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixture_partition_indexed_as_spec_says(
    hub_env: HubEnv, fixture: str, fixture_bytes: Callable[[str], bytes]
) -> None:
    data = fixture_bytes(fixture)
    pk = hub_env.upload(REPO, data)
    (outcome,) = hub_env.index_ok(pk)
    assert_indexed(hub_env, pk, expected_from_wire(data))
    assert_run_recorded(hub_env, pk, outcome.run_id)


def test_run_ends_with_one_summary_line(hub_env: HubEnv) -> None:
    pk = hub_env.upload(REPO, build_history(2, 3).wire())
    (outcome,) = hub_env.index_ok(pk)
    summaries = [m for m in messages(hub_env.instance, outcome.run_id) if f"indexed {pk}" in m]
    assert len(summaries) == 1, summaries
    for _, label in PHASES:
        assert re.search(rf"\b{label} \d+ ms\b", summaries[0]), (label, summaries[0])


def test_twice_is_once(hub_env: HubEnv) -> None:
    pk = hub_env.upload(REPO, build_history(4, 6, zstd_every=2).wire())
    hub_env.index_ok(pk)
    once = hub_env.catalog_digest()
    hub_env.index_ok(pk)
    assert hub_env.catalog_digest() == once

    # The digest is not blind: it sees a count in stats, not a clock or a timing.
    hub_env.execute("UPDATE musehub_bundles SET indexed_at = now(), stats = stats || '{\"unpack_ms\": 12345}'")
    assert hub_env.catalog_digest() == once
    hub_env.execute("UPDATE musehub_bundles SET stats = stats || '{\"commits_written\": 0}'")
    assert hub_env.catalog_digest() != once


def test_inline_rows_promoted_and_promoted_rows_kept(hub_env: HubEnv) -> None:
    history = build_history(3, 4, zstd_every=2)
    elsewhere_id, *inline_ids = sorted(history.contents)
    elsewhere_uri = "s3://another-hub/objects/" + elsewhere_id
    hub_env.catalog.add_inline_objects((oid, history.contents[oid]) for oid in inline_ids)
    hub_env.catalog.add_stored_objects([(elsewhere_id, len(history.contents[elsewhere_id]), elsewhere_uri)])
    assert {r["storage_uri"] for r in hub_env.rows("musehub_objects")} == {"pending", elsewhere_uri}

    hub_env.index_ok(hub_env.upload(REPO, history.wire()))

    assert_objects_stored(hub_env, {oid: history.contents[oid] for oid in inline_ids})
    rows = {row["object_id"]: row for row in hub_env.rows("musehub_objects")}
    kept = rows[elsewhere_id]
    assert (kept["storage_uri"], kept["content_cache"]) == (elsewhere_uri, None), "a promoted row is write-once"


def test_incremental_bundle_builds_on_the_catalog(hub_env: HubEnv) -> None:
    base = build_history(3, 5, seed=1)
    later = build_history(3, 5, seed=2, after=base)
    snapshot_ids = {s["snapshot_id"] for s in later.bundle["snapshots"]}
    commit_ids = {c["commit_id"] for c in later.bundle["commits"]}
    first = later.bundle["snapshots"][0]
    assert first["base_snapshot_id"] == base.snapshot_ids[-1] not in snapshot_ids
    assert parent_ids(later.bundle["commits"][-1]) == [base.head] and base.head not in commit_ids

    hub_env.index_ok(hub_env.upload(REPO, base.wire()))
    hub_env.index_ok(hub_env.upload(REPO, later.wire()))

    manifests = {r["snapshot_id"]: r["manifest"] for r in hub_env.rows("musehub_snapshots")}
    assert manifests == base.manifests | later.manifests
    parents = {r["commit_id"]: r["parent_ids"] for r in hub_env.rows("musehub_commits")}
    history = base.commit_ids + later.commit_ids
    assert parents == {c: history[i - 1 : i] if i else [] for i, c in enumerate(history)}
    assert_objects_stored(hub_env, base.contents | later.contents)
    every_file = {oid for manifest in manifests.values() for oid in manifest.values()}
    assert {r["object_id"] for r in hub_env.rows("musehub_object_refs")} == every_file | set(base.contents)
    assert {r["status"] for r in hub_env.rows("musehub_bundles")} == {"indexed"}


# --- refused bundles ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BadBundle:
    data: bytes
    reason: str  # a regex the error must match
    bundle_key: str | None = None  # None: the sha256 of `data`
    env: dict[str, str] = field(default_factory=dict)


def history_with(**extra: list[Raw]) -> bytes:
    """A valid three-commit history plus the given extra records: a partial write would show."""
    bundle = build_history(3, 4, zstd_every=2).bundle
    for kind, records in extra.items():
        bundle[kind].extend(records)
    return pack(bundle)


def cyclic_commits() -> list[Raw]:
    snapshot_id = build_history(3, 4).snapshot_ids[0]
    a, b = fake_id("a"), fake_id("b")
    return [make_commit(snapshot_id, parents=[b], commit_id=a), make_commit(snapshot_id, parents=[a], commit_id=b)]


def bad_bundles() -> dict[str, BadBundle]:
    valid = history_with()
    bomb = {"object_id": sha256_hex(bytes(100_000)), "content": zstd_zeros_frame(100_000), "encoding": "zstd"}
    return {
        "bad-hash-key": BadBundle(valid, "sha256 of the bytes is .* not the bundle key", fake_id("other")),
        "not-a-map": BadBundle(pack([valid]), "not a msgpack map"),
        "truncated": BadBundle(valid[: len(valid) // 2], "truncated msgpack"),
        "delta-base-missing": BadBundle(
            history_with(snapshots=[raw_delta(fake_id("base"), snapshot_id=fake_id("delta"))]),
            f"delta base {fake_id('base')} is neither in the bundle nor in the catalog",
        ),
        "commit-cycle": BadBundle(history_with(commits=cyclic_commits()), "cycle in commit parents"),
        "bad-path": BadBundle(
            history_with(snapshots=[full_snapshot({"../escape.txt": fake_id("x")})]), "contains '..'"
        ),
        "zstd-over-limit": BadBundle(
            history_with(objects=[bomb]), "decodes to more than 4096 bytes", env={"HUB_MAX_OBJECT_BYTES": "4096"}
        ),
        "too-many-commits": BadBundle(valid, "more than the limit of 2", env={"HUB_MAX_COMMITS": "2"}),
    }


BAD_BUNDLES = bad_bundles()


@pytest.mark.parametrize("case", BAD_BUNDLES.values(), ids=BAD_BUNDLES.keys())
def test_refused_bundle_fails_in_bundle_step_and_writes_nothing(
    hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch, case: BadBundle
) -> None:
    # Set after the definitions were loaded: limits are read when the run starts.
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    pk = hub_env.upload(REPO, case.data, case.bundle_key)

    (outcome,) = hub_env.index(pk)

    assert not outcome.success
    assert outcome.error and f"bundle {pk}" in outcome.error, outcome.error
    assert re.search(case.reason, outcome.error), outcome.error
    assert failed_steps(hub_env.instance, outcome.run_id) == ["bundle"]
    assert {table: hub_env.count(table) for table in CATALOG_TABLES} == dict.fromkeys(CATALOG_TABLES, 0)
    assert hub_env.store_listing("objects/") == []
    (bundle,) = hub_env.rows("musehub_bundles")
    assert (bundle["repo_id"], bundle["bundle_key"]) == split_partition_key(pk)
    assert bundle["status"] == "failed"
    assert re.search(case.reason, bundle["stats"]["error"]), bundle["stats"]
