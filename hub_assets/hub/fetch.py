"""Fetch (SPEC §8): an object is served only to a repo that references it."""

from ..bundle.identity import is_hex_id
from ..catalog import PENDING
from ..store import ObjectNotFound, object_key
from .context import Hub, NotFound


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
