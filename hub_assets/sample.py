"""A synthetic Muse history, for the demo and the benchmarks.

The default is the reference push of the shared perf notes: 1,035 commits, each a delta
snapshot of ~370 files touching 5 of them, ~5,500 objects of ~9 KB, half of them zstd.
Written straight to a file, record by record, so a 10x history never sits in memory twice.
"""

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import msgpack
import zstandard

from .bundle.identity import commit_id, snapshot_id

ProgressFn = Callable[[int, int], None]
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SampleSpec:
    commits: int = 1035
    files: int = 350
    changes_per_commit: int = 5
    add_file_every: int = 28
    object_bytes: int = 10_800
    zstd_every: int = 2
    seed: int = 0

    def scaled(self, factor: float) -> "SampleSpec":
        return SampleSpec(**{**vars(self), "commits": max(1, round(self.commits * factor))})


@dataclass(frozen=True)
class SampleInfo:
    path: Path
    bundle_key: str
    size_bytes: int
    head_commit_id: str
    commits: int
    objects: int
    manifest_entries: int


class _Writer:
    """msgpack records to a file, hashed on the way."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._packer = msgpack.Packer(use_bin_type=True)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def raw(self, data: bytes) -> None:
        self._out.write(data)
        self.sha256.update(data)
        self.size += len(data)

    def value(self, value: Any) -> None:
        self.raw(self._packer.pack(value))

    def array(self, length: int) -> None:
        self.raw(self._packer.pack_array_header(length))


def _content(rng: random.Random, size: int) -> bytes:
    # Half random, half repetitive: compressible like real project files, not trivially so.
    noise = rng.randbytes(size // 2)
    return noise + (noise[:64] * (size // 128 + 1))[: size - len(noise)]


def write_sample(path: Path, spec: SampleSpec = SampleSpec(), progress: ProgressFn | None = None) -> SampleInfo:
    rng = random.Random(spec.seed)
    compressor = zstandard.ZstdCompressor(level=3)
    manifest: dict[str, str] = {}
    objects: list[dict[str, Any]] = []
    snapshots: list[dict[str, Any]] = []
    commits: list[dict[str, Any]] = []
    entries = 0

    def new_object(path_name: str) -> str:
        data = _content(rng, spec.object_bytes + rng.randrange(-500, 500))
        object_id = hashlib.sha256(data).hexdigest()
        zstd = len(objects) % spec.zstd_every == 0
        record = {"object_id": object_id, "content": compressor.compress(data) if zstd else data, "path": path_name}
        if zstd:
            record["encoding"] = "zstd"
        objects.append(record)
        return object_id

    parent: str | None = None
    for index in range(spec.commits):
        if index == 0:
            changes = {f"src/file{n:05d}.txt": "" for n in range(spec.files)}
        else:
            changes = {p: "" for p in rng.sample(sorted(manifest), min(spec.changes_per_commit, len(manifest)))}
            if index % spec.add_file_every == 0:
                changes[f"src/file{len(manifest):05d}.txt"] = ""
        for path_name in changes:
            changes[path_name] = new_object(path_name)
        base = snapshots[-1]["snapshot_id"] if snapshots else None
        manifest.update(changes)
        entries += len(manifest)
        snap_id = snapshot_id(manifest)
        if base is None:
            snapshots.append({"snapshot_id": snap_id, "manifest": dict(manifest), "created_at": _time(index)})
        else:
            delta = {"snapshot_id": snap_id, "base_snapshot_id": base, "changes": changes, "removed": []}
            snapshots.append({**delta, "created_at": _time(index)})
        message = f"commit {index}: {len(changes)} files"
        parents = [parent] if parent else []
        parent = commit_id(parents, snap_id, message, _time(index))
        commits.append(_commit(parent, parents, snap_id, message, index))
        if progress:
            progress(index + 1, spec.commits)

    with path.open("wb") as out:
        writer = _Writer(out)
        writer.raw(msgpack.Packer().pack_map_header(4))
        for key, records in (("commits", commits), ("snapshots", snapshots), ("objects", objects)):
            writer.value(key)
            writer.array(len(records))
            for record in records:
                writer.value(record)
        writer.value("branch_heads")
        writer.value({"main": parent})
    return SampleInfo(path, writer.sha256.hexdigest(), writer.size, parent or "", len(commits), len(objects), entries)


def _time(index: int) -> str:
    return (_EPOCH + timedelta(seconds=61 * index)).isoformat()


def _commit(commit: str, parents: list[str], snap: str, message: str, index: int) -> dict[str, Any]:
    return {
        "commit_id": commit,
        "repo_id": "sample",
        "branch": "main",
        "snapshot_id": snap,
        "message": message,
        "committed_at": _time(index),
        "parent_commit_id": parents[0] if parents else None,
        "parent2_commit_id": None,
        "author": "sample <sample@example.org>",
        "metadata": {"index": index},
        "sem_ver_bump": "none",
        "format_version": 5,
    }
