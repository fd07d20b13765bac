"""Large objects uploaded straight to the store by presigned PUT (SPEC §10), never through the hub.

A presigned URL lets its holder PUT any bytes, with no hash check on the way: the bytes land in
quarantine (`presigned_key`), and only a push that names the object claims them, after checking
`sha256(bytes) == object_id`. What no push claims, the sweep removes after the grace period.
"""

from collections.abc import Iterable
from datetime import timedelta

from ..store import ObjectNotFound, presigned_key
from .context import Hub, HubError
from .stream import upload_objects


def presign_uploads(hub: Hub, repo_id: str, object_ids: Iterable[str], expires_in: timedelta) -> dict[str, str]:
    """A presigned PUT URL for each object, or {} where the store cannot presign (file://): the
    client then sends them all through /push/objects."""
    urls = {}
    for object_id in object_ids:
        url = hub.store.presign_put(presigned_key(repo_id, object_id), expires_in)
        if url is None:
            return {}
        urls[object_id] = url
    return urls


def claim_presigned(hub: Hub, repo_id: str, object_ids: Iterable[str]) -> int:
    """Verify, store (write-once) and register for the repo every object of `object_ids` that
    waits in quarantine from a presigned PUT; returns how many. Ids with no such upload are left
    alone (the ghost guard answers for them). Bytes that do not hash to their id, or larger than
    an object may be, refuse the push that names them and are removed."""
    claimed = 0
    limit = hub.limits.max_object_bytes
    for object_id in object_ids:
        key = presigned_key(repo_id, object_id)
        try:
            with hub.store.open(key) as stream:
                data = stream.read(limit + 1)
        except ObjectNotFound:
            continue
        try:
            if len(data) > limit:
                raise HubError(f"object {object_id}: its presigned upload is larger than {limit} bytes")
            upload_objects(hub, repo_id, [(object_id, data)])
        except HubError as error:
            hub.store.delete(key)
            raise HubError(f"presigned upload refused: {error}") from None
        hub.store.delete(key)
        claimed += 1
    return claimed
