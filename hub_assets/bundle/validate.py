"""Type and shape rules for single records (SPEC §3). Pure: raw msgpack values in, records out."""

import json
import math
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from .errors import BundleError
from .identity import is_hex_id
from .records import CommitRecord, Encoding, Manifest, SnapshotRecord

MAX_PATH_BYTES = 4096
# A character is at most 4 bytes of UTF-8: a path this long or shorter is within MAX_PATH_BYTES
# without measuring it (longer ones are measured one by one).
SHORT_PATH_CHARS = MAX_PATH_BYTES // 4
_ENCODINGS = ("identity", "zstd")
_COMMIT_COLUMNS = frozenset(
    {"commit_id", "snapshot_id", "message", "author", "committed_at", "parent_commit_id", "parent2_commit_id"}
)


def path_problem(path: object) -> str | None:
    """Why `path` cannot be a manifest path, or None when it can."""
    if not isinstance(path, str) or not path:
        return "path must be a non-empty string"
    if path.startswith("/"):
        return f"path {path[:80]!r} is absolute"
    if ".." in path:
        return f"path {path[:80]!r} contains '..'"
    if "\0" in path or "\\" in path:
        return f"path {path[:80]!r} contains a NUL or a backslash"
    if len(path.encode()) > MAX_PATH_BYTES:
        return f"path {path[:80]!r}… is longer than {MAX_PATH_BYTES} bytes"
    return None


def _require_map(where: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BundleError(where, f"must be a map, not {type(raw).__name__}")
    return raw


def _hex_id(where: str, raw: dict[str, Any], key: str, optional: bool = False) -> str | None:
    value = raw.get(key)
    if value is None and optional:
        return None
    if not is_hex_id(value):
        raise BundleError(where, f"{key} must be 64 lowercase hex characters, got {str(value)[:80]!r}")
    return value


def _text(where: str, raw: dict[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise BundleError(where, f"{key} must be a string")
    if "\0" in value:
        raise BundleError(where, f"{key} contains a NUL character")
    return value


def _paths_to_ids(where: str, raw: Any, what: str, max_entries: int) -> Manifest:
    if not isinstance(raw, dict):
        raise BundleError(where, f"{what} must be a map of path to object id")
    if len(raw) > max_entries:
        raise BundleError(where, f"{what} has {len(raw)} entries, more than the limit of {max_entries}")
    if _all_good_paths(raw) and _all_hex_ids(raw.values()):
        return raw
    # Something is wrong: find the first entry at fault, to name it.
    for path, object_id in raw.items():
        if problem := path_problem(path):
            raise BundleError(where, problem)
        if not is_hex_id(object_id):
            raise BundleError(where, f"{what}[{path[:80]!r}] must be a 64 lowercase hex object id")
    return raw


# Whole manifests are checked at once, by string operations over all their paths or ids joined,
# which run in C: per entry, the checks were a third of decoding the reference push. Each is
# sound (True only when every entry passes `path_problem` / `is_hex_id`); on False the entries
# are checked one by one to name the first at fault.
_HEX_DIGITS = b"0123456789abcdef"


def _all_hex_ids(values: Collection[Any]) -> bool:
    try:
        joined = "".join(values)
    except TypeError:  # a value that is not a string
        return False
    # Lowercase hex is what leaves nothing once its digits are deleted: six times a regex's speed.
    return (
        (not values or set(map(len, values)) == {64})
        and joined.isascii()
        and not joined.encode().translate(None, _HEX_DIGITS)
    )


def _all_good_paths(paths: Collection[Any]) -> bool:
    if not paths:
        return True
    try:
        joined = "\0".join(paths)  # NUL cannot be inside a good path, so it marks the boundaries
    except TypeError:
        return False
    return (
        "" not in paths
        and joined.count("\0") == len(paths) - 1
        and "\\" not in joined
        and ".." not in joined
        and not joined.startswith("/")
        and "\0/" not in joined
        and max(map(len, paths)) <= SHORT_PATH_CHARS
    )


def check_object(where: str, raw: Any) -> tuple[str, bytes, Encoding]:
    if type(raw) is dict:  # the common case in one pass; otherwise each rule in turn, to name it
        object_id, content, encoding = raw.get("object_id"), raw.get("content"), raw.get("encoding") or "identity"
        if type(content) is bytes and encoding in _ENCODINGS and is_hex_id(object_id):
            return object_id, content, encoding
    raw = _require_map(where, raw)
    object_id = _hex_id(where, raw, "object_id")
    content = raw.get("content")
    if not isinstance(content, bytes):
        raise BundleError(where, "content must be msgpack bin")
    encoding = raw.get("encoding") or "identity"
    if encoding not in ("identity", "zstd"):
        raise BundleError(where, f"unknown encoding {str(encoding)[:40]!r}")
    return object_id, content, encoding


def check_snapshot(where: str, raw: Any, max_entries: int) -> SnapshotRecord:
    raw = _require_map(where, raw)
    snapshot_id = _hex_id(where, raw, "snapshot_id")
    where = f"{where} {snapshot_id}"
    created_at = raw.get("created_at")
    if created_at is not None:
        if not isinstance(created_at, str):
            raise BundleError(where, "created_at must be a string")
        created_at = _timestamp(where, "created_at", created_at)
    if "manifest" in raw:
        manifest = _paths_to_ids(where, raw["manifest"], "manifest", max_entries)
        return SnapshotRecord(snapshot_id, created_at, manifest=manifest)
    base = _hex_id(where, raw, "base_snapshot_id")
    changes = _paths_to_ids(where, raw.get("changes", {}), "changes", max_entries)
    removed = raw.get("removed", [])
    if not isinstance(removed, list) or not all(isinstance(p, str) for p in removed):
        raise BundleError(where, "removed must be an array of paths")
    return SnapshotRecord(snapshot_id, created_at, base_snapshot_id=base, changes=changes, removed=tuple(removed))


def parse_timestamp(text: str) -> datetime | None:
    """The moment an ISO-8601 text names, in UTC when it names no offset; None if it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _timestamp(where: str, key: str, text: str) -> datetime:
    moment = parse_timestamp(text)
    if moment is None:
        raise BundleError(where, f"{key} {text[:40]!r} is not ISO-8601")
    return moment


def check_commit(where: str, raw: Any) -> CommitRecord:
    raw = _require_map(where, raw)
    commit_id = _hex_id(where, raw, "commit_id")
    where = f"{where} {commit_id}"
    snapshot_id = _hex_id(where, raw, "snapshot_id")
    first = _hex_id(where, raw, "parent_commit_id", optional=True)
    second = _hex_id(where, raw, "parent2_commit_id", optional=True)
    if second and not first:
        raise BundleError(where, "parent2_commit_id without parent_commit_id")
    committed_at = _text(where, raw, "committed_at")
    meta = {key: value for key, value in raw.items() if key not in _COMMIT_COLUMNS}
    _check_json(where, meta)
    return CommitRecord(
        commit_id=commit_id,
        snapshot_id=snapshot_id,
        message=_text(where, raw, "message"),
        author=_text(where, raw, "author", default=""),
        committed_at=committed_at,
        committed_at_time=_timestamp(where, "committed_at", committed_at),
        parent_ids=tuple(p for p in (first, second) if p),
        meta=meta,
    )


# The C encoder refuses what JSON cannot hold (bytes, non-finite numbers, keys that are not
# text: msgpack map keys are text or bytes) and writes a NUL as \u0000, so one call clears most
# commits' fields (per field, the walk below was a tenth of decoding the reference push).
_JSON = json.JSONEncoder(allow_nan=False, check_circular=False)


def _check_json(where: str, value: Any) -> None:
    """Commit fields are kept verbatim in jsonb: refuse what jsonb cannot hold."""
    try:
        if "\\u0000" not in _JSON.encode(value):
            return
    except (TypeError, ValueError, RecursionError):
        pass  # the walk names what is wrong
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if not all(isinstance(k, str) and "\0" not in k for k in item):
                raise BundleError(where, "a commit field has a key that is not NUL-free text")
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\0" in item:
                raise BundleError(where, "a commit field contains a NUL character")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise BundleError(where, "a commit field holds a non-finite number")
        elif not (item is None or isinstance(item, bool | int)):
            raise BundleError(where, f"a commit field holds {type(item).__name__}, which JSON cannot")
