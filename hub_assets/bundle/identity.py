"""Identities of SPEC §2: ids are lowercase hex sha256, computed over canonical text."""

import hashlib
import re
from collections.abc import Iterable, Mapping

from .records import ResolvedSnapshot

_HEX_ID = re.compile(r"[0-9a-f]{64}")
_REPO_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def is_hex_id(value: object) -> bool:
    return isinstance(value, str) and _HEX_ID.fullmatch(value) is not None


def is_repo_id(value: object) -> bool:
    # `...` is Dagster's partition-range separator, `..` a path escape: both are refused.
    return isinstance(value, str) and _REPO_ID.fullmatch(value) is not None and ".." not in value


def branch_name_problem(name: object) -> str | None:
    """Why `name` is not a valid branch name, or None when it is."""
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        return "branch name must be 1-255 characters"
    if "\0" in name or ".." in name:
        return "branch name must not contain NUL or '..'"
    if name.startswith(("/", "-")):
        return "branch name must not start with '/' or '-'"
    return None


def snapshot_id(manifest: Mapping[str, str]) -> str:
    text = "\0".join(sorted(f"{path}\0{object_id}" for path, object_id in manifest.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def commit_id(parent_ids: Iterable[str], snapshot: str, message: str, committed_at: str) -> str:
    text = "\0".join(["\0".join(sorted(parent_ids)), snapshot, message, committed_at])
    return hashlib.sha256(text.encode()).hexdigest()


def mismatched_snapshot_ids(snapshots: Iterable[ResolvedSnapshot]) -> list[str]:
    """The ids of the resolved snapshots whose manifest does not hash to their id."""
    return [s.snapshot_id for s in snapshots if snapshot_id(s.manifest) != s.snapshot_id]
