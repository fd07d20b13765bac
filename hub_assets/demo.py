"""`hub-assets demo`: make a sample push, index it, prove every object fetches, show timings."""

import io
from dataclasses import dataclass

import dagster as dg

from .bundle import decoded_bytes
from .bundle.wire import read_wire
from .environment import HubEnvironment
from .hub import Hub, push, read_object
from .index.run import IndexOutcome
from .index.timing import PHASES
from .progress import Progress
from .sample import SampleSpec, write_sample

DEMO_REPO = "demo"


@dataclass(frozen=True)
class DemoReport:
    partition_key: str
    outcome: IndexOutcome
    stats: dict[str, int]
    objects_checked: int


def run_demo(environment: HubEnvironment, instance: dg.DagsterInstance, spec: SampleSpec) -> DemoReport:
    from .index.run import apply_pool_limits, index_partitions

    path = environment.home / "demo" / f"sample-{spec.commits}-{spec.seed}.bundle"
    path.parent.mkdir(parents=True, exist_ok=True)
    info = write_sample(path, spec, Progress("generating history"))
    data = path.read_bytes()
    hub = Hub.connect(environment.database_url, environment.store_url)
    try:
        result = push(hub, DEMO_REPO, "main", data, head_commit_id=info.head_commit_id, force=True)
        apply_pool_limits(instance)
        Progress("indexing (one Dagster run)")(0, 1)
        [outcome] = index_partitions(instance, [result.partition_key])
        Progress("indexing (one Dagster run)")(1, 1)
        if not outcome.success:
            return DemoReport(result.partition_key, outcome, {}, 0)
        checked = _check_fetch(hub, data)
        [row] = [r for r in hub.catalog.bundle_rows(DEMO_REPO) if r.bundle_key == result.bundle_key]
        return DemoReport(result.partition_key, outcome, row.stats, checked)
    finally:
        hub.close()


def _check_fetch(hub: Hub, data: bytes) -> int:
    """Every object of the push reads back byte-exact through the fetch path."""
    objects = read_wire(io.BytesIO(data), hub.limits).objects
    progress = Progress("fetching every object")
    for done, obj in enumerate(objects, 1):
        if read_object(hub, DEMO_REPO, obj.object_id) != decoded_bytes(obj):
            raise AssertionError(f"object {obj.object_id} does not read back byte-exact")
        progress(done, len(objects))
    return len(objects)


def timing_table(stats: dict[str, int]) -> str:
    total = max(stats.get("elapsed_ms", 0), 1)
    lines = [f"{'phase':<14}{'ms':>9}{'share':>8}"]
    for key, label in PHASES:
        ms = stats.get(key, 0)
        lines.append(f"{label:<14}{ms:>9}{100 * ms / total:>7.0f}%")
    counts = ", ".join(
        f"{stats.get(k, 0)} {k.removesuffix('_written')}"
        for k in ["commits_written", "snapshots_written", "objects_written", "object_refs_written"]
    )
    return "\n".join([*lines, f"written: {counts}; bundle {stats.get('bundle_size_bytes', 0):,} bytes"])
