"""Large objects uploaded straight to the store by presigned PUT (SPEC §10), never through the hub.

A presigned URL lets its holder PUT any bytes, with no hash check on the way: the bytes land in
quarantine (`presigned_key`), and only a push that names the object claims them, after checking
`sha256(bytes) == object_id`. What no push claims, the sweep removes after the grace period.
"""

from collections.abc import Iterable
from datetime import timedelta
from typing import NoReturn

from ..settings import objects_in_flight
from ..store import ObjectNotFound, presigned_key, presigned_prefix
from .context import Hub, HubError
from .stream import WrongBytes, upload_objects, verify_objects


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
    """Verify, store (write-once) and register for the repo, together, every object of
    `object_ids` that waits in quarantine from a presigned PUT; returns how many. Ids with no
    such upload are left alone (the ghost guard answers for them). One upload larger than an
    object may be, or whose bytes do not hash to its id, refuses the push that names it and is
    removed; none of the others is claimed (they wait for the next push, or the sweep)."""
    wanted = {presigned_key(repo_id, object_id): object_id for object_id in object_ids}
    # One listing says which are waiting and how large, before any byte is read.
    waiting = {stored.key: stored.size for stored in hub.store.list(presigned_prefix(repo_id)) if stored.key in wanted}
    if not waiting:
        return 0
    _check_sizes(hub, waiting, wanted)
    try:
        uploads = hub.store.get_many(sorted(waiting), objects_in_flight())
    except ObjectNotFound:
        # A racing push of the repo claimed one meanwhile: claim what still waits.
        return claim_presigned(hub, repo_id, wanted.values())
    _check_sizes(hub, {key: len(data) for key, data in uploads.items()}, wanted)  # re-PUT since the listing
    try:
        verified = verify_objects((wanted[key], data) for key, data in uploads.items())
    except WrongBytes as error:
        _refuse(hub, presigned_key(repo_id, error.object_id), error)
    upload_objects(hub, repo_id, verified)
    for key in uploads:
        hub.store.delete(key)
    return len(verified)


def _check_sizes(hub: Hub, sizes: dict[str, int], object_ids: dict[str, str]) -> None:
    limit = hub.limits.max_object_bytes
    for key, size in sizes.items():
        if size > limit:
            _refuse(hub, key, HubError(f"object {object_ids[key]}: its presigned upload is larger than {limit} bytes"))


def _refuse(hub: Hub, key: str, error: HubError) -> NoReturn:
    hub.store.delete(key)
    raise HubError(f"presigned upload refused: {error}") from None
