"""The hostile corpus through push alone (issue #11, SPEC §6): every bundle the index refuses, push
refuses first, with the same one line naming bundle, record and reason, under the inline limit
(decoded with the objects' bytes) and padded past it (decoded without them), and leaves catalog,
branches, bundles, uploads, quarantine and objects exactly as they were. No index run is involved:
BASE is indexed once per module, before the refusals."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace

import boto3
import dagster as dg
import msgpack
import pytest

from hub_assets.embedded_postgres import with_database
from hub_assets.hub import BundleRefused, Hub, PushResult, push
from hub_assets.index.run import index_partitions
from hub_assets.settings import DATABASE_URL, OBJECT_STORE_URL, bundle_limits
from hub_assets.store import partition_key
from hub_assets_tests.bundle.builders import pack, sha256_hex
from hub_assets_tests.conftest import create_database, drop_database
from hub_assets_tests.faults.state import partial_writes
from hub_assets_tests.index.conftest import catalog_digest, instance_dir

from .corpus import BASE, CORPUS, REPO, Hostile, extension, next_good
from .test_corpus import S3_SUBSET

INLINE_LIMIT = 4 * 1024 * 1024
PAD = b"\x00" * INLINE_LIMIT  # an unknown top-level key's value: the format ignores it

# Cases whose bytes are not one whole msgpack map, so no key can be added: a large case of the
# same rule instead.
LARGE_WIRE: dict[str, Callable[[], bytes]] = {
    "not-msgpack": lambda: b"\xc1\xc1\xc1 garbage" + PAD,
    "array-not-map": lambda: pack([extension(), PAD]),
    "truncated-msgpack": lambda: padded(pack(extension()))[:-10],
    "trailing-bytes": lambda: padded(pack(extension())) + b"\x00",
}
NOT_LARGE = {"empty-upload", "two-maps"}  # nothing to make large; the rule is `trailing-bytes`'s


def padded(data: bytes) -> bytes:
    """`data`, one msgpack map, with one more key holding PAD: past the inline limit."""
    unpacker = msgpack.Unpacker(raw=True, max_buffer_size=len(data) + 1)
    unpacker.feed(data)
    entries = unpacker.read_map_header()
    header = unpacker.tell()
    for _ in range(2 * entries):
        unpacker.skip()
    assert unpacker.tell() == len(data), "not one whole map"
    packer = msgpack.Packer(use_bin_type=True)
    return packer.pack_map_header(entries + 1) + data[header:] + packer.pack("padding") + packer.pack(PAD)


def large(name: str, case: Hostile) -> bytes:
    return LARGE_WIRE[name]() if name in LARGE_WIRE else padded(case.data)


def cases(names: list[str]) -> list[object]:
    params = [pytest.param(name, "inline", id=f"{name}-inline") for name in names]
    return params + [pytest.param(name, "large", id=f"{name}-large") for name in names if name not in NOT_LARGE]


@pytest.fixture(scope="module")
def based(request: pytest.FixtureRequest, pg_admin_url: str) -> Iterator[Hub]:
    """A hub (the module's store kind) whose REPO holds BASE, pushed and indexed."""
    kind = request.param
    with pytest.MonkeyPatch.context() as env:
        if kind == "s3":
            endpoint = request.getfixturevalue("s3_endpoint")
            for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1"}.items():
                env.setenv(name, value)
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                env.setenv(name, "testing")
            env.delenv("AWS_PROFILE", raising=False)
            env.delenv("AWS_SESSION_TOKEN", raising=False)
            bucket = f"refusals-{sha256_hex(request.node.nodeid.encode())[:12]}"
            boto3.client("s3").create_bucket(Bucket=bucket)
            store_url = f"s3://{bucket}/hub"
        else:
            store_url = (request.getfixturevalue("tmp_path_factory").mktemp("refusals") / "store").as_uri()
        name = create_database(pg_admin_url)
        url = with_database(pg_admin_url, name)
        env.setenv(DATABASE_URL, url)
        env.setenv(OBJECT_STORE_URL, store_url)
        hub = Hub.connect(url, store_url)
        try:
            pushed = push(hub, REPO, BASE.branch, BASE.wire())
            with instance_dir() as home, dg.instance_for_test(temp_dir=home) as instance:
                (outcome,) = index_partitions(instance, [pushed.partition_key])
            assert outcome.success, outcome.error
            yield hub
        finally:
            hub.close()
            drop_database(pg_admin_url, name)


def digest(hub: Hub) -> str:
    return catalog_digest(hub.catalog, hub.store)


def push_case(hub: Hub, repo: str, data: bytes, bundle_key: str | None = None) -> PushResult:
    """A push as the CLI makes it: expecting the branch where it is."""
    return push(hub, repo, "main", data, bundle_key=bundle_key, expected_old_head=hub.catalog.branch_head(repo, "main"))


@pytest.fixture
def limits_of(based: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Hostile], None]]:
    """Sets the hub's limits to a case's environment, for this test only."""
    default = based.limits

    def apply(case: Hostile) -> None:
        for name, value in case.env.items():
            monkeypatch.setenv(name, value)
        based.limits = bundle_limits()

    yield apply
    based.limits = default


def assert_refused_without_a_trace(hub: Hub, limits_of: Callable[[Hostile], None], name: str, size: str) -> None:
    case = CORPUS[name]()
    data = case.data if size == "inline" else large(name, case)
    assert size == "inline" or len(data) > hub.inline_bundle_max_bytes == INLINE_LIMIT
    limits_of(case)
    before = digest(hub)

    with pytest.raises(BundleRefused) as refused:
        push_case(hub, case.repo, data, case.bundle_key)

    error = str(refused.value)
    pushed = partition_key(case.repo, case.bundle_key or sha256_hex(data))
    assert "\n" not in error and error.startswith(f"bundle {pushed}: {case.record}: "), error
    assert re.search(case.reason, error), error
    assert digest(hub) == before, "the refused push changed the catalog or the store"
    assert partial_writes(hub.store, "") == 0


# One test function per store kind, so that each shares one module-scoped hub.
@pytest.mark.parametrize("based", ["file"], indirect=True)
@pytest.mark.parametrize(("name", "size"), cases(list(CORPUS)))
def test_push_refuses_what_the_index_refuses_and_leaves_no_trace(
    based: Hub, limits_of: Callable[[Hostile], None], name: str, size: str
) -> None:
    assert_refused_without_a_trace(based, limits_of, name, size)


@pytest.mark.parametrize("based", ["s3"], indirect=True)
@pytest.mark.parametrize(("name", "size"), cases(S3_SUBSET))
def test_push_to_s3_refuses_and_leaves_no_trace(
    based: Hub, limits_of: Callable[[Hostile], None], name: str, size: str
) -> None:
    assert_refused_without_a_trace(based, limits_of, name, size)


@pytest.mark.parametrize("based", ["file"], indirect=True)
@pytest.mark.parametrize("size", ["inline", "large"])
def test_the_valid_push_after_them_is_accepted(based: Hub, size: str) -> None:
    good = next_good()
    data = good.wire() if size == "inline" else padded(good.wire())
    result = push_case(based, REPO, data)
    assert result.head_commit_id == good.head
    assert result.inline_objects == (len(good.contents) if size == "inline" else 0)
    assert based.store.exists(f"uploads/{result.partition_key}")
    # Back where the other cases expect BASE's head.
    assert based.catalog.move_branch(REPO, "main", BASE.head, good.head, force=False)


@pytest.mark.parametrize("based", ["file"], indirect=True)
def test_a_raised_limit_lets_the_same_bundle_through(based: Hub, limits_of: Callable[[Hostile], None]) -> None:
    """The limits are the hub's: the bundle `too-many-objects` refuses passes once they allow it."""
    case = CORPUS["too-many-objects"]()
    limits_of(case)
    with pytest.raises(BundleRefused):
        push_case(based, case.repo, case.data)
    based.limits = replace(based.limits, max_objects=1000)
    assert push_case(based, case.repo, case.data).bundle_key == sha256_hex(case.data)
    assert based.catalog.move_branch(REPO, "main", BASE.head, extension()["branch_heads"]["main"], force=False)
