"""The rules of validate.py applied to a whole array of records at once (SPEC §3).

Per record, only what needs no more than a type test or a substring test runs; the ids, the
manifest paths and the commit fields that must fit in JSON are gathered and checked once per
array, by string operations over all of them joined, in C (record by record, the checks were a
quarter of decoding the reference push: 9 µs a commit, 7 µs a delta snapshot). A record the
quick test does not accept, and any failed check over the whole array, goes to validate.py's
rules record by record, in the order sent, so the error is the one that names the first record
at fault and its first broken rule, as if every record had been checked alone.
"""

import hashlib
from collections.abc import Callable
from itertools import chain
from typing import Any, Generic, TypeVar

import zstandard

from .encode import commit_dict
from .identity import is_hex_id
from .limits import Limits
from .objects import measure_unusual_zstd, object_size, verify_object_id, zstd_size
from .records import CommitRecord, Manifest, ObjectRecord, SnapshotRecord
from .validate import (
    _COMMIT_COLUMNS,
    _JSON,
    SHORT_PATH_CHARS,
    _all_good_paths,
    _all_hex_ids,
    check_commit,
    check_object,
    check_snapshot,
    parse_timestamp,
)

Record = TypeVar("Record")


class ArrayCheck(Generic[Record]):
    """Records of one array: `add` each raw value in order; `finish` checks what was deferred."""

    def __init__(self, key: str, check_one: Callable[[str, Any], Record]) -> None:
        self.key = key
        self._check_one = check_one
        self.records: list[Record] = []

    def add(self, raw: Any) -> None:
        record = self.quick(raw)
        if record is None:
            # The quick test refuses what it does not know to be good; the full rules decide.
            record = self._check_one(f"{self.key}[{len(self.records)}]", raw)
        self.records.append(record)

    def quick(self, raw: Any) -> Record | None:
        """The record when the per-record part of the rules passes (the rest is deferred)."""
        return None

    def deferred_pass(self) -> bool:
        """Whether every deferred check passes for the records added through `quick`."""
        return True

    def as_sent(self, record: Record) -> Any:
        """A raw record that breaks the rules the record's own raw broke: what the record keeps,
        without what passed the quick test (holding every raw record until the array's end
        would cost 10 MB at 10x the reference push)."""
        raise NotImplementedError

    def finish(self) -> list[Record]:
        """The records, once every deferred check passed; else raise the first record's error.
        Also called before an error in a later record is raised, so an earlier fault wins."""
        if not self.deferred_pass():
            for index, record in enumerate(self.records):
                self._check_one(f"{self.key}[{index}]", self.as_sent(record))
        return self.records


_SLICE = 4096


def _in_slices(check: Callable[[list[Any]], bool], values: list[Any]) -> bool:
    """`check` over `values` a slice at a time: the joined text of a slice, not of all values,
    is what is held at once (all the object ids of 10x the reference push joined are 3.4 MB)."""
    return all(check(values[start : start + _SLICE]) for start in range(0, len(values), _SLICE))


def _short_paths(paths: dict[Any, Any]) -> bool:
    """Whether every path of a manifest is short enough for the array's one test of lengths. A
    record with a longer path goes to the full rules alone; over the array it would fail that
    test, and send every record of the array to the full rules."""
    try:
        return max(map(len, paths), default=0) <= SHORT_PATH_CHARS
    except TypeError:  # a path that is not text: the full rules name it
        return False


class CommitArray(ArrayCheck[CommitRecord]):
    def __init__(self) -> None:
        super().__init__("commits", check_commit)
        self._ids: list[Any] = []
        self._metas: list[dict[str, Any]] = []

    def quick(self, raw: Any) -> CommitRecord | None:
        if type(raw) is not dict:
            return None
        get = raw.get
        commit_id, snapshot_id, message, committed_at = (
            get("commit_id"),
            get("snapshot_id"),
            get("message"),
            get("committed_at"),
        )
        first, second, author = get("parent_commit_id"), get("parent2_commit_id"), get("author", "")
        if not (
            type(message) is str
            and type(author) is str
            and type(committed_at) is str
            and "\0" not in message
            and "\0" not in author
            and (first is not None or second is None)
            and first != ""  # so that the parents are `parent_ids` without its Nones (as_sent)
            and second != ""
        ):
            return None
        committed_at_time = parse_timestamp(committed_at)
        if committed_at_time is None or "\0" in committed_at:
            return None
        ids = self._ids
        ids.append(commit_id)
        ids.append(snapshot_id)
        if first is not None:
            ids.append(first)
        if second is not None:
            ids.append(second)
        meta = raw.copy()
        for column in _COMMIT_COLUMNS:
            meta.pop(column, None)
        self._metas.append(meta)
        return CommitRecord(
            commit_id=commit_id,
            snapshot_id=snapshot_id,
            message=message,
            author=author,
            committed_at=committed_at,
            committed_at_time=committed_at_time,
            parent_ids=(first, second) if second else (first,) if first else (),
            meta=meta,
        )

    def as_sent(self, record: CommitRecord) -> Any:
        return commit_dict(record)

    def deferred_pass(self) -> bool:
        try:
            no_nul = "\\u0000" not in _JSON.encode(self._metas)
        except (TypeError, ValueError, RecursionError):
            return False
        return no_nul and _in_slices(_all_hex_ids, self._ids)


class SnapshotArray(ArrayCheck[SnapshotRecord]):
    def __init__(self, max_entries: int) -> None:
        super().__init__("snapshots", self._check_snapshot)
        self._max_entries = max_entries
        self._ids: list[Any] = []
        self._maps: list[Manifest] = []  # manifests and changes, path -> object id

    def _check_snapshot(self, where: str, raw: Any) -> SnapshotRecord:
        return check_snapshot(where, raw, self._max_entries)

    def quick(self, raw: Any) -> SnapshotRecord | None:
        if type(raw) is not dict:
            return None
        get = raw.get
        snapshot_id, created_at = get("snapshot_id"), get("created_at")
        created = None
        if created_at is not None and (type(created_at) is not str or (created := parse_timestamp(created_at)) is None):
            return None
        manifest = get("manifest")
        if manifest is not None or "manifest" in raw:
            if type(manifest) is not dict or len(manifest) > self._max_entries or not _short_paths(manifest):
                return None
            self._ids.append(snapshot_id)
            self._maps.append(manifest)
            return SnapshotRecord(snapshot_id, created, manifest=manifest)
        base, changes, removed = get("base_snapshot_id"), get("changes", {}), get("removed", [])
        if (
            type(changes) is not dict
            or len(changes) > self._max_entries
            or not _short_paths(changes)
            or type(removed) is not list
            or not all(type(path) is str for path in removed)
        ):
            return None
        self._ids.append(snapshot_id)
        self._ids.append(base)
        self._maps.append(changes)
        return SnapshotRecord(snapshot_id, created, base_snapshot_id=base, changes=changes, removed=tuple(removed))

    def as_sent(self, record: SnapshotRecord) -> Any:
        if record.manifest is not None:
            return {"snapshot_id": record.snapshot_id, "manifest": record.manifest}
        return {
            "snapshot_id": record.snapshot_id,
            "base_snapshot_id": record.base_snapshot_id,
            "changes": record.changes,
            "removed": list(record.removed),
        }

    def deferred_pass(self) -> bool:
        paths = list(chain.from_iterable(self._maps))
        object_ids = list(chain.from_iterable(m.values() for m in self._maps))
        return (
            _in_slices(_all_hex_ids, self._ids)
            and _in_slices(_all_good_paths, paths)
            and _in_slices(_all_hex_ids, object_ids)
        )


class ObjectArray(ArrayCheck[ObjectRecord]):
    """Objects: only the ids are deferred. Without `keep_content`, each record keeps the digest
    of its content in place of the content (ObjectRecord)."""

    def __init__(self, limits: Limits, keep_content: bool) -> None:
        super().__init__("objects", self._check_object)
        self._limits = limits
        self._keep_content = keep_content
        self._decompressor = zstandard.ZstdDecompressor()  # one for all: making one costs more than a small decode
        self._ids: list[Any] = []

    def add(self, raw: Any) -> None:
        record = self.quick(raw) or self._check_object(f"objects[{len(self.records)}]", raw)
        self.records.append(record)

    def quick(self, raw: Any) -> ObjectRecord | None:
        if type(raw) is not dict or self._limits.verify_object_ids:
            return None
        get = raw.get
        object_id, content, encoding = get("object_id"), get("content"), get("encoding") or "identity"
        if type(content) is not bytes:
            return None
        limit = self._limits.max_object_bytes
        if encoding == "zstd":
            size = zstd_size(content, limit, self._decompressor)
            if size is None:  # the full rules name the fault, without decoding the frame that pass again
                return self._check_object(f"objects[{len(self.records)}]", raw, one_pass_refused=True)
        elif encoding == "identity":
            size = len(content) if len(content) <= limit else None
        else:
            return None
        if size is None:
            return None  # named by the full rules, which check the id first
        self._ids.append(object_id)
        return self._record(object_id, content, encoding, size)

    def _record(self, object_id: str, content: bytes, encoding: Any, size: int) -> ObjectRecord:
        if self._keep_content:
            return ObjectRecord(object_id, content, encoding, size)
        return ObjectRecord(object_id, b"", encoding, size, hashlib.sha256(content).digest())

    def _check_object(self, where: str, raw: Any, one_pass_refused: bool = False) -> ObjectRecord:
        """`one_pass_refused`: `zstd_size` has answered None for the content."""
        object_id, content, encoding = check_object(where, raw)
        where = f"{where} {object_id}"
        limit = self._limits.max_object_bytes
        if one_pass_refused:
            size = measure_unusual_zstd(where, content, limit, self._decompressor)
        else:
            size = object_size(where, content, encoding, limit, self._decompressor)
        if self._limits.verify_object_ids:
            verify_object_id(where, ObjectRecord(object_id, content, encoding, size))
        self._ids.append(object_id)
        return self._record(object_id, content, encoding, size)

    def finish(self) -> list[ObjectRecord]:
        if not _in_slices(_all_hex_ids, self._ids):
            for index, object_id in enumerate(self._ids):
                if not is_hex_id(object_id):
                    check_object(f"objects[{index}]", {"object_id": object_id})  # names the bad id
        return self.records
