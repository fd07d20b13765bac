"""A hostile corpus (issue #7): bundles breaking each rule of SPEC §3, and valid ones at its edges.

Each refused bundle is, where the rule allows, a valid push following BASE with one bad record
added, so that a partial write would show in the catalog. Cases are built on demand (the bomb
alone encodes 4 GiB of zeros), from a registry keyed by name for test ids.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from hub_assets.bundle import Limits
from hub_assets_tests.bundle.builders import (
    History,
    Raw,
    build_history,
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
    timestamp,
    zstd_frame,
    zstd_zeros_frame,
)

REPO = "hostile"
INTRUDER = "intruder"  # a repo with nothing indexed: another repo's snapshots are not its own
DEFAULTS = Limits()
BOMB_DECODED_BYTES = 4 << 30
WIDE_ENTRIES = 200_000
DEEP_CHAIN = 10_000
_MARK = "\x01marker\x01"  # replaced on the wire by a str that is not UTF-8
_NOT_UTF8 = b"caf\xe9 \xff\xfe"

BASE: History = build_history(3, 4, seed=1)  # indexed in REPO before each refused bundle


def next_good() -> History:
    """A valid push following BASE: one commit, one delta snapshot, at most two small objects,
    so it also fits the tight limits some cases set."""
    return build_history(1, 4, seed=2, after=BASE)


def extension() -> Raw:
    """Another valid push following BASE, a fresh copy for a case to break."""
    return build_history(2, 4, seed=3, after=BASE).bundle


@dataclass(frozen=True)
class Hostile:
    data: bytes
    record: str  # how the error names the offending record, right after "bundle <partition>: "
    reason: str  # a regular expression the rest of the error matches
    repo: str = REPO
    bundle_key: str | None = None  # None: the sha256 of `data`
    env: Mapping[str, str] = field(default_factory=dict)


CORPUS: dict[str, Callable[[], Hostile]] = {}


def case(name: str) -> Callable[[Callable[[], Hostile]], Callable[[], Hostile]]:
    def register(build: Callable[[], Hostile]) -> Callable[[], Hostile]:
        CORPUS[name] = build
        return build

    return register


def added(kind: str, record: Any, named: str, reason: str, **kwargs: Any) -> Hostile:
    """extension() plus `record` at the end of its `kind` array; the error names it by position
    and, once its id has been read, by id (`named`)."""
    bundle = extension()
    bundle[kind].append(record)
    where = f"{kind}[{len(bundle[kind]) - 1}]"
    return Hostile(pack(bundle), f"{where} {named}".rstrip(), reason, **kwargs)


def added_not_utf8(kind: str, record: Any) -> Hostile:
    """extension() plus `record`, in which the string _MARK goes on the wire as invalid UTF-8."""
    bundle = extension()
    bundle[kind].append(record)
    data = pack_with_raw_str(bundle, _MARK, _NOT_UTF8)
    return Hostile(data, f"{kind}[{len(bundle[kind]) - 1}]", "a string is not valid UTF-8")


def commit(**fields: Any) -> Raw:
    """A valid commit on BASE's last snapshot, then `fields` written over it as sent (the id is
    not recomputed: ids are not verified against commit fields)."""
    record = make_commit(BASE.snapshot_ids[-1], parents=[BASE.head], message="hostile", committed_at=timestamp(50))
    record.update(fields)
    return record


def snapshot(manifest: Mapping[str, str]) -> Raw:
    return full_snapshot(manifest, created_at=timestamp(50))


def some_object_id() -> str:
    return next(iter(BASE.contents))


def ids(count: int, label: str) -> list[str]:
    return [fake_id(f"{label}{n}") for n in range(count)]


# --- the wire -------------------------------------------------------------------------------------


@case("empty-upload")
def _() -> Hostile:
    return Hostile(b"", "bundle", "empty upload, not a msgpack map")


@case("not-msgpack")
def _() -> Hostile:
    return Hostile(b"\xc1\xc1\xc1 garbage", "bundle", "not a msgpack map")


@case("array-not-map")
def _() -> Hostile:
    return Hostile(pack([extension()]), "bundle", "not a msgpack map")


@case("truncated-msgpack")
def _() -> Hostile:
    data = pack(extension())
    return Hostile(data[: len(data) // 2], "bundle", "truncated msgpack")


@case("trailing-bytes")
def _() -> Hostile:
    return Hostile(pack(extension()) + b"\x00", "bundle", "1 bytes of trailing data after the bundle map")


@case("two-maps")
def _() -> Hostile:
    data = pack(extension())
    return Hostile(data + data, "bundle", f"{len(data)} bytes of trailing data")


@case("key-twice")
def _() -> Hostile:
    packer = msgpack.Packer(use_bin_type=True)
    data = packer.pack_map_header(2) + packer.pack("commits") + packer.pack([]) + packer.pack("commits")
    return Hostile(data + packer.pack([]), "bundle", "key 'commits' appears twice")


@case("wrong-bundle-key")
def _() -> Hostile:
    claimed = fake_id("not the hash of these bytes")
    return Hostile(
        pack(extension()),
        "bundle",
        rf"sha256 of the bytes is [0-9a-f]{{64}}, not the bundle key {claimed}",
        bundle_key=claimed,
    )


@case("top-level-key-not-utf8")
def _() -> Hostile:
    bundle = extension()
    bundle[_MARK] = 1
    return Hostile(pack_with_raw_str(bundle, _MARK, _NOT_UTF8), "bundle", "a string is not valid UTF-8")


# --- types and nesting ----------------------------------------------------------------------------


@case("commits-a-map")
def _() -> Hostile:
    bundle = extension()
    bundle["commits"] = {"0": bundle["commits"][0]}
    return Hostile(pack(bundle), "commits", "must be an array")


@case("object-nested-in-a-list")
def _() -> Hostile:
    return added("objects", [make_object(b"nested")], "", "must be a map, not list")


@case("snapshot-a-number")
def _() -> Hostile:
    return added("snapshots", 7, "", "must be a map, not int")


@case("manifest-of-pairs")
def _() -> Hostile:
    record = {"snapshot_id": fake_id("pairs"), "manifest": [["a.txt", some_object_id()]], "created_at": timestamp(50)}
    return added("snapshots", record, fake_id("pairs"), "manifest must be a map of path to object id")


@case("content-is-text")
def _() -> Hostile:
    return added("objects", {"object_id": sha256_hex(b"text"), "content": "text"}, "", "content must be msgpack bin")


@case("message-a-number")
def _() -> Hostile:
    record = commit(message=42)
    return added("commits", record, record["commit_id"], "message must be a string")


@case("removed-is-text")
def _() -> Hostile:
    record = raw_delta(BASE.snapshot_ids[-1], snapshot_id=fake_id("removed"))
    record["removed"] = "files/f00000.txt"
    return added("snapshots", record, fake_id("removed"), "removed must be an array of paths")


@case("branch-heads-a-list")
def _() -> Hostile:
    bundle = extension()
    bundle["branch_heads"] = ["main"]
    return Hostile(pack(bundle), "branch_heads", "must map branch names to commit ids")


@case("metadata-holds-bytes")
def _() -> Hostile:
    record = commit(metadata={"blob": b"\x00\x01"})
    return added("commits", record, record["commit_id"], "a commit field holds bytes, which JSON cannot")


@case("metadata-holds-nan")
def _() -> Hostile:
    record = commit(metadata={"score": float("nan")})
    return added("commits", record, record["commit_id"], "a commit field holds a non-finite number")


@case("committed-at-not-iso")
def _() -> Hostile:
    record = commit(committed_at="last tuesday")
    return added("commits", record, record["commit_id"], "committed_at 'last tuesday' is not ISO-8601")


@case("nul-in-message")
def _() -> Hostile:
    record = commit(message="a\0b")
    return added("commits", record, record["commit_id"], "message contains a NUL character")


@case("second-parent-only")
def _() -> Hostile:
    record = commit(parent_commit_id=None, parent2_commit_id=BASE.head)
    return added("commits", record, record["commit_id"], "parent2_commit_id without parent_commit_id")


@case("delta-without-base")
def _() -> Hostile:
    record = {"snapshot_id": fake_id("baseless"), "changes": {}, "created_at": timestamp(50)}
    return added("snapshots", record, fake_id("baseless"), "base_snapshot_id must be 64 lowercase hex")


# --- ids and strings ------------------------------------------------------------------------------


@case("object-id-upper-case")
def _() -> Hostile:
    record = make_object(b"shouting", object_id=sha256_hex(b"shouting").upper())
    return added("objects", record, "", "object_id must be 64 lowercase hex characters")


@case("commit-id-upper-case")
def _() -> Hostile:
    record = commit()
    record["commit_id"] = record["commit_id"].upper()
    return added("commits", record, "", "commit_id must be 64 lowercase hex characters")


@case("snapshot-id-too-short")
def _() -> Hostile:
    return added(
        "snapshots", snapshot({"a.txt": some_object_id()}) | {"snapshot_id": "a" * 63}, "", "snapshot_id must be"
    )


@case("parent-not-hex")
def _() -> Hostile:
    record = commit(parent_commit_id="HEAD~1")
    return added("commits", record, record["commit_id"], "parent_commit_id must be 64 lowercase hex")


@case("manifest-id-not-hex")
def _() -> Hostile:
    record = snapshot({"a.txt": "xyz"})
    return added("snapshots", record, record["snapshot_id"], re.escape("manifest['a.txt'] must be a 64 lowercase hex"))


@case("message-not-utf8")
def _() -> Hostile:
    return added_not_utf8("commits", commit(message=_MARK))


@case("path-not-utf8")
def _() -> Hostile:
    return added_not_utf8("snapshots", snapshot({_MARK: some_object_id()}))


# --- manifest paths -------------------------------------------------------------------------------


def bad_path(path: str, reason: str) -> Hostile:
    record = snapshot({"ok.txt": some_object_id(), path: some_object_id()})
    return added("snapshots", record, record["snapshot_id"], reason)


@case("path-traversal")
def _() -> Hostile:
    return bad_path("../../etc/passwd", "path '../../etc/passwd' contains '..'")


@case("path-absolute")
def _() -> Hostile:
    return bad_path("/etc/passwd", "path '/etc/passwd' is absolute")


@case("path-with-nul")
def _() -> Hostile:
    return bad_path("a\0b.txt", "contains a NUL or a backslash")


@case("path-with-backslash")
def _() -> Hostile:
    return bad_path("dir\\file.txt", "contains a NUL or a backslash")


@case("path-too-long")
def _() -> Hostile:
    return bad_path("d/" * 2048 + "f.txt", "is longer than 4096 bytes")


@case("path-traversal-in-delta")
def _() -> Hostile:
    record = raw_delta(BASE.snapshot_ids[-1], {"../x": some_object_id()}, snapshot_id=fake_id("climb"))
    return added("snapshots", record, fake_id("climb"), "path '../x' contains '..'")


# --- references -----------------------------------------------------------------------------------

NOWHERE = "is neither in the bundle nor in the catalog"


@case("delta-base-nowhere")
def _() -> Hostile:
    record = raw_delta(fake_id("nowhere"), snapshot_id=fake_id("orphan"))
    bundle = extension()
    bundle["snapshots"].append(record)
    return Hostile(pack(bundle), f"snapshot {fake_id('orphan')}", f"delta base {fake_id('nowhere')} {NOWHERE}")


@case("delta-base-in-another-repo")
def _() -> Hostile:
    bundle = extension()  # valid in REPO, whose catalog holds the base; pushed to INTRUDER
    first = bundle["snapshots"][0]
    return Hostile(
        pack(bundle), f"snapshot {first['snapshot_id']}", f"delta base {BASE.snapshot_ids[-1]} {NOWHERE}", repo=INTRUDER
    )


@case("delta-cycle")
def _() -> Hostile:
    a, b = fake_id("cycle-a"), fake_id("cycle-b")
    bundle = extension()
    bundle["snapshots"] += [raw_delta(b, snapshot_id=a), raw_delta(a, snapshot_id=b)]
    return Hostile(pack(bundle), f"snapshot {a}", "cycle in delta bases")


@case("delta-on-itself")
def _() -> Hostile:
    a = fake_id("ouroboros")
    bundle = extension()
    bundle["snapshots"].append(raw_delta(a, snapshot_id=a))
    return Hostile(pack(bundle), f"snapshot {a}", "cycle in delta bases")


@case("commit-cycle")
def _() -> Hostile:
    a, b = fake_id("commit-a"), fake_id("commit-b")
    bundle = extension()
    bundle["commits"] += [commit(commit_id=a, parent_commit_id=b), commit(commit_id=b, parent_commit_id=a)]
    return Hostile(pack(bundle), f"commit {a}", "cycle in commit parents")


@case("commit-snapshot-nowhere")
def _() -> Hostile:
    record = commit(snapshot_id=fake_id("no snapshot"))
    bundle = extension()
    bundle["commits"].append(record)
    return Hostile(pack(bundle), f"commit {record['commit_id']}", f"snapshot {fake_id('no snapshot')} {NOWHERE}")


@case("commit-snapshot-in-another-repo")
def _() -> Hostile:
    record = commit()
    data = pack(make_bundle(commits=[record]))
    return Hostile(data, f"commit {record['commit_id']}", f"snapshot {BASE.snapshot_ids[-1]} {NOWHERE}", repo=INTRUDER)


# --- the same id twice ------------------------------------------------------------------------------

TWICE = "sent twice with different content"


@case("object-twice-different-bytes")
def _() -> Hostile:
    bundle = extension()
    object_id = bundle["objects"][0]["object_id"]
    bundle["objects"].append(make_object(b"forged bytes", object_id=object_id))
    return Hostile(pack(bundle), f"object {object_id}", TWICE)


@case("snapshot-twice-different-manifest")
def _() -> Hostile:
    bundle = extension()
    snapshot_id = bundle["snapshots"][0]["snapshot_id"]
    bundle["snapshots"].append(snapshot({"other.txt": some_object_id()}) | {"snapshot_id": snapshot_id})
    return Hostile(pack(bundle), f"snapshot {snapshot_id}", TWICE)


@case("commit-twice-different-message")
def _() -> Hostile:
    bundle = extension()
    first = bundle["commits"][0]
    bundle["commits"].append({**first, "message": "rewritten history"})
    return Hostile(pack(bundle), f"commit {first['commit_id']}", TWICE)


# --- object content -----------------------------------------------------------------------------------


@functools.cache
def bomb_frame() -> bytes:
    """One zstd frame of ~130 KB that decodes to 4 GiB of zeros."""
    return zstd_zeros_frame(BOMB_DECODED_BYTES)


def bomb_object() -> Raw:
    return {"object_id": fake_id("bomb"), "content": bomb_frame(), "encoding": "zstd"}


def zstd_object(content: bytes, label: str) -> Raw:
    return {"object_id": fake_id(label), "content": content, "encoding": "zstd"}


@case("zstd-bomb")
def _() -> Hostile:
    reason = f"zstd content decodes to more than {DEFAULTS.max_object_bytes} bytes"
    return added("objects", bomb_object(), fake_id("bomb"), reason)


@case("zstd-garbage")
def _() -> Hostile:
    return added(
        "objects", zstd_object(b"definitely not zstd", "garbage"), fake_id("garbage"), "zstd content does not decode"
    )


@case("zstd-truncated-frame")
def _() -> Hostile:
    frame = zstd_frame(b"hello, world\n" * 100)[:-4]
    return added("objects", zstd_object(frame, "cut"), fake_id("cut"), "not exactly one complete frame")


@case("zstd-two-frames")
def _() -> Hostile:
    frames = zstd_frame(b"one") + zstd_frame(b"two")
    return added("objects", zstd_object(frames, "two"), fake_id("two"), "not exactly one complete frame")


@case("unknown-encoding")
def _() -> Hostile:
    record = {"object_id": sha256_hex(b"x"), "content": b"x", "encoding": "gzip"}
    return added("objects", record, "", "unknown encoding 'gzip'")


# --- limits (the good bundle after each still fits them) -------------------------------------------------


@case("too-many-commits")
def _() -> Hostile:
    return Hostile(pack(extension()), "commits", "2 records, more than the limit of 1", env={"HUB_MAX_COMMITS": "1"})


@case("too-many-snapshots")
def _() -> Hostile:
    return Hostile(
        pack(extension()), "snapshots", "2 records, more than the limit of 1", env={"HUB_MAX_SNAPSHOTS": "1"}
    )


@case("too-many-objects")
def _() -> Hostile:
    bundle = extension()
    bundle["objects"] += [make_object(f"extra {n}".encode()) for n in range(3)]
    reason = f"{len(bundle['objects'])} records, more than the limit of 2"
    return Hostile(pack(bundle), "objects", reason, env={"HUB_MAX_OBJECTS": "2"})


@case("manifest-over-limit")
def _() -> Hostile:
    record = snapshot(dict(zip([f"f{n}.txt" for n in range(7)], ids(7, "wide"), strict=True)))
    reason = "manifest has 7 entries, more than the limit of 6"
    return added("snapshots", record, record["snapshot_id"], reason, env={"HUB_MAX_MANIFEST_ENTRIES": "6"})


@case("resolved-manifest-over-limit")
def _() -> Hostile:
    grown = {**BASE.last_manifest, **{f"new{n}.txt": some_object_id() for n in range(3)}}
    record = delta_snapshot(BASE.snapshot_ids[-1], BASE.last_manifest, grown)
    bundle = extension()
    bundle["snapshots"].append(record)
    reason = "resolved manifest has 7 entries, more than the limit of 6"
    return Hostile(pack(bundle), f"snapshot {record['snapshot_id']}", reason, env={"HUB_MAX_MANIFEST_ENTRIES": "6"})


@case("object-over-limit")
def _() -> Hostile:
    record = make_object(bytes(5000))
    return added(
        "objects", record, record["object_id"], "object is larger than 4096 bytes", env={"HUB_MAX_OBJECT_BYTES": "4096"}
    )


@case("snapshot-of-200k-entries")
def _() -> Hostile:
    wide = wide_snapshot_bundle()
    reason = f"manifest has {WIDE_ENTRIES} entries, more than the limit of {DEFAULTS.max_manifest_entries}"
    return Hostile(wide.data, f"snapshots[0] {wide.snapshot_id}", reason)


# --- valid, at the edges ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wide:
    data: bytes
    snapshot_id: str
    manifest: dict[str, str]
    contents: dict[str, bytes]


@functools.cache
def wide_snapshot_bundle(entries: int = WIDE_ENTRIES, distinct_objects: int = 100) -> Wide:
    """One commit (following BASE) on a full snapshot of `entries` paths over `distinct_objects`
    objects, all of them in the bundle."""
    contents = {sha256_hex(data): data for data in (f"shared file {n}\n".encode() for n in range(distinct_objects))}
    object_ids = list(contents)
    manifest = {f"d{n // 1000:03d}/f{n:06d}.txt": object_ids[n % distinct_objects] for n in range(entries)}
    record = snapshot(manifest)
    head = commit(snapshot_id=record["snapshot_id"])
    bundle = make_bundle(commits=[head], snapshots=[record], objects=[make_object(d) for d in contents.values()])
    return Wide(pack(bundle), record["snapshot_id"], manifest, contents)


@dataclass(frozen=True)
class Chain:
    data: bytes
    manifests: dict[str, dict[str, str]]  # snapshot id -> resolved manifest, root first
    commit_ids: list[str]  # root first
    content: bytes


def deep_delta_chain(depth: int = DEEP_CHAIN) -> Chain:
    """A root commit and `depth - 1` more, each on a delta over the previous snapshot that renames
    the one file: `depth` distinct snapshots over one object. Sent tip first, so each delta comes
    before its base and resolving it walks the whole chain."""
    content = b"the one file of a very long history\n"
    object_id = sha256_hex(content)
    manifests: dict[str, dict[str, str]] = {}
    snapshots: list[Raw] = []
    commits: list[Raw] = []
    previous: tuple[str, dict[str, str]] | None = None
    for step in range(depth):
        manifest = {f"name{step:05d}.txt": object_id}
        at = timestamp(step)
        if previous:
            record = delta_snapshot(*previous, manifest, created_at=at)
        else:
            record = full_snapshot(manifest, created_at=at)
        parents = [commits[-1]["commit_id"]] if commits else []
        commits.append(make_commit(record["snapshot_id"], parents=parents, message=f"rename {step}", committed_at=at))
        snapshots.append(record)
        manifests[record["snapshot_id"]] = manifest
        previous = (record["snapshot_id"], manifest)
    assert len(manifests) == depth and spec_snapshot_id(manifest) == record["snapshot_id"]
    bundle = make_bundle(
        commits=reversed(commits),
        snapshots=reversed(snapshots),
        objects=[make_object(content)],
        branch_heads={"main": commits[-1]["commit_id"]},
    )
    return Chain(pack(bundle), manifests, [c["commit_id"] for c in commits], content)
