"""The hub's sync paths around the index: push, thin push, fetch and clone (SPEC §6, §8, §10)."""

from .clone import clone
from .context import BranchConflict, BundleRefused, Hub, HubError, NotFastForward, NotFound
from .fetch import Negotiation, PackTooLarge, fetch_pack, negotiate, read_object
from .heads import choose_head, descends_from
from .push import PushResult, push
from .stream import Uploaded, upload_objects
from .sweep import SweepReport, sweep
from .thin_push import ThinPushResult, thin_push

__all__ = [
    "BranchConflict",
    "BundleRefused",
    "Hub",
    "HubError",
    "Negotiation",
    "NotFastForward",
    "NotFound",
    "PackTooLarge",
    "PushResult",
    "SweepReport",
    "ThinPushResult",
    "Uploaded",
    "choose_head",
    "clone",
    "descends_from",
    "fetch_pack",
    "negotiate",
    "push",
    "read_object",
    "sweep",
    "thin_push",
    "upload_objects",
]
