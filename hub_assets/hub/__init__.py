"""The hub's sync paths around the index: push, fetch, clone and stream push (SPEC §6, §8)."""

from .clone import clone
from .context import BranchConflict, Hub, HubError, NotFound
from .fetch import read_object
from .push import PushResult, descends_from, push
from .stream import stream_push, upload_objects

__all__ = [
    "BranchConflict",
    "Hub",
    "HubError",
    "NotFound",
    "PushResult",
    "clone",
    "descends_from",
    "push",
    "read_object",
    "stream_push",
    "upload_objects",
]
