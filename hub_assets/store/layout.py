"""Where things live under the store root (SPEC §4)."""

import re

from ..bundle.identity import is_hex_id, is_repo_id

UPLOADS = "uploads/"
OBJECTS = "objects/"


def object_key(object_id: str) -> str:
    return f"{OBJECTS}{object_id[:2]}/{object_id[2:]}"


def upload_key(partition_key: str) -> str:
    return UPLOADS + partition_key


def partition_key(repo_id: str, bundle_key: str) -> str:
    return f"{repo_id}/{bundle_key}"


_PARTITION = re.compile(r"(?P<repo>[^/]+)/(?P<bundle>[^/]+)")


def split_partition_key(key: str) -> tuple[str, str] | None:
    """(repo_id, bundle_key) of a `<repo_id>/<bundle_key>` key, or None if it is not one."""
    match = _PARTITION.fullmatch(key)
    if not match or not is_repo_id(match["repo"]) or not is_hex_id(match["bundle"]):
        return None
    return match["repo"], match["bundle"]
