"""Objects uploaded on their own, before the thin push (`hub/thin_push.py`) whose snapshots name them."""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ..settings import objects_in_flight
from ..store import object_key
from .context import Hub, HubError
from .push import check_names


@dataclass(frozen=True)
class Uploaded:
    stored: int  # objects this call wrote: a new row, or bytes new to the store
    skipped: int  # objects the hub held already (now registered for the repo too)


class WrongBytes(HubError):
    """An object's bytes do not hash to its id."""

    def __init__(self, object_id: str) -> None:
        super().__init__(f"object {object_id[:64]!r}: bytes do not hash to its id")
        self.object_id = object_id


class VerifiedObjects(dict[str, bytes]):
    """object id -> bytes, each checked to hash to its id (only `verify_objects` makes one)."""


def verify_objects(objects: Iterable[tuple[str, bytes]]) -> VerifiedObjects:
    """The objects in id order, once every one hashes to its id; one that does not refuses
    them all. Without a bundle hash to vouch for them, that is all that proves their bytes."""
    verified = VerifiedObjects(sorted(objects))
    for object_id, data in verified.items():
        if hashlib.sha256(data).hexdigest() != object_id:
            raise WrongBytes(object_id)
    return verified


def upload_objects(
    hub: Hub, repo_id: str, objects: Iterable[tuple[str, bytes]] | VerifiedObjects, *, inline_small: bool = False
) -> Uploaded:
    """Store and register objects for the repo, verified first (`verify_objects`, unless they
    were): one wrong object refuses the whole batch, nothing written.

    `inline_small`: objects of at most `hub.inline_object_max_bytes` become inline rows (SPEC
    §6: fetchable now, written to the store by the index run of the push that names them), in
    one bulk write instead of a store write each. Write-once either way, and safe to run
    concurrently and again with the same objects: rows are inserted in id order (no deadlock
    between batches sharing objects) and each object counts as stored in exactly one call."""
    check_names(repo_id)
    received = objects if isinstance(objects, VerifiedObjects) else verify_objects(objects)
    inline: list[tuple[str, bytes]] = []
    to_store: list[tuple[str, bytes]] = []
    for item in received.items():
        (inline if inline_small and len(item[1]) <= hub.inline_object_max_bytes else to_store).append(item)
    stored = hub.catalog.add_inline_objects(inline) if inline else 0
    if to_store:
        puts = ((object_key(object_id), lambda data=data: data) for object_id, data in to_store)
        stored += hub.store.put_many(puts, objects_in_flight())
        hub.catalog.add_stored_objects(
            (object_id, len(data), hub.store.uri_for(object_key(object_id))) for object_id, data in to_store
        )
    if received:
        hub.catalog.add_object_refs(repo_id, received)
    return Uploaded(stored, len(received) - stored)
