"""Builders of valid (and deliberately broken) bundles for tests.

Pure and deterministic: no I/O, no clock. Ids are computed here with the SPEC §2 formulas
written out independently of `hub_assets.bundle.identity`, so tests built on these helpers
also check the package's own identity code.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgpack
import zstandard

from hub_assets.bundle import Bundle, CatalogView, EmptyCatalog, Limits, Manifest, decode_bundle

Raw = dict[str, Any]
Encoding = Literal["identity", "zstd"]

BUNDLE_NAME = "test-repo/test.bundle"
REPO_ID = "b0ad9068-9b14-4901-a2ca-7704fc777927"
MIB = 1024 * 1024
_T0 = datetime(2026, 1, 1, tzinfo=UTC)


# --- identities (SPEC §2) -------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spec_snapshot_id(manifest: Mapping[str, str]) -> str:
    return sha256_hex("\0".join(sorted(f"{path}\0{oid}" for path, oid in manifest.items())).encode())


def spec_commit_id(parent_ids: Iterable[str], snapshot_id: str, message: str, committed_at: str) -> str:
    return sha256_hex("\0".join(["\0".join(sorted(parent_ids)), snapshot_id, message, committed_at]).encode())


def fake_id(label: object) -> str:
    """A well-formed id that is the hash of nothing in particular (for ids that need not verify)."""
    return sha256_hex(f"fake:{label}".encode())


def timestamp(step: int) -> str:
    """A Muse-style ISO-8601 `committed_at`/`created_at`, `step` seconds after a fixed epoch."""
    return (_T0 + timedelta(seconds=step, microseconds=step % 997)).isoformat()


# --- records ----------------------------------------------------------------------------------


def zstd_frame(data: bytes, level: int = 3) -> bytes:
    """Exactly one complete zstd frame holding `data`."""
    return zstandard.ZstdCompressor(level=level).compress(data)


def zstd_zeros_frame(decoded_size: int, *, declare_size: bool = True, chunk: int = MIB) -> bytes:
    """One zstd frame decoding to `decoded_size` zero bytes, built without ever holding them:
    a compression bomb (200 MB of zeros compress to a few KB). With `declare_size` False the
    frame header does not state the decoded size."""
    compressor = zstandard.ZstdCompressor(level=1, write_content_size=declare_size).compressobj(
        size=decoded_size if declare_size else -1
    )
    block = bytes(chunk)
    parts: list[bytes] = []
    remaining = decoded_size
    while remaining > 0:
        parts.append(compressor.compress(block[: min(chunk, remaining)]))
        remaining -= chunk
    parts.append(compressor.flush())
    return b"".join(parts)


def make_object(
    content: bytes, *, encoding: Encoding = "identity", path: str | None = None, object_id: str | None = None
) -> Raw:
    """An object record. Identity objects omit `encoding`, as Muse writes them."""
    record: Raw = {"object_id": object_id or sha256_hex(content)}
    if encoding == "zstd":
        record["content"] = zstd_frame(content)
        record["encoding"] = "zstd"
    else:
        record["content"] = content
    if path is not None:
        record["path"] = path
    return record


def full_snapshot(manifest: Mapping[str, str], *, created_at: str | None = None, snapshot_id: str | None = None) -> Raw:
    return {
        "snapshot_id": snapshot_id or spec_snapshot_id(manifest),
        "manifest": dict(manifest),
        "created_at": created_at or timestamp(0),
    }


def manifest_delta(base: Mapping[str, str], target: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(`changes`, `removed`) turning `base` into `target`."""
    changes = {path: oid for path, oid in target.items() if base.get(path) != oid}
    removed = sorted(path for path in base if path not in target)
    return changes, removed


def delta_snapshot(
    base_snapshot_id: str,
    base_manifest: Mapping[str, str],
    manifest: Mapping[str, str],
    *,
    created_at: str | None = None,
    snapshot_id: str | None = None,
) -> Raw:
    """A delta snapshot whose resolved manifest is `manifest`, over a base holding `base_manifest`."""
    changes, removed = manifest_delta(base_manifest, manifest)
    return raw_delta(
        base_snapshot_id,
        changes,
        removed,
        snapshot_id=snapshot_id or spec_snapshot_id(manifest),
        created_at=created_at,
    )


def raw_delta(
    base_snapshot_id: str,
    changes: Mapping[str, str] | None = None,
    removed: Sequence[str] = (),
    *,
    snapshot_id: str,
    created_at: str | None = None,
) -> Raw:
    """A delta snapshot with explicit fields (the id is not computed: the caller knows it)."""
    return {
        "snapshot_id": snapshot_id,
        "base_snapshot_id": base_snapshot_id,
        "changes": dict(changes or {}),
        "removed": list(removed),
        "created_at": created_at or timestamp(0),
    }


def make_commit(
    snapshot_id: str,
    *,
    parents: Sequence[str] = (),
    message: str = "commit",
    committed_at: str | None = None,
    author: str = "",
    branch: str = "main",
    repo_id: str = REPO_ID,
    commit_id: str | None = None,
    **extra: Any,
) -> Raw:
    """A Muse `CommitDict` with its SPEC §2 id and Muse's extra fields; `extra` overrides any field."""
    if len(parents) > 2:
        raise ValueError("a Muse commit has at most two parents")
    committed_at = committed_at or timestamp(0)
    record: Raw = {
        "commit_id": commit_id or spec_commit_id(parents, snapshot_id, message, committed_at),
        "repo_id": repo_id,
        "branch": branch,
        "snapshot_id": snapshot_id,
        "message": message,
        "committed_at": committed_at,
        "parent_commit_id": parents[0] if parents else None,
        "parent2_commit_id": parents[1] if len(parents) > 1 else None,
        "author": author,
        "metadata": {},
        "structured_delta": None,
        "sem_ver_bump": "none",
        "breaking_changes": [],
        "agent_id": "",
        "model_id": "",
        "toolchain_id": "",
        "prompt_hash": "",
        "signature": "",
        "signer_key_id": "",
        "format_version": 5,
        "reviewed_by": [],
        "test_runs": 0,
    }
    record.update(extra)
    return record


def make_bundle(
    *,
    commits: Iterable[Raw] = (),
    snapshots: Iterable[Raw] = (),
    objects: Iterable[Raw] = (),
    branch_heads: Mapping[str, str] | None = None,
    **extra: Any,
) -> Raw:
    bundle: Raw = {"commits": list(commits), "snapshots": list(snapshots), "objects": list(objects)}
    if branch_heads is not None:
        bundle["branch_heads"] = dict(branch_heads)
    bundle.update(extra)
    return bundle


# --- wire -------------------------------------------------------------------------------------


def pack(value: Any) -> bytes:
    """msgpack as Muse writes it: strings as str, bytes as bin."""
    data = msgpack.packb(value, use_bin_type=True)
    assert isinstance(data, bytes)
    return data


def raw_str(value: bytes) -> bytes:
    """A msgpack *str* whose payload is `value` verbatim (may be invalid UTF-8)."""
    data = msgpack.packb(value, use_bin_type=False)
    assert isinstance(data, bytes)
    return data


def pack_with_raw_str(bundle: Mapping[str, Any], marker: str, value: bytes) -> bytes:
    """`bundle` packed, with the one msgpack string `marker` replaced by a str holding `value`."""
    data = pack(bundle)
    needle = pack(marker)
    if data.count(needle) != 1:
        raise ValueError(f"marker {marker!r} must occur exactly once in the packed bundle")
    return data.replace(needle, raw_str(value))


class _KeyOfData:
    """Sentinel: use sha256 of the bytes as the bundle key."""


KEY_OF_DATA = _KeyOfData()


def decode(
    data: bytes,
    *,
    bundle_key: str | _KeyOfData | None = KEY_OF_DATA,
    name: str = BUNDLE_NAME,
    limits: Limits | None = None,
    catalog: CatalogView | None = None,
    in_memory: bool = False,
) -> Bundle:
    """`decode_bundle` over `data` (as a stream, or `in_memory` as bytes), by default with its
    true key, default limits and an empty catalog."""
    key = sha256_hex(data) if isinstance(bundle_key, _KeyOfData) else bundle_key
    return decode_bundle(
        data if in_memory else io.BytesIO(data),
        bundle_key=key,
        name=name,
        limits=limits or Limits(),
        catalog=catalog if catalog is not None else EmptyCatalog(),
    )


def decode_dict(bundle: Mapping[str, Any], **kwargs: Any) -> Bundle:
    """Pack `bundle` and decode it (keyword arguments as for `decode`)."""
    return decode(pack(bundle), **kwargs)


@dataclass
class StaticCatalog:
    """A `CatalogView` over fixed data: what the repo's catalog already holds. Records its calls."""

    manifests: dict[str, Manifest] = field(default_factory=dict)
    snapshots: set[str] = field(default_factory=set)
    manifest_calls: list[set[str]] = field(default_factory=list)

    def snapshot_manifests(self, snapshot_ids: set[str]) -> dict[str, Manifest]:
        self.manifest_calls.append(set(snapshot_ids))
        return {sid: dict(self.manifests[sid]) for sid in snapshot_ids if sid in self.manifests}

    def existing_snapshots(self, snapshot_ids: set[str]) -> set[str]:
        return {sid for sid in snapshot_ids if sid in self.snapshots or sid in self.manifests}


# --- histories --------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """A linear history as a bundle, plus the ground truth a test compares against."""

    bundle: Raw
    branch: str
    commit_ids: list[str]  # oldest first
    snapshot_ids: list[str]  # snapshot of each commit, oldest first
    manifests: dict[str, Manifest]  # snapshot id -> full manifest
    contents: dict[str, bytes]  # object id -> raw (decoded) bytes

    @property
    def head(self) -> str:
        return self.commit_ids[-1]

    @property
    def last_manifest(self) -> Manifest:
        return self.manifests[self.snapshot_ids[-1]]

    def wire(self) -> bytes:
        return pack(self.bundle)

    def catalog(self) -> StaticCatalog:
        """A catalog view holding this history's snapshots, as after indexing it."""
        return StaticCatalog(manifests={sid: dict(m) for sid, m in self.manifests.items()})


def build_history(
    n_commits: int,
    files_per_snapshot: int,
    *,
    delta: bool = True,
    zstd_every: int = 2,
    seed: int = 0,
    branch: str = "main",
    repo_id: str = REPO_ID,
    after: History | None = None,
) -> History:
    """A linear history of `n_commits` commits on `branch`.

    The first snapshot holds `files_per_snapshot` files; each later commit changes a few files
    and sometimes replaces one, so every snapshot differs. With `delta`, snapshots after the
    first are deltas over the previous one. Every `zstd_every`-th new object is zstd-encoded
    (0: none). With `after`, the history continues that one: its first commit's parent and, with
    `delta`, its first snapshot's base are `after`'s head, outside this bundle (a later push).
    Lists are in Muse's order: commits newest first, objects by id.
    """
    if n_commits < 1 or files_per_snapshot < 1:
        raise ValueError("a history needs at least one commit and one file")
    rng = random.Random(seed)
    offset = len(after.commit_ids) if after else 0
    contents: dict[str, bytes] = {}
    encodings: dict[str, Encoding] = {}

    def new_content(path: str, step: int) -> str:
        data = f"seed {seed} step {step} path {path}\n".encode() * rng.randint(1, 40)
        object_id = sha256_hex(data)
        if object_id not in contents:
            contents[object_id] = data
            zstd = zstd_every > 0 and len(contents) % zstd_every == 0
            encodings[object_id] = "zstd" if zstd else "identity"
        return object_id

    manifest: dict[str, str] = dict(after.last_manifest) if after else {}
    next_file = len(manifest)
    commits: list[Raw] = []
    snapshots: list[Raw] = []
    manifests: dict[str, Manifest] = {}
    commit_ids: list[str] = []
    snapshot_ids: list[str] = []
    previous: tuple[str, Manifest] | None = (after.snapshot_ids[-1], after.last_manifest) if after else None
    parent = after.head if after else None
    for index in range(n_commits):
        step = offset + index
        if not manifest:
            for _ in range(files_per_snapshot):
                path = f"files/f{next_file:05d}.txt"
                next_file += 1
                manifest[path] = new_content(path, step)
        else:
            for path in rng.sample(sorted(manifest), k=rng.randint(1, max(1, len(manifest) // 4))):
                manifest[path] = new_content(path, step)
            if len(manifest) > 1 and rng.random() < 0.3:
                del manifest[rng.choice(sorted(manifest))]
                path = f"files/f{next_file:05d}.txt"
                next_file += 1
                manifest[path] = new_content(path, step)
        current = dict(manifest)
        sid = spec_snapshot_id(current)
        if delta and previous is not None:
            snapshots.append(delta_snapshot(previous[0], previous[1], current, created_at=timestamp(step)))
        else:
            snapshots.append(full_snapshot(current, created_at=timestamp(step)))
        commit = make_commit(
            sid,
            parents=[parent] if parent else [],
            message=f"commit {step + 1}",
            committed_at=timestamp(step),
            branch=branch,
            repo_id=repo_id,
        )
        commits.append(commit)
        manifests[sid] = current
        snapshot_ids.append(sid)
        commit_ids.append(commit["commit_id"])
        previous = (sid, current)
        parent = commit["commit_id"]
    objects = [make_object(contents[oid], encoding=encodings[oid]) for oid in sorted(contents)]
    bundle = make_bundle(
        commits=reversed(commits), snapshots=snapshots, objects=objects, branch_heads={branch: commit_ids[-1]}
    )
    return History(bundle, branch, commit_ids, snapshot_ids, manifests, contents)


def make_history(
    n_commits: int, files_per_snapshot: int, *, delta: bool = True, zstd_every: int = 2, seed: int = 0
) -> Raw:
    """The bundle map of `build_history` (see there)."""
    return build_history(n_commits, files_per_snapshot, delta=delta, zstd_every=zstd_every, seed=seed).bundle
