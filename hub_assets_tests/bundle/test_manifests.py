"""Delta resolution: chains of any depth in any order, and a property test against ground truth."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub_assets.bundle import Manifest

from .builders import (
    Raw,
    StaticCatalog,
    decode_dict,
    delta_snapshot,
    fake_id,
    full_snapshot,
    make_bundle,
    raw_delta,
    spec_snapshot_id,
)


def chain(depth: int, width: int = 20) -> tuple[list[Raw], dict[str, Manifest]]:
    """A full snapshot followed by `depth - 1` deltas, each changing one of `width` paths."""
    manifest = {f"p{i:02d}": fake_id(("start", i)) for i in range(width)}
    snapshots = [full_snapshot(manifest)]
    truth = {snapshots[0]["snapshot_id"]: dict(manifest)}
    for step in range(1, depth):
        changed = {**manifest, f"p{step % width:02d}": fake_id(step)}
        snapshots.append(delta_snapshot(snapshots[-1]["snapshot_id"], manifest, changed))
        manifest = changed
        truth[snapshots[-1]["snapshot_id"]] = dict(manifest)
    return snapshots, truth


def resolved(snapshots: list[Raw], **kwargs: object) -> dict[str, Manifest]:
    return {s.snapshot_id: s.manifest for s in decode_dict(make_bundle(snapshots=snapshots), **kwargs).snapshots}


@pytest.mark.parametrize(
    ("depth", "seconds"),
    # 40,000 guards against quadratic resolution (it took ~12 s when each lookup copied a dict).
    [(10_000, 3.0), (40_000, 6.0)],
)
def test_deep_shuffled_chain_resolves_quickly(depth: int, seconds: float) -> None:
    snapshots, truth = chain(depth)
    random.Random(1).shuffle(snapshots)
    started = time.perf_counter()
    assert resolved(snapshots) == truth
    assert time.perf_counter() - started < seconds


def test_deep_chain_newest_first() -> None:
    snapshots, truth = chain(2_000)
    assert resolved(snapshots[::-1]) == truth


def test_chain_starting_in_the_catalog() -> None:
    snapshots, truth = chain(50)
    root = snapshots[0]
    catalog = StaticCatalog(manifests={root["snapshot_id"]: root["manifest"]})
    rest = snapshots[1:]
    random.Random(2).shuffle(rest)
    del truth[root["snapshot_id"]]
    assert resolved(rest, catalog=catalog) == truth
    assert catalog.manifest_calls == [{root["snapshot_id"]}]


def test_removed_then_changed_path_keeps_the_change() -> None:
    base = {"a": fake_id(1), "b": fake_id(2)}
    full = full_snapshot(base)
    target = {"a": fake_id(3)}
    delta = raw_delta(
        full["snapshot_id"], {"a": fake_id(3)}, ["a", "b", "never-there"], snapshot_id=spec_snapshot_id(target)
    )
    assert resolved([delta, full])[delta["snapshot_id"]] == target


def test_empty_delta_and_empty_manifest() -> None:
    empty = full_snapshot({})
    same = raw_delta(empty["snapshot_id"], snapshot_id=fake_id("same"))
    assert resolved([same, empty]) == {empty["snapshot_id"]: {}, fake_id("same"): {}}


# --- property: random histories --------------------------------------------------------------

PATHS = ["a.txt", "b.mid", "dir/c.txt", "dir/sub/d.bin", "e"]
Operation = tuple[str, str, int]  # (add | change | remove, path, content version)

operations = st.tuples(st.sampled_from(["add", "change", "remove"]), st.sampled_from(PATHS), st.integers(0, 3))
steps = st.lists(st.lists(operations, max_size=4), min_size=1, max_size=12)


def apply(manifest: Manifest, ops: list[Operation]) -> Manifest:
    result = dict(manifest)
    for op, path, version in ops:
        if op == "remove":
            result.pop(path, None)
        elif op == "add" or path in result:
            result[path] = fake_id((path, version))
    return result


def ground_truth(history: list[list[Operation]]) -> list[Manifest]:
    manifests: list[Manifest] = []
    current: Manifest = {}
    for ops in history:
        current = apply(current, ops)
        manifests.append(current)
    return manifests


@dataclass(frozen=True)
class Encoding:
    """How step i is sent: full, or a delta over an earlier step, with some redundant removals."""

    base: int | None
    churn: tuple[str, ...]


def encode(manifests: list[Manifest], encodings: list[Encoding]) -> list[Raw]:
    """One snapshot per distinct manifest (a repeated manifest repeats its snapshot id)."""
    ids = [spec_snapshot_id(m) for m in manifests]
    snapshots: dict[str, Raw] = {}
    for step, (manifest, how) in enumerate(zip(manifests, encodings, strict=True)):
        if ids[step] in snapshots:
            continue
        if how.base is None:
            snapshots[ids[step]] = full_snapshot(manifest)
            continue
        base = manifests[how.base]
        record = delta_snapshot(ids[how.base], base, manifest)
        # Removing a path and re-adding it, or removing an absent one, must not change the result.
        record["removed"] = sorted(set(record["removed"]) | set(how.churn))
        record["changes"].update({p: manifest[p] for p in how.churn if p in manifest})
        snapshots[ids[step]] = record
    return list(snapshots.values())


@st.composite
def encoded_histories(draw: st.DrawFn) -> tuple[list[Manifest], list[Raw]]:
    manifests = ground_truth(draw(steps))
    encodings = [
        Encoding(
            base=None if step == 0 or (draw(st.booleans()) and draw(st.booleans())) else draw(st.integers(0, step - 1)),
            churn=tuple(draw(st.lists(st.sampled_from(PATHS), max_size=2, unique=True))),
        )
        for step in range(len(manifests))
    ]
    snapshots = encode(manifests, encodings)
    return manifests, draw(st.permutations(snapshots))


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(encoded_histories())
def test_random_histories_resolve_to_ground_truth(case: tuple[list[Manifest], list[Raw]]) -> None:
    manifests, snapshots = case
    result = resolved(snapshots)
    assert result == {spec_snapshot_id(m): m for m in manifests}
    for snapshot_id, manifest in result.items():
        assert spec_snapshot_id(manifest) == snapshot_id
