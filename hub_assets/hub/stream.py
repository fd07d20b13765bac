"""Objects uploaded on their own, before the thin push (`hub/thin_push.py`) whose snapshots name them."""

import hashlib
from collections.abc import Iterable

from ..store import object_key
from .context import Hub, HubError
from .push import check_names


def upload_objects(hub: Hub, repo_id: str, objects: Iterable[tuple[str, bytes]]) -> int:
    """Store and register objects for the repo. Without a bundle hash to vouch for them, each
    is checked against its id."""
    check_names(repo_id)
    received = dict(objects)
    for object_id, data in received.items():
        if hashlib.sha256(data).hexdigest() != object_id:
            raise HubError(f"object {object_id[:64]!r}: bytes do not hash to its id")
    for object_id, data in received.items():
        hub.store.put(object_key(object_id), data)
    hub.catalog.add_stored_objects(
        (object_id, len(data), hub.store.uri_for(object_key(object_id))) for object_id, data in received.items()
    )
    return hub.catalog.add_object_refs(repo_id, received)
