"""Fetch (SPEC §8, §10): objects, packs and negotiation, served only from what a repo references."""

from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from .. import settings
from ..bundle.commits import order_commits
from ..bundle.encode import pack_head
from ..bundle.identity import is_hex_id
from ..bundle.records import CommitRecord
from ..catalog import PENDING
from ..store import ObjectNotFound, object_key
from . import graph
from .context import Hub, HubError, NotFound
from .push import check_names


def read_object(hub: Hub, repo_id: str, object_id: str) -> bytes:
    """The object's bytes: the inline copy while there is one, else the store's.

    Whatever the cause (no such object, another repo's object, not stored yet), the answer
    is the same, so a repo learns nothing about ids it does not reference.
    """
    not_found = NotFound(f"object {object_id[:64]} not found in repo {repo_id[:128]}")
    row = hub.catalog.servable_object(repo_id, object_id) if is_hex_id(object_id) else None
    if row is None:
        raise not_found
    if row.content_cache is not None:
        return bytes(row.content_cache)
    if row.storage_uri == PENDING:
        raise not_found
    try:
        return hub.store.get(object_key(object_id))
    except ObjectNotFound:
        raise not_found from None


class PackTooLarge(HubError):
    """The pack asked for is larger than the receiver takes."""


@dataclass(frozen=True)
class Negotiation:
    ack: list[str]  # the `have` ids the hub has, in the order sent
    common_base: str | None  # a best common ancestor of `want` and the acknowledged haves
    ready: bool  # a common base is known: a fetch with the acknowledged haves sends only what is new


def negotiate(hub: Hub, repo_id: str, want: list[str], have: list[str]) -> Negotiation:
    """One round of the client's negotiation (it sends up to 64 haves a round, and goes on to
    older commits until `ready`; at the end it sends every commit it has). The repo's graph is
    read only for a round that acknowledges a have: the rounds of a client whose haves the hub
    lacks cost one indexed lookup each."""
    check_names(repo_id)
    want, have = wanted_ids(want), commit_ids(have, "have")
    known = hub.catalog.known_commits(repo_id, [*want, *have])
    check_known(repo_id, want, known)
    ack = list(dict.fromkeys(commit_id for commit_id in have if commit_id in known))
    if not ack:
        return Negotiation(ack=[], common_base=None, ready=False)
    parents = hub.catalog.commit_parents(repo_id)
    bases = sorted(graph.merge_bases(parents, want, ack))
    if len(bases) > 1:  # a criss-cross merge: the newest base is the best to build on
        bases = [max(hub.catalog.commit_rows(repo_id, bases), key=lambda r: (r.committed_at, r.commit_id)).commit_id]
    common_base = bases[0] if bases else None
    return Negotiation(ack=ack, common_base=common_base, ready=common_base is not None)


def fetch_pack(hub: Hub, repo_id: str, want: list[str], have: list[str], *, max_bytes: int) -> bytes:
    """A Muse PackBundle (full manifests, identity objects) of the commits reachable from `want`
    and not from `have`, their snapshots, and the objects those snapshots name that the
    receiver's snapshots do not (those of the sent commits' parents and of its tips, whatever
    branch they are on: `graph.held_frontier`); `branch_heads` names the repo's branches at a
    wanted commit. Deterministic: commits parents first (ties by time, then id), snapshots and
    objects by id, manifest paths sorted.

    The body's size is known before any object is read: over `max_bytes`, PackTooLarge."""
    check_names(repo_id)
    want, have = wanted_ids(want), commit_ids(have, "have")
    parents = hub.catalog.commit_parents(repo_id)
    check_known(repo_id, want, parents)
    held = graph.ancestors(parents, have)
    sent = graph.ancestors(parents, want) - held
    rows = sorted(hub.catalog.commit_rows(repo_id, sorted(sent)), key=lambda r: (r.committed_at, r.commit_id))
    commits = order_commits([commit_record(row) for row in rows])
    snapshots = sorted(
        hub.catalog.snapshot_rows(repo_id, sorted({c.snapshot_id for c in commits})), key=lambda r: r.snapshot_id
    )
    object_ids = _objects_to_send(hub, repo_id, snapshots, graph.held_frontier(parents, held, sent))
    sizes = hub.catalog.servable_sizes(repo_id, object_ids)
    if len(sizes) < len(object_ids):
        unservable = [i for i in object_ids if i not in sizes]
        raise HubError(f"{len(unservable)} object(s) of repo {repo_id} cannot be served, e.g. {unservable[0]}")
    head = pack_head(
        commits,
        [(s.snapshot_id, s.manifest, s.created_at) for s in snapshots],
        {object_id: sizes[object_id][0] for object_id in object_ids},
        hub.catalog.branches_at(repo_id, want),
    )
    if head.size > max_bytes:
        raise PackTooLarge(
            f"the pack of {len(commits)} commit(s) and {len(object_ids)} object(s) is {head.size} bytes,"
            f" over the {max_bytes}-byte limit"
        )
    return head.encode(read_objects(hub, repo_id, [i for i in object_ids if sizes[i][1]], object_ids))


def _objects_to_send(hub: Hub, repo_id: str, snapshots: list[Any], held: set[str]) -> list[str]:
    """The ids the sent `snapshots` name that no snapshot of the `held` commits does, sorted."""
    named = {object_id for snapshot in snapshots for object_id in snapshot.manifest.values()}
    if named and held:
        named -= hub.catalog.objects_named_by_commits(repo_id, sorted(held), sorted(named))
    return sorted(named)


def read_objects(hub: Hub, repo_id: str, cached: list[str], object_ids: list[str]) -> dict[str, bytes]:
    """The bytes of servable `object_ids`: inline copies of the `cached` ones in one query, the
    rest (and any promoted since) from the store, several at once."""
    contents = hub.catalog.inline_contents(cached) if cached else {}
    from_store = [i for i in object_ids if i not in contents]
    try:
        stored = hub.store.get_many([object_key(i) for i in from_store], settings.objects_in_flight())
    except ObjectNotFound as missing:
        raise HubError(f"an object of repo {repo_id} is missing from the store: {missing}") from None
    contents.update(zip(from_store, stored.values(), strict=True))
    return contents


def commit_ids(values: Any, field: str) -> list[str]:
    """`values` checked as a list of commit ids; a bad one is named with its place."""
    if not isinstance(values, list):
        raise HubError(f"{field} must be a list of commit ids, got {type(values).__name__}")
    for at, value in enumerate(values):
        if not is_hex_id(value):
            raise HubError(f"{field}[{at}] is not a 64-character lowercase hex commit id: {str(value)[:80]!r}")
    return values


def wanted_ids(values: Any) -> list[str]:
    """`values` checked as the commit ids a client wants: at least one."""
    want = commit_ids(values, "want")
    if not want:
        raise HubError("want must name at least one commit")
    return want


def check_known(repo_id: str, want: list[str], known: Container[str]) -> None:
    """NotFound for the first wanted commit that is not among the repo's `known` ones."""
    if missing := [commit_id for commit_id in want if commit_id not in known]:
        raise NotFound(f"commit {missing[0]} not found in repo {repo_id}")


def commit_record(row: Any) -> CommitRecord:
    return CommitRecord(
        commit_id=row.commit_id,
        snapshot_id=row.snapshot_id,
        message=row.message,
        author=row.author,
        committed_at=row.committed_at_text,
        committed_at_time=row.committed_at,
        parent_ids=tuple(row.parent_ids),
        meta=row.commit_meta,
    )
