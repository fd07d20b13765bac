"""fetch_pack and negotiate (SPEC §10 `/fetch`, `/negotiate`): from the catalog's rows and the
store, on the real client's recorded pushes and on histories written through the Catalog."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgpack
import pytest
import sqlalchemy as sa

from hub_assets.bundle import Bundle
from hub_assets.hub import Hub, HubError, Negotiation, NotFound, PackTooLarge, fetch_pack, negotiate
from hub_assets.hub.fetch import read_objects
from hub_assets.store import object_key

from ..bundle.builders import (
    build_history,
    decode_dict,
    fake_id,
    full_snapshot,
    make_bundle,
    make_commit,
    pack,
    sha256_hex,
    timestamp,
)
from .conftest import Indexer
from .helpers import bundle_statuses, push_new
from .test_thin_push import REPO, recorded, register_recorded, replay

UNCAPPED = sys.maxsize


def fetched(hub: Hub, repo_id: str, want: list[str], have: list[str]) -> dict[str, Any]:
    return msgpack.unpackb(fetch_pack(hub, repo_id, want, have, max_bytes=UNCAPPED))


def contents(pack_bundle: dict[str, Any]) -> dict[str, bytes]:
    return {o["object_id"]: o["content"] for o in pack_bundle["objects"]}


def commit_ids(pack_bundle: dict[str, Any]) -> list[str]:
    return [c["commit_id"] for c in pack_bundle["commits"]]


# --- the real client's pushes, pushed and indexed -------------------------------------------------


def thin_push_as_bundle(push: str, objects: str) -> tuple[bytes, dict[str, Any]]:
    """A recorded `/push` body with the objects its `/push/objects` carried, as one bundle."""
    body, uploaded = recorded(push), recorded(objects)
    return pack({**body["bundle"], "objects": uploaded["objects"]}), body["bundle"]


def test_the_clients_history_round_trips_byte_for_byte(hub: Hub, index: Indexer) -> None:
    first, sent = thin_push_as_bundle("05-post-push", "04-post-push-objects")
    first_head = sent["commits"][0]["commit_id"]
    index(push_new(hub, REPO, first, first_head).partition_key)

    clone_request = recorded("07-post-fetch")
    cloned = fetched(hub, REPO, clone_request["want"], clone_request["have"])
    assert cloned["commits"] == sent["commits"][::-1]  # every field as the client sent it, parents first
    assert cloned["snapshots"] == sorted(sent["snapshots"], key=lambda s: s["snapshot_id"])
    assert contents(cloned) == contents(recorded("04-post-push-objects"))  # from the store, after the index
    assert all(set(o) == {"object_id", "content"} for o in cloned["objects"])
    assert cloned["branch_heads"] == {"main": first_head}

    second, more = thin_push_as_bundle("12-post-push", "11-post-push-objects")
    head = more["commits"][0]["commit_id"]
    index(push_new(hub, REPO, second, head, expected_old_head=first_head).partition_key)

    round_ = recorded("14-post-negotiate")
    assert negotiate(hub, REPO, round_["want"], round_["have"]) == Negotiation(
        ack=round_["have"], common_base=first_head, ready=True
    )
    pull_request = recorded("15-post-fetch")
    pulled = fetched(hub, REPO, pull_request["want"], pull_request["have"])
    assert pulled["commits"] == more["commits"]  # only the new commit
    assert pulled["snapshots"] == more["snapshots"]
    assert contents(pulled) == contents(recorded("11-post-push-objects"))  # only the new objects
    assert commit_ids(fetched(hub, REPO, [head], [])) == [
        c["commit_id"] for c in sent["commits"][::-1] + more["commits"]
    ]


def test_the_clients_thin_pushes_are_fetched_as_it_asks_before_any_index_run(hub: Hub) -> None:
    """The session as the client runs it over HTTP: objects, then a thin push, then the exact
    `/fetch` and `/negotiate` bodies it sent; nothing indexed yet (objects inline or stored)."""
    first = register_recorded(hub, "04-post-push-objects")
    sent = replay(hub, "05-post-push").head_commit_id
    clone_request = recorded("07-post-fetch")
    cloned = fetched(hub, REPO, clone_request["want"], clone_request["have"])
    assert cloned["commits"] == recorded("05-post-push")["bundle"]["commits"][::-1]
    assert contents(cloned) == first

    second = register_recorded(hub, "11-post-push-objects")
    replay(hub, "12-post-push")
    round_ = recorded("14-post-negotiate")
    assert negotiate(hub, REPO, round_["want"], round_["have"]) == Negotiation(round_["have"], sent, True)
    pull_request = recorded("15-post-fetch")
    pulled = fetched(hub, REPO, pull_request["want"], pull_request["have"])
    assert pulled["commits"] == recorded("12-post-push")["bundle"]["commits"]
    assert contents(pulled) == second
    assert bundle_statuses(hub, REPO) and set(bundle_statuses(hub, REPO).values()) == {"pushed"}


# --- histories written through the Catalog --------------------------------------------------------


@dataclass
class CatalogRepo:
    """Writes commits into the catalog as a push does (objects inline and registered, snapshot,
    commit, branch), and keeps what a fetch must give back."""

    hub: Hub
    repo_id: str
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # commit id -> commit as sent
    manifests: dict[str, dict[str, str]] = field(default_factory=dict)  # commit id -> manifest
    contents: dict[str, bytes] = field(default_factory=dict)
    steps: int = 0

    def commit(
        self,
        files: Mapping[str, bytes],
        parents: Sequence[str] = (),
        branch: str = "main",
        *,
        registered: bool = True,
    ) -> str:
        manifest = {path: sha256_hex(data) for path, data in files.items()}
        self.steps += 1
        snapshot = full_snapshot(manifest, created_at=timestamp(self.steps))
        raw = make_commit(
            snapshot["snapshot_id"],
            parents=parents,
            message=f"commit {self.steps}",
            committed_at=timestamp(self.steps),
            branch=branch,
            repo_id=self.repo_id,
        )
        self.write(decode_dict(make_bundle(commits=[raw], snapshots=[snapshot])), files.values(), registered)
        self.hub.catalog.move_branch(self.repo_id, branch, raw["commit_id"], None, force=True)
        self.sent[raw["commit_id"]] = raw
        self.manifests[raw["commit_id"]] = manifest
        return raw["commit_id"]

    def write(self, bundle: Bundle, files: Any, registered: bool = True) -> None:
        catalog = self.hub.catalog
        objects = {sha256_hex(data): data for data in files}
        catalog.add_inline_objects(objects.items())
        if registered:
            catalog.add_object_refs(self.repo_id, objects)
        catalog.add_snapshots(self.repo_id, bundle.snapshots)
        catalog.add_commits(self.repo_id, bundle.commits)
        self.contents.update(objects)

    def objects_of(self, *commit_ids: str) -> dict[str, bytes]:
        return {i: self.contents[i] for c in commit_ids for i in self.manifests[c].values()}


@dataclass
class MergeHistory:
    """root - main1 - merge (main), root - side1 (side), merge = merge(main1, side1)."""

    repo: CatalogRepo
    root: str
    main1: str
    side1: str
    merge: str


@pytest.fixture
def merge_history(file_hub: Hub) -> MergeHistory:
    repo = CatalogRepo(file_hub, "repo-merge")
    root = repo.commit({"a.txt": b"a v1\n", "beat.mid": b"MThd\x00\x00\x00\x06" + bytes(range(256))})
    main1 = repo.commit({"a.txt": b"a v2\n", "beat.mid": repo.contents[repo.manifests[root]["beat.mid"]]}, [root])
    side1 = repo.commit(
        {**{p: repo.contents[i] for p, i in repo.manifests[root].items()}, "c.txt": b"c\n"}, [root], "side"
    )
    files = {p: repo.contents[i] for p, i in {**repo.manifests[main1], **repo.manifests[side1]}.items()}
    merge = repo.commit({**files, "a.txt": b"a v2\n"}, [main1, side1])
    return MergeHistory(repo, root, main1, side1, merge)


def test_a_clone_is_the_whole_history_parents_first(merge_history: MergeHistory) -> None:
    h, repo = merge_history, merge_history.repo
    cloned = fetched(repo.hub, repo.repo_id, [h.merge], [])
    order = commit_ids(cloned)
    assert sorted(order) == sorted(repo.sent)
    assert order.index(h.root) < order.index(h.main1) < order.index(h.merge)
    assert order.index(h.side1) < order.index(h.merge)
    assert {c["commit_id"]: c for c in cloned["commits"]} == repo.sent
    assert {s["snapshot_id"]: s["manifest"] for s in cloned["snapshots"]} == {
        repo.sent[c]["snapshot_id"]: m for c, m in repo.manifests.items()
    }
    assert all(datetime.fromisoformat(s["created_at"]) for s in cloned["snapshots"])
    assert contents(cloned) == repo.contents  # inline copies, before any index run
    assert cloned["branch_heads"] == {"main": h.merge}


@pytest.mark.parametrize(
    ("have", "sent", "new_files"),
    [
        ("main1", ["side1", "merge"], ["c.txt"]),  # the side branch and the merge; c.txt is all that is new
        ("side1", ["main1", "merge"], ["a.txt"]),
        ("root", ["main1", "side1", "merge"], ["a.txt", "c.txt"]),
        ("merge", [], []),
    ],
)
def test_a_fetch_sends_only_what_the_haves_lack(
    merge_history: MergeHistory, have: str, sent: list[str], new_files: list[str]
) -> None:
    h, repo = merge_history, merge_history.repo
    pulled = fetched(repo.hub, repo.repo_id, [h.merge], [getattr(h, have), fake_id("local only")])
    assert sorted(commit_ids(pulled)) == sorted(getattr(h, name) for name in sent)
    new_ids = {repo.manifests[h.merge][path] for path in new_files}
    assert contents(pulled) == {i: repo.contents[i] for i in new_ids}


def test_a_fetch_sends_no_object_a_have_on_another_branch_holds(file_hub: Hub) -> None:
    """root - main1 (main), root - feature1 (feature): main1 names an object only feature1's
    snapshot names before it. A client holding feature1 pulling main gets main1 without it,
    though feature1 is no parent of what it gets."""
    repo = CatalogRepo(file_hub, "repo-branches")
    root = repo.commit({"a.txt": b"a v1\n"})
    shared = b"MThd on the feature branch first\n"
    feature1 = repo.commit({"a.txt": b"a v1\n", "beat.mid": shared}, [root], "feature")
    main1 = repo.commit({"a.txt": b"a v2\n", "beat.mid": shared}, [root])

    pulled = fetched(file_hub, repo.repo_id, [main1], [feature1])

    assert commit_ids(pulled) == [main1]
    assert contents(pulled) == {sha256_hex(b"a v2\n"): b"a v2\n"}
    exact = len(fetch_pack(file_hub, repo.repo_id, [main1], [feature1], max_bytes=UNCAPPED))
    with pytest.raises(PackTooLarge, match=rf"is {exact} bytes, over the {exact - 1}-byte limit$"):
        fetch_pack(file_hub, repo.repo_id, [main1], [feature1], max_bytes=exact - 1)


def test_a_fetch_of_two_wants_sends_both_histories_once(merge_history: MergeHistory) -> None:
    h, repo = merge_history, merge_history.repo
    pulled = fetched(repo.hub, repo.repo_id, [h.main1, h.side1], [h.root])
    assert sorted(commit_ids(pulled)) == sorted([h.main1, h.side1])
    assert contents(pulled) == {repo.manifests[h.main1]["a.txt"]: b"a v2\n", repo.manifests[h.side1]["c.txt"]: b"c\n"}
    assert pulled["branch_heads"] == {"side": h.side1}  # the branches at a wanted commit


def test_negotiate_acks_the_known_haves_and_finds_the_base(merge_history: MergeHistory) -> None:
    h, repo = merge_history, merge_history.repo
    hub, repo_id = repo.hub, repo.repo_id
    unknown = fake_id("local only")
    assert negotiate(hub, repo_id, [h.merge], [unknown, h.side1]) == Negotiation([h.side1], h.side1, True)
    assert negotiate(hub, repo_id, [h.main1], [h.side1]) == Negotiation([h.side1], h.root, True)  # the fork
    assert negotiate(hub, repo_id, [h.merge], [h.root, h.main1, h.main1]) == Negotiation(
        [h.root, h.main1], h.main1, True
    )
    assert negotiate(hub, repo_id, [h.merge], [unknown]) == Negotiation([], None, False)
    assert negotiate(hub, repo_id, [h.merge], []) == Negotiation([], None, False)


def test_negotiate_is_not_ready_on_an_unrelated_history(merge_history: MergeHistory) -> None:
    repo = merge_history.repo
    other_root = repo.commit({"x.txt": b"x\n"}, branch="other")
    assert negotiate(repo.hub, repo.repo_id, [merge_history.merge], [other_root]) == Negotiation(
        [other_root], None, False
    )


@pytest.fixture
def statements(file_hub: Hub) -> Iterator[list[str]]:
    """Every statement the hub sends to PostgreSQL while the test runs."""
    sent: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        sent.append(statement)

    sa.event.listen(file_hub.catalog.engine, "before_cursor_execute", record)
    yield sent
    sa.event.remove(file_hub.catalog.engine, "before_cursor_execute", record)


def graph_reads(statements: list[str]) -> int:
    return sum("musehub_commits.parent_ids" in statement for statement in statements)


def test_negotiate_reads_the_graph_only_for_a_round_that_acknowledges_a_have(
    merge_history: MergeHistory, statements: list[str]
) -> None:
    h, repo = merge_history, merge_history.repo
    unknown = [fake_id(n) for n in range(64)]  # a round of a client whose commits the hub lacks
    assert negotiate(repo.hub, repo.repo_id, [h.merge], unknown) == Negotiation([], None, False)
    assert graph_reads(statements) == 0
    with pytest.raises(NotFound, match=f"commit {unknown[0]} not found"):
        negotiate(repo.hub, repo.repo_id, [unknown[0]], [h.root])
    assert graph_reads(statements) == 0
    assert negotiate(repo.hub, repo.repo_id, [h.merge], [*unknown, h.side1]) == Negotiation([h.side1], h.side1, True)
    assert graph_reads(statements) == 1


def write_history(hub: Hub, repo_id: str, n_commits: int) -> list[str]:
    """A linear history of `n_commits` written in one go; its commit ids, oldest first."""
    history = build_history(n_commits, 8, delta=False, zstd_every=0, seed=3, repo_id=repo_id)
    CatalogRepo(hub, repo_id).write(decode_dict(history.bundle), history.contents.values())
    hub.catalog.move_branch(repo_id, "main", history.head, None, force=True)
    return history.commit_ids


def test_ten_thousand_haves_cost_no_more_than_one(file_hub: Hub) -> None:
    commits = write_history(file_hub, "repo-long", 500)
    want, known = [commits[-1]], commits[400]
    many = [fake_id(n) for n in range(9_999)] + [known]
    random.Random(0).shuffle(many)

    started = time.perf_counter()
    one = fetch_pack(file_hub, "repo-long", want, [known], max_bytes=UNCAPPED)
    one_s = time.perf_counter() - started
    started = time.perf_counter()
    assert fetch_pack(file_hub, "repo-long", want, many, max_bytes=UNCAPPED) == one
    many_s = time.perf_counter() - started
    assert commit_ids(msgpack.unpackb(one)) == commits[401:]
    # Linear, set-based work: 10,000 ids are one array parameter, not 10,000 queries or a
    # 10,000 x history comparison. Generous bounds on a shared machine.
    assert many_s < max(2.0, 10 * one_s), (one_s, many_s)

    started = time.perf_counter()
    assert negotiate(file_hub, "repo-long", want, many) == Negotiation([known], known, True)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("want", "have", "reason"),
    [
        (["A" * 64], [], r"want\[0\] is not a 64-character lowercase hex commit id: 'AAAA"),
        ([fake_id(1)], [fake_id(2), "abc"], r"have\[1\] is not a 64-character lowercase hex commit id: 'abc'"),
        ([fake_id(1)], [fake_id(2), 7], r"have\[1\] is not a 64-character lowercase hex commit id: '7'"),
        ([fake_id(1)], [fake_id(2), "x\n" * 100], r"have\[1\] is not .*: 'x\\nx"),
        ([fake_id(1)], "abc", r"have must be a list of commit ids, got str"),
        ([], [], r"want must name at least one commit"),
    ],
)
def test_bad_ids_are_refused_in_one_line(merge_history: MergeHistory, want: Any, have: Any, reason: str) -> None:
    repo = merge_history.repo
    for call in (
        lambda: fetch_pack(repo.hub, repo.repo_id, want, have, max_bytes=UNCAPPED),
        lambda: negotiate(repo.hub, repo.repo_id, want, have),
    ):
        with pytest.raises(HubError, match=reason) as refused:
            call()
        assert "\n" not in str(refused.value)
        assert not isinstance(refused.value, NotFound)


def test_an_unknown_want_or_repo_is_not_found(merge_history: MergeHistory) -> None:
    repo, unknown = merge_history.repo, fake_id("nowhere")
    for repo_id, want in ((repo.repo_id, unknown), ("repo-nobody", merge_history.merge)):
        with pytest.raises(NotFound, match=f"commit {want} not found in repo {repo_id}"):
            fetch_pack(repo.hub, repo_id, [want], [], max_bytes=UNCAPPED)
        with pytest.raises(NotFound, match=f"commit {want} not found in repo {repo_id}"):
            negotiate(repo.hub, repo_id, [want], [])
    with pytest.raises(HubError, match="repo id 'a/b' must be"):
        fetch_pack(repo.hub, "a/b", [unknown], [], max_bytes=UNCAPPED)


def test_an_object_of_another_repo_is_never_served(file_hub: Hub) -> None:
    owner, other = CatalogRepo(file_hub, "repo-owner"), CatalogRepo(file_hub, "repo-other")
    secret = b"only repo-owner may serve this\n"
    owner_head = owner.commit({"secret.txt": secret})
    # A snapshot of repo-other naming the object, with no ref of repo-other to it (what the ghost
    # guard keeps out of the catalog): the pack is refused, not sent without or with the object.
    other_head = other.commit({"secret.txt": secret, "mine.txt": b"mine\n"}, registered=False)
    with pytest.raises(HubError, match=r"2 object\(s\) of repo repo-other cannot be served, e\.g\. [0-9a-f]{64}$"):
        fetch_pack(file_hub, "repo-other", [other_head], [], max_bytes=UNCAPPED)
    with pytest.raises(NotFound):
        fetch_pack(file_hub, "repo-other", [owner_head], [], max_bytes=UNCAPPED)
    assert contents(fetched(file_hub, "repo-owner", [owner_head], [])) == {sha256_hex(secret): secret}


def test_a_pack_over_the_cap_is_refused_naming_its_size(merge_history: MergeHistory) -> None:
    h, repo = merge_history, merge_history.repo
    exact = len(fetch_pack(repo.hub, repo.repo_id, [h.merge], [], max_bytes=UNCAPPED))
    assert len(fetch_pack(repo.hub, repo.repo_id, [h.merge], [], max_bytes=exact)) == exact
    with pytest.raises(PackTooLarge, match=rf"is {exact} bytes, over the {exact - 1}-byte limit$") as refused:
        fetch_pack(repo.hub, repo.repo_id, [h.merge], [], max_bytes=exact - 1)
    assert isinstance(refused.value, HubError)


def test_an_object_promoted_while_the_pack_is_read_comes_from_the_store(file_hub: Hub) -> None:
    repo = CatalogRepo(file_hub, "repo-race")
    repo.commit({"a.txt": b"promoted meanwhile\n"})
    [(object_id, data)] = repo.contents.items()
    # What an index run does between the pack's size query (inline then) and its reads.
    file_hub.store.put(object_key(object_id), data)
    file_hub.catalog.add_stored_objects([(object_id, len(data), file_hub.store.uri_for(object_key(object_id)))])
    assert read_objects(file_hub, "repo-race", [object_id], [object_id]) == {object_id: data}


def test_an_object_missing_from_the_store_refuses_the_pack_in_one_line(file_hub: Hub) -> None:
    repo = CatalogRepo(file_hub, "repo-lost")
    head = repo.commit({"a.txt": b"row promoted, bytes lost\n"})
    [(object_id, data)] = repo.contents.items()
    file_hub.catalog.add_stored_objects([(object_id, len(data), file_hub.store.uri_for(object_key(object_id)))])
    with pytest.raises(HubError, match=rf"^an object of repo repo-lost is missing from the store: .*{object_id[2:]}"):
        fetch_pack(file_hub, "repo-lost", [head], [], max_bytes=UNCAPPED)
