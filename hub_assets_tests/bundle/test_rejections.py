"""Every rejection rule of SPEC §3: the bundle is refused with an error naming the bundle,
the record and the reason; the near-miss next to each rule is accepted."""

from __future__ import annotations

import functools
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgpack
import pytest

from hub_assets.bundle import Limits, decoded_bytes

from .builders import (
    MIB,
    Raw,
    StaticCatalog,
    build_history,
    decode,
    decode_dict,
    delta_snapshot,
    fake_id,
    full_snapshot,
    make_bundle,
    make_commit,
    make_object,
    pack,
    pack_with_raw_str,
    raw_delta,
    sha256_hex,
    spec_snapshot_id,
    zstd_frame,
    zstd_zeros_frame,
)
from .expect import rejected

Path = Sequence[str | int]


def small_bundle() -> Raw:
    """Two commits (commits[0] the child), snapshots[0] full and snapshots[1] a delta, identity objects.
    The first snapshot's files are files/f00000.txt .. files/f00002.txt."""
    return build_history(2, 3, zstd_every=0).bundle


def set_at(bundle: Raw, path: Path, value: Any) -> Raw:
    target: Any = bundle
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return bundle


def mutated(path: Path, value: Any) -> bytes:
    return pack(set_at(small_bundle(), path, value))


def one_object_bundle(content: bytes, encoding: str = "zstd", object_id: str | None = None) -> bytes:
    record = {"object_id": object_id or sha256_hex(b"declared"), "content": content, "encoding": encoding}
    return pack(make_bundle(objects=[record]))


# --- the container ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [pack([1, 2]), pack(7), b"", pack(None), pack("commits"), pack(b"\x83")],
    ids=["array", "int", "empty", "nil", "str", "bin"],
)
def test_not_a_msgpack_map(data: bytes) -> None:
    rejected(data, "bundle", "not a msgpack map")


@pytest.mark.parametrize("cut", [1, 0.5, -1], ids=["after-header", "middle", "last-byte"])
def test_truncated_msgpack(cut: float) -> None:
    data = pack(small_bundle())
    end = int(len(data) * cut) if isinstance(cut, float) else cut if cut > 0 else len(data) + cut
    rejected(data[:end], "bundle", "truncated msgpack")


@pytest.mark.parametrize("tail", [pack(1), pack({}), pack(small_bundle())], ids=["int", "map", "bundle"])
def test_trailing_data(tail: bytes) -> None:
    rejected(pack(small_bundle()) + tail, "bundle", "trailing data")


@pytest.mark.parametrize("tail", [b"\x92", b"\xdc", b"\xa5ab"], ids=["fixarray", "array16-header", "short-str"])
def test_trailing_incomplete_value(tail: bytes) -> None:
    rejected(pack(small_bundle()) + tail, "bundle", "trailing data")


def test_duplicate_top_level_key() -> None:
    data = b"\x82" + pack("commits") + pack([]) + pack("commits") + pack([])
    rejected(data, "bundle", "appears twice")


def test_error_names_the_given_bundle() -> None:
    rejected(pack([]), "bundle", "not a msgpack map", name="repo-7/0123abcd")


# --- wrong types ------------------------------------------------------------------------------

WRONG_TYPES = [
    pytest.param(("commits",), {"a": 1}, "commits", "must be an array", id="commits-map"),
    pytest.param(("snapshots",), "x", "snapshots", "must be an array", id="snapshots-str"),
    pytest.param(("objects",), 7, "objects", "must be an array", id="objects-int"),
    pytest.param(("commits",), None, "commits", "must be an array", id="commits-nil"),
    pytest.param(("commits", 1), "oops", "commits[1]", "must be a map, not str", id="commit-str"),
    pytest.param(("objects", 0), [], "objects[0]", "must be a map, not list", id="object-list"),
    pytest.param(("snapshots", 1), 3, "snapshots[1]", "must be a map, not int", id="snapshot-int"),
    pytest.param(("objects", 0, "content"), "text", "objects[0]", "content must be msgpack bin", id="content-str"),
    pytest.param(("objects", 0, "content"), None, "objects[0]", "content must be msgpack bin", id="content-nil"),
    pytest.param(("commits", 0, "message"), 5, "commits[0]", "message must be a string", id="message-int"),
    pytest.param(("commits", 1, "message"), b"m", "commits[1]", "message must be a string", id="message-bin"),
    pytest.param(("commits", 0, "committed_at"), 17e8, "commits[0]", "committed_at must be a string", id="time"),
    pytest.param(("commits", 0, "author"), None, "commits[0]", "author must be a string", id="author-nil"),
    pytest.param(("snapshots", 0, "manifest"), ["a"], "snapshots[0]", "manifest must be a map", id="manifest"),
    pytest.param(("snapshots", 1, "changes"), [], "snapshots[1]", "changes must be a map", id="changes"),
    pytest.param(("snapshots", 1, "removed"), "a", "snapshots[1]", "removed must be an array", id="removed-str"),
    pytest.param(("snapshots", 1, "removed"), [1], "snapshots[1]", "removed must be an array", id="removed-int"),
    pytest.param(("snapshots", 0, "created_at"), 5, "snapshots[0]", "created_at must be a string", id="created"),
    pytest.param(("branch_heads",), ["main"], "branch_heads", "must map branch names", id="branch-heads"),
]


@pytest.mark.parametrize(("path", "value", "record", "reason"), WRONG_TYPES)
def test_wrong_types(path: Path, value: Any, record: str, reason: str) -> None:
    rejected(mutated(path, value), record, reason)


# --- ids --------------------------------------------------------------------------------------

GOOD_ID = fake_id("good")
BAD_IDS = [
    pytest.param(GOOD_ID.upper(), id="upper-case"),
    pytest.param(GOOD_ID[:63], id="63-chars"),
    pytest.param(GOOD_ID + "0", id="65-chars"),
    pytest.param("g" + GOOD_ID[1:], id="non-hex"),
    pytest.param(" " + GOOD_ID[1:], id="space"),
    pytest.param("é" + GOOD_ID[1:], id="non-ascii"),
    pytest.param("\u0660" + GOOD_ID[1:], id="arabic-indic-digit"),
    pytest.param(GOOD_ID.encode(), id="bin"),
    pytest.param(5, id="int"),
]
ID_PLACES = [
    pytest.param(("objects", 0, "object_id"), "objects[0]", "object_id must be 64", id="object_id"),
    pytest.param(("snapshots", 0, "snapshot_id"), "snapshots[0]", "snapshot_id must be 64", id="snapshot_id"),
    pytest.param(("snapshots", 1, "base_snapshot_id"), "snapshots[1]", "base_snapshot_id must be 64", id="base"),
    pytest.param(("commits", 0, "commit_id"), "commits[0]", "commit_id must be 64", id="commit_id"),
    pytest.param(("commits", 0, "snapshot_id"), "commits[0]", "snapshot_id must be 64", id="commit-snapshot"),
    pytest.param(("commits", 0, "parent_commit_id"), "commits[0]", "parent_commit_id must be 64", id="parent"),
    pytest.param(("commits", 0, "parent2_commit_id"), "commits[0]", "parent2_commit_id must be 64", id="parent2"),
    pytest.param(
        ("snapshots", 0, "manifest", "files/f00000.txt"), "snapshots[0]", "must be a 64 lowercase hex", id="manifest"
    ),
    pytest.param(
        ("snapshots", 1, "changes", "files/f00000.txt"), "snapshots[1]", "must be a 64 lowercase hex", id="changes"
    ),
]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize(("path", "record", "reason"), ID_PLACES)
def test_ids_not_64_lowercase_hex(path: Path, record: str, reason: str, bad: object) -> None:
    rejected(mutated(path, bad), record, reason)


# --- bundle key -------------------------------------------------------------------------------


def test_sha256_differs_from_bundle_key() -> None:
    data = pack(small_bundle())
    wrong = sha256_hex(b"another upload")
    rejected(data, "bundle", f"sha256 of the bytes is {sha256_hex(data)}, not the bundle key {wrong}", bundle_key=wrong)


@pytest.mark.parametrize("garbage", [b"\xc1\xc1", pack([1]), b"", pack(small_bundle())[:-3]])
def test_hash_mismatch_reported_before_garbage(garbage: bytes) -> None:
    rejected(garbage, "bundle", "sha256 of the bytes is .* not the bundle key", bundle_key=fake_id("key"))


def test_garbage_with_the_right_key_is_reported_as_garbage() -> None:
    rejected(b"\xc1", "bundle", "not a msgpack map")


def test_no_bundle_key_skips_the_hash_check() -> None:
    assert len(decode(pack(small_bundle()), bundle_key=None).commits) == 2


# --- references -------------------------------------------------------------------------------

BASE_MANIFEST = {"kept.txt": fake_id("kept"), "gone.txt": fake_id("gone")}
BASE_ID = spec_snapshot_id(BASE_MANIFEST)
DELTA_MANIFEST = {"kept.txt": fake_id("kept"), "new.txt": fake_id("new")}


def delta_over_outside_base() -> tuple[Raw, str]:
    delta = delta_snapshot(BASE_ID, BASE_MANIFEST, DELTA_MANIFEST)
    return make_bundle(snapshots=[delta]), delta["snapshot_id"]


def test_delta_base_missing() -> None:
    bundle, delta_id = delta_over_outside_base()
    rejected(pack(bundle), f"snapshot {delta_id}", f"delta base {BASE_ID} is neither in the bundle nor in the catalog")


def test_delta_base_known_but_without_manifest_is_missing() -> None:
    bundle, delta_id = delta_over_outside_base()
    rejected(pack(bundle), f"snapshot {delta_id}", "delta base", catalog=StaticCatalog(snapshots={BASE_ID}))


def test_delta_base_from_catalog() -> None:
    bundle, delta_id = delta_over_outside_base()
    on_top = delta_snapshot(delta_id, DELTA_MANIFEST, {"new.txt": fake_id("new")})
    bundle["snapshots"].insert(0, on_top)
    catalog = StaticCatalog(manifests={BASE_ID: BASE_MANIFEST, fake_id("unrelated"): {}})
    decoded = decode_dict(bundle, catalog=catalog)
    assert {s.snapshot_id: s.manifest for s in decoded.snapshots} == {
        delta_id: DELTA_MANIFEST,
        on_top["snapshot_id"]: {"new.txt": fake_id("new")},
    }
    assert catalog.manifest_calls == [{BASE_ID}]


def test_catalog_not_asked_when_every_base_is_inside() -> None:
    catalog = StaticCatalog()
    decode_dict(small_bundle(), catalog=catalog)
    assert catalog.manifest_calls == []


A, B, C, D = (fake_id(x) for x in "abcd")


@pytest.mark.parametrize(
    ("snapshots", "cycle"),
    [
        pytest.param([raw_delta(B, snapshot_id=A), raw_delta(A, snapshot_id=B)], {A, B}, id="2-cycle"),
        pytest.param([raw_delta(A, snapshot_id=A)], {A}, id="self-loop"),
        pytest.param(
            [
                raw_delta(A, snapshot_id=D),
                raw_delta(B, snapshot_id=A),
                raw_delta(C, snapshot_id=B),
                raw_delta(A, snapshot_id=C),
                full_snapshot({}),
            ],
            {A, B, C},
            id="3-cycle-with-tail",
        ),
    ],
)
def test_cycle_in_delta_bases(snapshots: list[Raw], cycle: set[str]) -> None:
    error = rejected(pack(make_bundle(snapshots=snapshots)), "snapshot ", "cycle in delta bases")
    assert error.record in {f"snapshot {sid}" for sid in cycle}


def test_cycle_in_commit_parents() -> None:
    snapshot = full_snapshot({})
    first = make_commit(snapshot["snapshot_id"], parents=[B], commit_id=A)
    second = make_commit(snapshot["snapshot_id"], parents=[A], commit_id=B)
    error = rejected(pack(make_bundle(commits=[first, second], snapshots=[snapshot])), "commit ", "cycle")
    assert error.record in {f"commit {A}", f"commit {B}"}
    assert error.reason == "cycle in commit parents"


def commit_on_outside_snapshot() -> tuple[Raw, Raw]:
    commit = make_commit(BASE_ID)
    return make_bundle(commits=[commit]), commit


def test_commit_snapshot_missing() -> None:
    bundle, commit = commit_on_outside_snapshot()
    rejected(
        pack(bundle),
        f"commit {commit['commit_id']}",
        f"snapshot {BASE_ID} is neither in the bundle nor in the catalog",
    )


@pytest.mark.parametrize(
    "catalog",
    [StaticCatalog(snapshots={BASE_ID}), StaticCatalog(manifests={BASE_ID: BASE_MANIFEST})],
    ids=["existing", "with-manifest"],
)
def test_commit_snapshot_in_catalog(catalog: StaticCatalog) -> None:
    bundle, commit = commit_on_outside_snapshot()
    assert [c.commit_id for c in decode_dict(bundle, catalog=catalog).commits] == [commit["commit_id"]]


# --- manifest paths ---------------------------------------------------------------------------


def bundle_with_path(path: str, place: str) -> bytes:
    oid = fake_id("content")
    base = {"ok.txt": oid}
    if place == "manifest":
        return pack(make_bundle(snapshots=[full_snapshot({**base, path: oid})]))
    full = full_snapshot(base)
    return pack(make_bundle(snapshots=[full, delta_snapshot(full["snapshot_id"], base, {**base, path: oid})]))


PLACES = [pytest.param("manifest", "snapshots[0]", id="full"), pytest.param("changes", "snapshots[1]", id="delta")]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param("/etc/passwd", "is absolute", id="absolute"),
        pytest.param("/", "is absolute", id="root"),
        pytest.param("a/../b", "contains '..'", id="dotdot-inside"),
        pytest.param("..", "contains '..'", id="dotdot"),
        pytest.param("../a", "contains '..'", id="dotdot-leading"),
        pytest.param("a/..", "contains '..'", id="dotdot-trailing"),
        pytest.param("a\0b", "contains a NUL", id="nul"),
        pytest.param("a\\b", "backslash", id="backslash"),
        pytest.param("..\\x", "contains '..'", id="windows-escape"),
        pytest.param("x" * 4097, "longer than 4096 bytes", id="4097-bytes"),
        pytest.param("é" * 2049, "longer than 4096 bytes", id="4098-utf8-bytes"),
        pytest.param("", "non-empty", id="empty"),
    ],
)
@pytest.mark.parametrize(("place", "record"), PLACES)
def test_bad_manifest_path(place: str, record: str, path: str, reason: str) -> None:
    rejected(bundle_with_path(path, place), record, reason)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("x" * 4096, id="4096-bytes"),
        pytest.param("é" * 2048, id="4096-utf8-bytes"),
        pytest.param("a/b/c.mid", id="nested"),
        pytest.param(".museignore", id="dotfile"),
        pytest.param("tracks/ü ß/t 1.bin", id="unicode-space"),
    ],
)
@pytest.mark.parametrize("place", ["manifest", "changes"])
def test_good_manifest_path(place: str, path: str) -> None:
    decoded = decode(bundle_with_path(path, place))
    assert any(path in s.manifest for s in decoded.snapshots)


# --- zstd -------------------------------------------------------------------------------------


@functools.cache
def bomb_frame() -> bytes:
    return zstd_zeros_frame(200_000_000)


def test_zstd_bomb_refused_in_bounded_memory() -> None:
    frame = bomb_frame()
    assert len(frame) < 100_000
    data = one_object_bundle(frame)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        rejected(data, "objects[0]", f"decodes to more than {64 * MIB} bytes")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, f"peak {peak} bytes while refusing a bomb"


@pytest.mark.parametrize("declare_size", [True, False], ids=["size-in-header", "no-size-in-header"])
@pytest.mark.parametrize(
    ("decoded_size", "accepted"),
    [(1000, True), (1001, False), (10 * MIB, False)],
    ids=["at-limit", "one-over", "far-over"],
)
def test_zstd_size_limit(decoded_size: int, accepted: bool, declare_size: bool) -> None:
    frame = zstd_zeros_frame(decoded_size, declare_size=declare_size)
    data = one_object_bundle(frame, object_id=sha256_hex(bytes(decoded_size)))
    limits = Limits(max_object_bytes=1000, verify_object_ids=True)
    if accepted:
        (obj,) = decode(data, limits=limits).objects
        assert obj.size_bytes == decoded_size
        assert decoded_bytes(obj) == bytes(decoded_size)
    else:
        rejected(data, "objects[0]", "decodes to more than 1000 bytes", limits=limits)


@pytest.mark.parametrize(("size", "accepted"), [(1000, True), (1001, False)])
def test_identity_size_limit(size: int, accepted: bool) -> None:
    data = one_object_bundle(bytes(size), encoding="identity")
    limits = Limits(max_object_bytes=1000)
    if accepted:
        assert decode(data, limits=limits).objects[0].size_bytes == size
    else:
        rejected(data, "objects[0]", "larger than 1000 bytes", limits=limits)


FRAME = zstd_frame(b"a line of music\n" * 500)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(FRAME[:-4], "not exactly one complete frame", id="truncated-end"),
        pytest.param(FRAME[:6], "not exactly one complete frame", id="header-only"),
        pytest.param(FRAME + FRAME, "not exactly one complete frame", id="two-frames"),
        pytest.param(FRAME + b"\0", "not exactly one complete frame|does not decode", id="trailing-byte"),
        pytest.param(b"", "not exactly one complete frame", id="empty"),
        pytest.param(b"not zstd at all", "does not decode", id="garbage"),
    ],
)
def test_bad_zstd_frame(content: bytes, reason: str) -> None:
    rejected(one_object_bundle(content), "objects[0]", reason)


# --- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "record", "reason"),
    [
        pytest.param(Limits(max_commits=2), "commits", "3 records, more than the limit of 2", id="commits"),
        pytest.param(Limits(max_snapshots=2), "snapshots", "3 records, more than the limit of 2", id="snapshots"),
        pytest.param(Limits(max_objects=5), "objects", "records, more than the limit of 5", id="objects"),
        pytest.param(
            Limits(max_manifest_entries=3),
            "snapshots[0]",
            "manifest has 4 entries, more than the limit of 3",
            id="full",
        ),
    ],
)
def test_count_limits(limits: Limits, record: str, reason: str) -> None:
    rejected(build_history(3, 4).wire(), record, reason, limits=limits)


def test_counts_at_the_limits_accepted() -> None:
    history = build_history(3, 4, delta=False)
    limits = Limits(
        max_commits=3,
        max_snapshots=3,
        max_objects=len(history.bundle["objects"]),
        max_manifest_entries=max(len(m) for m in history.manifests.values()),
    )
    assert len(decode(history.wire(), limits=limits).commits) == 3


def growing_delta(base_size: int, added: int) -> tuple[Raw, Raw, str]:
    base = {f"b{i}": fake_id(i) for i in range(base_size)}
    full = full_snapshot(base)
    grown = {**base, **{f"n{i}": fake_id(-i) for i in range(added)}}
    delta = delta_snapshot(full["snapshot_id"], base, grown)
    return full, delta, delta["snapshot_id"]


@pytest.mark.parametrize(("added", "accepted"), [(1, True), (2, False)])
def test_resolved_manifest_limit(added: int, accepted: bool) -> None:
    full, delta, delta_id = growing_delta(2, added)
    data, limits = pack(make_bundle(snapshots=[delta, full])), Limits(max_manifest_entries=3)
    if accepted:
        assert len(decode(data, limits=limits).snapshots) == 2
    else:
        rejected(
            data, f"snapshot {delta_id}", "resolved manifest has 4 entries, more than the limit of 3", limits=limits
        )


def test_resolved_manifest_limit_over_a_catalog_base() -> None:
    full, delta, delta_id = growing_delta(3, 1)
    catalog = StaticCatalog(manifests={full["snapshot_id"]: full["manifest"]})
    data = pack(make_bundle(snapshots=[delta]))
    rejected(
        data,
        f"snapshot {delta_id}",
        "resolved manifest has 4 entries",
        limits=Limits(max_manifest_entries=3),
        catalog=catalog,
    )


def test_changes_limit() -> None:
    _, delta, _ = growing_delta(0, 4)
    data = pack(make_bundle(snapshots=[{**delta, "base_snapshot_id": BASE_ID}]))
    rejected(data, "snapshots[0]", "changes has 4 entries", limits=Limits(max_manifest_entries=3))


# --- strings ----------------------------------------------------------------------------------

MARK = "\x01marker\x01"


def with_marker(place: str) -> Raw:
    bundle = small_bundle()
    if place == "top-level-key":
        bundle[MARK] = 1
    elif place == "manifest-path":
        bundle["snapshots"][0]["manifest"][MARK] = fake_id("x")
    elif place == "object-path":
        bundle["objects"][0]["path"] = MARK
    elif place == "meta":
        bundle["commits"][0]["metadata"] = {"note": MARK}
    else:
        bundle["commits"][0][place] = MARK
    return bundle


UTF8_PLACES = ["message", "author", "committed_at", "manifest-path", "object-path", "meta", "top-level-key"]
INVALID_UTF8 = [
    pytest.param(b"\xff\xfe", id="ff"),
    pytest.param(b"caf\xc3(", id="bad-continuation"),
    pytest.param(b"\xed\xa0\x80", id="surrogate"),
    pytest.param(b"\xc0\xaf", id="overlong"),
]


@pytest.mark.parametrize("bad", INVALID_UTF8)
@pytest.mark.parametrize("place", UTF8_PLACES)
def test_string_not_utf8(place: str, bad: bytes) -> None:
    rejected(pack_with_raw_str(with_marker(place), MARK, bad), "bundle", "not valid UTF-8")


def test_string_not_utf8_names_its_record() -> None:
    rejected(pack_with_raw_str(with_marker("message"), MARK, b"\xff"), "commits[0]", "not valid UTF-8")


def test_valid_utf8_through_the_raw_path_accepted() -> None:
    data = pack_with_raw_str(with_marker("message"), MARK, "café ♫".encode())
    assert any(c.message == "café ♫" for c in decode(data).commits)


# --- duplicates -------------------------------------------------------------------------------


def test_duplicate_object_with_different_content() -> None:
    first = make_object(b"one")
    second = {**make_object(b"two"), "object_id": first["object_id"]}
    rejected(pack(make_bundle(objects=[first, second])), f"object {first['object_id']}", "sent twice with different")


def test_duplicate_snapshot_with_different_content() -> None:
    first = full_snapshot({"a": fake_id(1)})
    second = full_snapshot({"a": fake_id(2)}, snapshot_id=first["snapshot_id"])
    rejected(
        pack(make_bundle(snapshots=[first, second])), f"snapshot {first['snapshot_id']}", "sent twice with different"
    )


def test_duplicate_commit_with_different_content() -> None:
    snapshot = full_snapshot({})
    first = make_commit(snapshot["snapshot_id"], message="one")
    second = make_commit(snapshot["snapshot_id"], message="two", commit_id=first["commit_id"])
    bundle = make_bundle(commits=[first, second], snapshots=[snapshot])
    rejected(pack(bundle), f"commit {first['commit_id']}", "sent twice with different")


def test_exact_duplicates_accepted_and_deduplicated() -> None:
    history = build_history(3, 3)
    doubled = {key: value * 2 if isinstance(value, list) else value for key, value in history.bundle.items()}
    once, twice = decode(history.wire()), decode_dict(doubled)
    assert (len(twice.commits), len(twice.snapshots), len(twice.objects)) == (3, 3, len(history.contents))
    assert twice.commits == once.commits
    assert twice.snapshots == once.snapshots
    assert twice.objects == once.objects


# --- commit fields ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00+00:00", "", "2026/01/01", "1700000000"])
def test_committed_at_not_iso(text: str) -> None:
    rejected(mutated(("commits", 0, "committed_at"), text), "commits[0]", "is not ISO-8601")


@pytest.mark.parametrize("text", ["2026-01-01T00:00:00Z", "2026-01-01", "2026-11-24T08:58:17.504586+00:00"])
def test_committed_at_iso_variants_accepted(text: str) -> None:
    commits = decode(mutated(("commits", 0, "committed_at"), text)).commits
    assert all(c.committed_at_time.tzinfo is not None for c in commits)
    assert text in {c.committed_at for c in commits}


def test_snapshot_created_at_without_offset_is_utc() -> None:
    """One rule for a time without an offset, commit or snapshot: it is UTC, not the server's zone."""
    snapshots = decode(mutated(("snapshots", 0, "created_at"), "2026-03-04T05:06:07.123456")).snapshots
    assert datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC) in {s.created_at for s in snapshots}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        pytest.param("metadata", {"blob": b"\x00\x01"}, "holds bytes", id="meta-bytes"),
        pytest.param("signature", b"sig", "holds bytes", id="field-bytes"),
        pytest.param("reviewed_by", [["deep", b"x"]], "holds bytes", id="nested-bytes"),
        pytest.param("metadata", {"x": float("nan")}, "non-finite", id="nan"),
        pytest.param("metadata", {"x": "a\0b"}, "NUL", id="nul-in-meta"),
        pytest.param("metadata", {"a\0b": 1}, "key that is not NUL-free", id="nul-in-key"),
    ],
)
def test_commit_meta_not_json(field: str, value: Any, reason: str) -> None:
    rejected(mutated(("commits", 1, field), value), "commits[1]", reason)


@pytest.mark.parametrize("field", ["message", "author", "committed_at"])
def test_nul_in_commit_text(field: str) -> None:
    rejected(mutated(("commits", 0, field), "a\0b"), "commits[0]", f"{field} contains a NUL")


@pytest.mark.parametrize("encoding", ["gzip", "ZSTD", "Identity", 5])
def test_unknown_encoding(encoding: object) -> None:
    rejected(mutated(("objects", 0, "encoding"), encoding), "objects[0]", "unknown encoding")


@pytest.mark.parametrize("encoding", [None, "identity"])
def test_identity_encoding_spellings(encoding: object) -> None:
    assert decode(mutated(("objects", 0, "encoding"), encoding)).objects[0].encoding == "identity"


def test_parent2_without_parent1() -> None:
    bundle = set_at(small_bundle(), ("commits", 1, "parent2_commit_id"), fake_id("p2"))
    rejected(pack(bundle), "commits[1]", "parent2_commit_id without parent_commit_id")


def test_unknown_keys_ignored() -> None:
    bundle = small_bundle()
    bundle["tags"] = [{"name": "v1", "commit_id": fake_id(1)}]
    bundle["future"] = {"nested": [b"bin", 1.5, None, {"deep": [1, 2]}]}
    bundle["format"] = 7
    bundle["objects"][0]["mime"] = "text/plain"
    bundle["snapshots"][0]["extra"] = [1, 2]
    bundle["snapshots"][1]["extra"] = {"k": b"v"}
    decoded = decode_dict(bundle)
    plain = decode_dict(small_bundle())
    assert decoded.snapshots == plain.snapshots
    assert decoded.objects == plain.objects


# --- opt-in object id verification ------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["identity", "zstd"])
def test_verify_object_ids(encoding: str) -> None:
    lying = make_object(b"real bytes", encoding="zstd" if encoding == "zstd" else "identity")
    lying["object_id"] = sha256_hex(b"other bytes")
    honest = make_object(b"honest", encoding="zstd" if encoding == "zstd" else "identity")
    data = pack(make_bundle(objects=[honest, lying]))
    assert len(decode(data).objects) == 2
    rejected(data, "objects[1]", "object_id is not the sha256", limits=Limits(verify_object_ids=True))
    assert len(decode(pack(make_bundle(objects=[honest])), limits=Limits(verify_object_ids=True)).objects) == 1


def test_muse_wire_layout_is_what_the_builders_write() -> None:
    """Guard: builders write the same container as Muse (map of arrays, str and bin types)."""
    data = build_history(1, 1, zstd_every=1).wire()
    unpacked = msgpack.unpackb(data, raw=False)
    assert set(unpacked) == {"commits", "snapshots", "objects", "branch_heads"}
    assert isinstance(unpacked["objects"][0]["content"], bytes)
    assert unpacked["objects"][0]["encoding"] == "zstd"


def test_record_larger_than_the_unpacker_buffer_is_named() -> None:
    huge = {"object_id": fake_id("huge"), "content": b"x" * (6 * 1024 * 1024)}
    data = pack(make_bundle(objects=[huge]))
    rejected(data, "objects[0]", "larger than the per-record limit", limits=Limits(max_object_bytes=1024))
