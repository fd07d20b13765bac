"""Where things live under the store root (SPEC §4)."""

import re
import uuid

from ..bundle.identity import is_hex_id, is_repo_id

UPLOADS = "uploads/"
OBJECTS = "objects/"
# Not watched by the sensor: bytes of a push being validated, and uploads a push refused.
QUARANTINE = "quarantine/"
REFUSED = "refused/"


def object_key(object_id: str) -> str:
    return f"{OBJECTS}{object_id[:2]}/{object_id[2:]}"


def upload_key(partition_key: str) -> str:
    return UPLOADS + partition_key


def quarantine_key(repo_id: str) -> str:
    """A fresh key for the bytes of one push while they are validated."""
    return f"{QUARANTINE}{repo_id}/{uuid.uuid4().hex}"


def presigned_key(repo_id: str, object_id: str) -> str:
    """Where a presigned PUT of an object for the repo lands, until a push claims it (verified,
    then moved to its object key). In quarantine: the sweep removes what no push claims."""
    return presigned_prefix(repo_id) + object_id


def presigned_prefix(repo_id: str) -> str:
    """The prefix of the repo's presigned uploads waiting for a push."""
    return f"{QUARANTINE}presigned/{repo_id}/"


def refused_key(partition_key: str) -> str:
    return REFUSED + partition_key


def partition_key(repo_id: str, bundle_key: str) -> str:
    return f"{repo_id}/{bundle_key}"


_PARTITION = re.compile(r"(?P<repo>[^/]+)/(?P<bundle>[^/]+)")


def split_partition_key(key: str) -> tuple[str, str] | None:
    """(repo_id, bundle_key) of a `<repo_id>/<bundle_key>` key, or None if it is not one."""
    match = _PARTITION.fullmatch(key)
    if not match or not is_repo_id(match["repo"]) or not is_hex_id(match["bundle"]):
        return None
    return match["repo"], match["bundle"]
