"""The decoder checks each array of records at once (bundle/batches.py: a quick test per record,
ids, paths and commit fields checked over the whole array). Through that path every rule of
validate.py must give what checking the records one by one, in order, gives: the same records,
or the same error naming the same first record and rule."""

from __future__ import annotations

import contextlib
import gc
import io
from collections.abc import Callable
from typing import Any

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from hub_assets.bundle import BundleError, Limits, ObjectRecord
from hub_assets.bundle.objects import measure_unusual_zstd, measure_zstd, object_size, zstd_size
from hub_assets.bundle.validate import check_commit, check_object, check_snapshot
from hub_assets.bundle.wire import read_wire

from .builders import decode, fake_id, make_bundle, make_commit, make_object, pack, pack_with_raw_str, zstd_frame
from .expect import rejected

MISSING = object()  # the field left out of the record
GOOD_ID, OTHER_ID = fake_id("a"), fake_id("b")
IDS = [GOOD_ID, OTHER_ID, GOOD_ID.upper(), GOOD_ID[:63], GOOD_ID[:63] + "g", "é" * 64, "", None, 5, MISSING]
TEXTS = ["text", "", "a\0b", 5, None, MISSING]
MOMENTS = ["2026-01-01T00:00:00+00:00", "2026-01-01", "yesterday", "2026-01-01\0", "", 5, None, MISSING]
META = [None, {}, {"k": [1, "x", 2.5]}, {"k": "a\0"}, {"a\0": 1}, float("nan"), b"bin", [True, None], MISSING]
PATHS_TO_IDS = [
    {},
    {"src/a.py": GOOD_ID, "b": OTHER_ID},
    {"/abs": GOOD_ID},
    {"a/../b": GOOD_ID},
    {"a\\b": GOOD_ID},
    {"": GOOD_ID},
    {"x" * 4097: GOOD_ID},
    {"a": "not-an-id"},
    {"a": None},
    [],
    None,
    MISSING,
]
REMOVED = [[], ["gone.txt"], [5], "gone.txt", None, MISSING]
FRAME = zstd_frame(b"hello " * 100)
CONTENTS = [b"", b"plain", FRAME, FRAME + b"!", FRAME[:-2], zstd_frame(b"x" * 2000), "text", None, MISSING]
ENCODINGS = ["zstd", "identity", None, "", 0, "gzip", "ZSTD", MISSING]
LIMITS = Limits(max_object_bytes=1000)


def _record(fields: dict[str, list[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    draws = st.fixed_dictionaries({key: st.sampled_from(values) for key, values in fields.items()})
    return draws.map(lambda raw: {key: value for key, value in raw.items() if value is not MISSING})


COMMITS = _record(
    {
        "commit_id": IDS,
        "snapshot_id": IDS,
        "parent_commit_id": IDS,
        "parent2_commit_id": IDS,
        "message": TEXTS,
        "author": TEXTS,
        "committed_at": MOMENTS,
        "metadata": META,
    }
)
SNAPSHOTS = _record(
    {
        "snapshot_id": IDS,
        "base_snapshot_id": IDS,
        "manifest": PATHS_TO_IDS,
        "changes": PATHS_TO_IDS,
        "removed": REMOVED,
        "created_at": MOMENTS,
    }
)
OBJECTS = _record({"object_id": IDS, "content": CONTENTS, "encoding": ENCODINGS})
# Mostly good records, so that a fault sits among good ones and behind or ahead of other faults.
GOOD_COMMIT = make_commit(GOOD_ID, parents=[OTHER_ID])
GOOD_SNAPSHOT = {"snapshot_id": GOOD_ID, "base_snapshot_id": OTHER_ID, "changes": {"a": GOOD_ID}, "removed": []}
GOOD_OBJECT = make_object(b"hello " * 100, encoding="zstd")


def _one_object(where: str, raw: Any) -> ObjectRecord:
    object_id, content, encoding = check_object(where, raw)
    size = object_size(f"{where} {object_id}", content, encoding, LIMITS.max_object_bytes, zstandard.ZstdDecompressor())
    return ObjectRecord(object_id, content, encoding, size)


def _snapshot_alone(where: str, raw: Any) -> Any:
    return check_snapshot(where, raw, LIMITS.max_manifest_entries)


def _one_by_one(key: str, raws: list[Any], check: Callable[[str, Any], Any]) -> list[Any] | str:
    try:
        return [check(f"{key}[{index}]", raw) for index, raw in enumerate(raws)]
    except BundleError as error:
        return str(error)


def _at_once(key: str, raws: list[Any]) -> list[Any] | str:
    try:
        return getattr(read_wire(io.BytesIO(pack({key: raws})), LIMITS), key)
    except BundleError as error:
        return str(error)


def _mixed(record: st.SearchStrategy[dict[str, Any]], good: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.one_of(st.just(good), st.just(good), record, st.integers(-5, 5)), min_size=1, max_size=5)


@settings(max_examples=1500, deadline=None)
@given(_mixed(COMMITS, GOOD_COMMIT))
def test_commits_at_once_as_one_by_one(raws: list[Any]) -> None:
    assert _at_once("commits", raws) == _one_by_one("commits", raws, check_commit)


@settings(max_examples=1500, deadline=None)
@given(_mixed(SNAPSHOTS, GOOD_SNAPSHOT))
def test_snapshots_at_once_as_one_by_one(raws: list[Any]) -> None:
    assert _at_once("snapshots", raws) == _one_by_one("snapshots", raws, _snapshot_alone)


@settings(max_examples=1500, deadline=None)
@given(_mixed(OBJECTS, GOOD_OBJECT))
def test_objects_at_once_as_one_by_one(raws: list[Any]) -> None:
    assert _at_once("objects", raws) == _one_by_one("objects", raws, _one_object)


@pytest.mark.parametrize(
    ("bundle", "record"),
    [
        (make_bundle(commits=[make_commit(GOOD_ID, commit_id="bad"), {**GOOD_COMMIT, "message": 5}]), "commits[0]"),
        (make_bundle(commits=[make_commit(GOOD_ID, metadata={"k": "\0"}), 5]), "commits[0]"),
        (make_bundle(snapshots=[{**GOOD_SNAPSHOT, "changes": {"/abs": GOOD_ID}}, 5]), "snapshots[0]"),
        (make_bundle(objects=[make_object(b"a", object_id="bad"), {**GOOD_OBJECT, "encoding": "gzip"}]), "objects[0]"),
        (make_bundle(objects=[make_object(b"a", object_id="bad"), 5]), "objects[0]"),
    ],
)
def test_a_fault_found_over_the_array_is_named_before_a_later_records(bundle: dict[str, Any], record: str) -> None:
    error = rejected(pack(bundle), record, "")
    assert f"{record[:-2]}1]" not in str(error)


def test_a_fault_found_over_the_array_is_named_before_a_later_unpacking_error() -> None:
    first = make_commit(GOOD_ID, commit_id="bad")
    data = pack_with_raw_str(make_bundle(commits=[first, make_commit(GOOD_ID, message="MARK")]), "MARK", b"\xff")
    rejected(data, "commits[0]", "commit_id must be 64 lowercase hex")


def test_a_fault_found_over_the_array_is_named_before_a_truncation_after_it() -> None:
    first = make_commit(GOOD_ID, commit_id="bad")
    whole = pack(make_bundle(commits=[first, make_commit(GOOD_ID, message="MARK")]))
    data = whole[: whole.index(b"MARK")]  # cut inside the second commit
    rejected(data, "commits[0]", "commit_id must be 64 lowercase hex")


@pytest.mark.parametrize(
    ("frame", "limit"),
    [
        (FRAME, 10_000),
        (FRAME, 599),  # over the limit
        (FRAME + b"!", 10_000),  # trailing data
        (FRAME + FRAME, 10_000),  # two frames
        (FRAME[:-2], 10_000),  # truncated
        (b"not zstd", 10_000),
        (zstandard.ZstdCompressor(write_content_size=False).compress(b"x" * 100), 10_000),
        (zstandard.ZstdCompressor().compress(b""), 10_000),  # declares 0: left to the streaming passes
    ],
)
def test_the_one_pass_zstd_size_answers_only_for_a_good_frame(frame: bytes, limit: int) -> None:
    """What it answers, the slow path alone answers too; what it refuses, the slow path refuses
    (or measures, when the frame does not declare its size)."""
    decompressor = zstandard.ZstdDecompressor()
    try:
        careful: int | None = measure_unusual_zstd("object", frame, limit, decompressor)
    except BundleError:
        careful = None
    quick = zstd_size(frame, limit, decompressor)
    assert quick is None or quick == careful
    assert (quick is None) == (careful is None or zstandard.frame_content_size(frame) <= 0)


@pytest.mark.parametrize("data", [pack(make_bundle(objects=[GOOD_OBJECT])), b"\xc1"], ids=["accepted", "refused"])
@pytest.mark.parametrize("enabled", [True, False])
def test_decoding_leaves_the_garbage_collector_as_it_found_it(enabled: bool, data: bytes) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with contextlib.suppress(BundleError):
            decode(data)
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()


class CountingDecompressor:
    """A zstandard decompressor that counts its passes over a frame: one-shot decodes, streaming
    reads and incremental decoders. (It wraps one: the C type segfaults the collector when
    subclassed.)"""

    def __init__(self) -> None:
        self.passes = 0
        self._decompressor = REAL_DECOMPRESSOR()

    def decompress(self, *args: Any, **kwargs: Any) -> bytes:
        self.passes += 1
        return self._decompressor.decompress(*args, **kwargs)

    def stream_reader(self, *args: Any, **kwargs: Any) -> Any:
        self.passes += 1
        return self._decompressor.stream_reader(*args, **kwargs)

    def decompressobj(self, *args: Any, **kwargs: Any) -> Any:
        self.passes += 1
        return self._decompressor.decompressobj(*args, **kwargs)


REAL_DECOMPRESSOR = zstandard.ZstdDecompressor
UNDECLARED = zstandard.ZstdCompressor(write_content_size=False).compress(b"x" * 100)
BAD_FRAMES = {
    "trailing data": FRAME + b"!",
    "two frames": FRAME + FRAME,
    "truncated": FRAME[:-2],
    "not zstd": b"not zstd",
}


@pytest.mark.parametrize(
    ("frame", "limit", "passes"),
    [
        (FRAME, 10_000, 1),
        (FRAME, 599, 0),  # refused by its declared size
        (UNDECLARED, 10_000, 2),  # the streaming passes: one measures, one proves the frame whole
        *((frame, 10_000, 2) for frame in BAD_FRAMES.values()),
    ],
)
def test_a_frame_is_decoded_at_most_twice(frame: bytes, limit: int, passes: int) -> None:
    decompressor = CountingDecompressor()
    with contextlib.suppress(BundleError):
        measure_zstd("object", frame, limit, decompressor)  # type: ignore[arg-type]
    assert decompressor.passes <= passes


@pytest.mark.parametrize("frame", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_a_bad_frame_in_an_array_is_decoded_at_most_twice(frame: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once by the array's one-pass size, once by the full rules for its error."""
    made: list[CountingDecompressor] = []

    def counted() -> CountingDecompressor:
        made.append(CountingDecompressor())
        return made[-1]

    monkeypatch.setattr(zstandard, "ZstdDecompressor", counted)
    bad = {**GOOD_OBJECT, "content": frame}
    assert _at_once("objects", [GOOD_OBJECT, bad]) == _one_by_one("objects", [GOOD_OBJECT, bad], _one_object)
    made.clear()
    _at_once("objects", [GOOD_OBJECT, bad])
    assert sum(decompressor.passes for decompressor in made) <= 3  # the good object's one, the bad one's two


# Records enough to fill batches.py's first slice of 4096 values (ids, paths) and go past it.
PAST_A_SLICE = 5000
UPPER_ID = GOOD_ID.upper()  # the right length, not lowercase hex: only the check over the array sees it
ONE_BY_ONE: dict[str, tuple[dict[str, Any], dict[str, Any], Callable[[str, Any], Any]]] = {
    "commits": (GOOD_COMMIT, {**GOOD_COMMIT, "snapshot_id": UPPER_ID}, check_commit),
    "snapshots": (GOOD_SNAPSHOT, {**GOOD_SNAPSHOT, "changes": {"a": UPPER_ID}}, _snapshot_alone),
    "objects": (GOOD_OBJECT, {**GOOD_OBJECT, "object_id": UPPER_ID}, _one_object),
}


@pytest.mark.parametrize("bad_at", [4096, PAST_A_SLICE - 1])
@pytest.mark.parametrize("key", ONE_BY_ONE)
def test_a_fault_past_the_first_slice_is_named_as_one_by_one(key: str, bad_at: int) -> None:
    good, bad, check = ONE_BY_ONE[key]
    raws = [good] * PAST_A_SLICE
    raws[bad_at] = bad
    error = _at_once(key, raws)
    assert error == _one_by_one(key, raws, check)
    assert f"{key}[{bad_at}]" in error


LONG_PATH = "d/" * 1000 + "f"  # good, yet longer than the array's one test of lengths takes


@pytest.mark.parametrize("key", ONE_BY_ONE)
def test_valid_records_never_reach_the_full_rules(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_rules(*args: Any) -> Any:
        raise AssertionError("a valid record was checked by the full rules")

    for name in ("check_commit", "check_snapshot", "check_object", "object_size", "measure_unusual_zstd"):
        monkeypatch.setattr(f"hub_assets.bundle.batches.{name}", full_rules)
    good, _, _ = ONE_BY_ONE[key]
    assert isinstance(_at_once(key, [good] * PAST_A_SLICE), list)


@pytest.mark.parametrize("field", ["changes", "manifest"])
def test_a_long_path_sends_only_its_own_record_to_the_full_rules(field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []

    def check_snapshot_counted(where: str, raw: Any, max_entries: int) -> Any:
        checked.append(where)
        return check_snapshot(where, raw, max_entries)

    monkeypatch.setattr("hub_assets.bundle.batches.check_snapshot", check_snapshot_counted)
    long = {"snapshot_id": GOOD_ID, field: {LONG_PATH: GOOD_ID}}
    if field == "changes":
        long["base_snapshot_id"] = OTHER_ID
    raws = [GOOD_SNAPSHOT, long, GOOD_SNAPSHOT]
    assert _at_once("snapshots", raws) == _one_by_one("snapshots", raws, _snapshot_alone)
    assert checked == ["snapshots[1]"]
    raws = [GOOD_SNAPSHOT, long, {**GOOD_SNAPSHOT, "changes": {LONG_PATH + "/..": GOOD_ID}}]
    assert _at_once("snapshots", raws) == _one_by_one("snapshots", raws, _snapshot_alone)
