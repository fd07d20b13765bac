"""The bundle format: decoding and validation, free of I/O beyond the stream it is handed."""

from .decode import CatalogView, EmptyCatalog, decode_bundle
from .errors import BundleError
from .limits import Limits
from .objects import decoded_bytes
from .records import Bundle, CommitRecord, Manifest, ObjectRecord, ResolvedSnapshot

__all__ = [
    "Bundle",
    "BundleError",
    "CatalogView",
    "CommitRecord",
    "EmptyCatalog",
    "Limits",
    "Manifest",
    "ObjectRecord",
    "ResolvedSnapshot",
    "decode_bundle",
    "decoded_bytes",
]
