"""A run SIGKILLed at any point, then run again, ends as one uninterrupted run (SPEC §7), and
between the two a reader sees nothing half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import pytest

from hub_assets.index.run import apply_pool_limits, release_dead_runs
from hub_assets.store import object_key

from .conftest import CHUNK_ROWS, HISTORY, Rig, RigFactory, inline_ids
from .state import State, progress, state_of, torn_objects, visible_problems

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = "hub_assets_tests.faults.crash_driver"

OBJECTS, INLINE, SNAPSHOTS, COMMITS = len(HISTORY.contents), len(inline_ids(HISTORY)), 12, 12
Progress = dict[str, int | str | range | frozenset[int]]
# What the catalog (committed) and the store hold at each stage of the run. Steps run bundle,
# then object_blobs and snapshots at once (the snapshot rows are one transaction: none or all),
# object_rows and object_refs after object_blobs, commits last; a killed transaction leaves nothing.
PUSHED: Progress = {
    "stored": 0,
    "promoted": 0,
    "cached": INLINE,
    "refs": INLINE,
    "snapshots": 0,
    "commits": 0,
    "status": "pushed",
    "temp_files": 0,
}
SNAPSHOTS_MAYBE = {"snapshots": frozenset({0, SNAPSHOTS})}
# Killed during snapshots: object puts may be under way (two at once on file://).
PUTS_MAYBE = {"stored": range(OBJECTS + 1), "temp_files": range(3)}
BLOBS_PUT = PUSHED | {"stored": OBJECTS} | SNAPSHOTS_MAYBE
ROWS_IN = BLOBS_PUT | {"promoted": OBJECTS, "cached": 0}
REFS_IN = ROWS_IN | {"refs": OBJECTS}
COMMITS_IN = REFS_IN | {"commits": COMMITS, "snapshots": SNAPSHOTS}


class KillPoint(NamedTuple):
    where: str  # crash_driver's `<where>:<arg>`
    left: Progress  # what the killed run leaves


KILL_POINTS = {
    "bundle-start": KillPoint("asset:bundle", PUSHED),
    "blobs-start": KillPoint("asset:object_blobs", PUSHED | SNAPSHOTS_MAYBE),
    # Two file puts run at once; S3 puts in flight may land after the 100th returned.
    "after-100-puts": KillPoint(
        "puts:100", PUSHED | SNAPSHOTS_MAYBE | {"stored": range(100, OBJECTS), "temp_files": range(2)}
    ),
    "put-before-link": KillPoint(
        "link:40", PUSHED | SNAPSHOTS_MAYBE | {"stored": range(39, 41), "temp_files": range(1, 3)}
    ),
    "snapshots-start": KillPoint("asset:snapshots", PUSHED | PUTS_MAYBE),
    "snapshots-mid-chunks": KillPoint(f"copy:musehub_snapshots@{2 * CHUNK_ROWS}", PUSHED | PUTS_MAYBE),
    "rows-start": KillPoint("asset:object_rows", BLOBS_PUT),
    "promotion-mid-chunks": KillPoint(f"copy:musehub_objects@{10 * CHUNK_ROWS}", BLOBS_PUT),
    "promotion-before-commit": KillPoint("copy:musehub_objects@end", BLOBS_PUT),
    "refs-start": KillPoint("asset:object_refs", ROWS_IN),
    "refs-before-commit": KillPoint("copy:musehub_object_refs@end", ROWS_IN),
    "commits-start": KillPoint("asset:commits", REFS_IN | {"snapshots": SNAPSHOTS}),
    "commits-mid-chunks": KillPoint(f"copy:musehub_commits@{CHUNK_ROWS}", REFS_IN | {"snapshots": SNAPSHOTS}),
    "commits-before-commit": KillPoint("copy:musehub_commits@end", REFS_IN | {"snapshots": SNAPSHOTS}),
    "finish-before": KillPoint("finish:before", COMMITS_IN),
    "finish-after": KillPoint("finish:after", COMMITS_IN | {"status": "indexed"}),
}
S3_POINTS = ["after-100-puts", "promotion-before-commit", "commits-mid-chunks"]
# The default run covers one point per kind of write; `-m slow` runs every point.
DEFAULT_POINTS = {"after-100-puts", "put-before-link", "snapshots-mid-chunks", "promotion-before-commit"}
DEFAULT_POINTS |= {"commits-before-commit"}
CASES = [
    pytest.param("file", point, id=f"file-{point}", marks=() if point in DEFAULT_POINTS else pytest.mark.slow)
    for point in KILL_POINTS
] + [pytest.param("s3", point, id=f"s3-{point}", marks=pytest.mark.slow) for point in S3_POINTS]


def run_driver(rig: Rig, kill: str) -> subprocess.CompletedProcess[str]:
    """Index the rig's partition in a child process that SIGKILLs itself at `kill`."""
    command = [sys.executable, "-m", DRIVER, "--kill", kill, rig.partition_key]
    env = {**os.environ, "HUB_CATALOG_CHUNK_ROWS": str(CHUNK_ROWS)}
    return subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, check=False)


def matches(actual: dict[str, int | str], expected: Progress) -> bool:
    return actual.keys() == expected.keys() and all(
        actual[name] in want if isinstance(want, range | frozenset) else actual[name] == want
        for name, want in expected.items()
    )


def assert_same_as_one_run(rig: Rig, reference: State) -> None:
    state = state_of(rig.hub)
    assert set(state.object_hashes) == {object_key(oid) for oid in HISTORY.contents}
    assert torn_objects(state.object_hashes) == []
    assert state.counts == reference.counts
    assert state.object_hashes == reference.object_hashes
    assert state.catalog_digest == reference.catalog_digest
    assert state.stray_files == reference.stray_files == []


@pytest.mark.parametrize(("kind", "point"), CASES)
def test_killed_run_run_again_ends_as_one_run(
    open_rig: RigFactory, reference_states: dict[str, State], kind: str, point: str
) -> None:
    rig = open_rig(kind)
    where, left = KILL_POINTS[point]

    killed = run_driver(rig, where)

    assert killed.returncode == -signal.SIGKILL, f"rc {killed.returncode}, not killed:\n{killed.stderr[-3000:]}"
    after_kill = progress(rig.hub)
    assert matches(after_kill, left), after_kill
    assert visible_problems(rig.hub) == []

    # `hub-assets index` again, on the same instance and its pool limits. The killed run still
    # holds a pool slot; unless released, the new run would wait for it for ever.
    (dead_run,) = release_dead_runs(rig.hub.instance)
    assert rig.hub.instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE  # type: ignore[union-attr]
    apply_pool_limits(rig.hub.instance)
    rig.hub.index_ok(rig.partition_key)

    assert_same_as_one_run(rig, reference_states[kind])
    assert progress(rig.hub) == COMMITS_IN | {"status": "indexed"}
