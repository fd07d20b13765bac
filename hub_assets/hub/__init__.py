"""The hub's sync paths around the index: push, fetch, clone and stream push (SPEC §6, §8)."""

from .clone import clone
from .context import BranchConflict, BundleRefused, Hub, HubError, NotFastForward, NotFound
from .fetch import read_object
from .heads import choose_head, descends_from
from .push import PushResult, push
from .stream import stream_push, upload_objects
from .sweep import SweepReport, sweep

__all__ = [
    "BranchConflict",
    "BundleRefused",
    "Hub",
    "HubError",
    "NotFastForward",
    "NotFound",
    "PushResult",
    "SweepReport",
    "choose_head",
    "clone",
    "descends_from",
    "push",
    "read_object",
    "stream_push",
    "sweep",
    "upload_objects",
]
