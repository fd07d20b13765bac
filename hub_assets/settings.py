"""Configuration from the environment (SPEC §4-§6): production is configuration, not code."""

import os
from dataclasses import dataclass
from typing import Literal

from .bundle import Limits
from .bundle.limits import MIB

DATABASE_URL = "HUB_DATABASE_URL"
OBJECT_STORE_URL = "HUB_OBJECT_STORE_URL"
DAGSTER_PG_URL = "HUB_DAGSTER_PG_URL"
RUN_LAUNCHER = "HUB_RUN_LAUNCHER"
BROKER_URL = "HUB_BROKER_URL"
RESULT_BACKEND_URL = "HUB_RESULT_BACKEND_URL"
WORKER_QUEUE = "HUB_WORKER_QUEUE"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def bundle_limits() -> Limits:
    defaults = Limits()
    return Limits(
        max_commits=_int("HUB_MAX_COMMITS", defaults.max_commits),
        max_snapshots=_int("HUB_MAX_SNAPSHOTS", defaults.max_snapshots),
        max_objects=_int("HUB_MAX_OBJECTS", defaults.max_objects),
        max_manifest_entries=_int("HUB_MAX_MANIFEST_ENTRIES", defaults.max_manifest_entries),
        max_object_bytes=_int("HUB_MAX_OBJECT_BYTES", defaults.max_object_bytes),
        verify_object_ids=os.environ.get("HUB_VERIFY_OBJECT_IDS", "") in ("1", "true", "yes"),
    )


def inline_bundle_max_bytes() -> int:
    return _int("HUB_INLINE_BUNDLE_MAX_BYTES", 4 * MIB)


def inline_object_max_bytes() -> int:
    return _int("HUB_INLINE_OBJECT_MAX_BYTES", MIB)


def quarantine_grace_s() -> int:
    """Seconds a quarantine key or partial write no accepted push names is kept before a sweep
    removes it: longer than any one push's upload takes (a killed push's bytes cost little)."""
    return _int("HUB_QUARANTINE_GRACE_S", 24 * 3600)


def api_max_body_bytes() -> int:
    """Largest request body the hub API reads for a write. Above the client's largest request:
    400 objects of up to 64 KiB (25 MiB; larger ones go by presigned URL on S3) and the /push of
    a history's manifests (the reference push's are 33 MB). On a file:// store every object goes
    through /push/objects, so a chunk of 400 must fit this too."""
    return _int("HUB_API_MAX_BODY_BYTES", 256 * MIB)


def api_max_read_body_bytes() -> int:
    """Largest body of a read (/negotiate, /fetch), which needs no token: 16 MiB is a `have` list
    of 250,000 commit ids, while a smaller cap keeps what strangers can make the hub decode small."""
    return _int("HUB_API_MAX_READ_BODY_BYTES", 16 * MIB)


def api_max_objects_per_request() -> int:
    """Objects one /push/objects may carry: the client sends 400 and MuseHub allows 1,000."""
    return _int("HUB_API_MAX_OBJECTS_PER_REQUEST", 1000)


def api_max_response_bytes() -> int:
    """Largest /fetch body the hub builds: the client drops a response over 64 MiB."""
    return _int("HUB_API_MAX_RESPONSE_BYTES", 64 * MIB)


def presign_expires_s() -> int:
    """How long a presigned PUT URL stays valid: the client PUTs 8 at a time, 300 s each at most."""
    return _int("HUB_PRESIGN_EXPIRES_S", 3600)


IN_FLIGHT = 100
CHUNK_ROWS = 5000


def objects_in_flight() -> int:
    return _int("HUB_OBJECTS_IN_FLIGHT", IN_FLIGHT)


def catalog_chunk_rows() -> int:
    return _int("HUB_CATALOG_CHUNK_ROWS", CHUNK_ROWS)


def s3_timeout_s() -> int:
    """Seconds an S3 request may take before it fails and is retried (both S3 clients)."""
    return _int("HUB_S3_TIMEOUT_S", 120)


def pool_limits() -> dict[str, int]:
    """Dagster pool slots, applied to the instance at start-up (dagster.yaml holds only a default)."""
    return {
        "object_store": _int("HUB_POOL_OBJECT_STORE", 1),
        "catalog": _int("HUB_POOL_CATALOG", 2),
    }


def dagster_pg_url(database_url: str) -> str:
    """dagster-postgres binds a parameter into NOTIFY, which only psycopg2 supports."""
    return os.environ.get(DAGSTER_PG_URL) or database_url.replace("+psycopg://", "+psycopg2://", 1)


@dataclass(frozen=True)
class WorkerPool:
    """Where index runs execute: in processes forked beside the daemon from one that has imported
    the code location (`local`, the default), in a new process per run that Dagster's code server
    starts (`code-server`), or on `hub-assets worker`s fed by a Celery broker (`celery`)."""

    launcher: Literal["local", "code-server", "celery"]
    broker_url: str | None
    result_backend_url: str | None
    queue: str
    worker_lost_after_s: int


def worker_pool() -> WorkerPool:
    launcher = os.environ.get(RUN_LAUNCHER) or "local"
    if launcher not in ("local", "code-server", "celery"):
        raise ValueError(f"{RUN_LAUNCHER} must be 'local', 'code-server' or 'celery', got {launcher!r}")
    queue = os.environ.get(WORKER_QUEUE) or "hub-index"
    lost_after = _int("HUB_WORKER_LOST_AFTER_S", 15)
    if launcher != "celery":
        return WorkerPool(launcher, None, None, queue, lost_after)
    broker = os.environ.get(BROKER_URL)
    if not broker:
        raise ValueError(f"{RUN_LAUNCHER}=celery needs {BROKER_URL} (e.g. redis://broker.internal:6379/0)")
    # Run monitoring asks the result backend for the state of each run's task from the daemon's
    # process: Celery's default `rpc://` only tells the process that sent the task, so a
    # persistent backend is required; Redis serves as both.
    backend = os.environ.get(RESULT_BACKEND_URL) or (broker if broker.startswith(("redis://", "rediss://")) else None)
    if not backend:
        raise ValueError(f"{BROKER_URL}={broker.split('://')[0]}://… needs {RESULT_BACKEND_URL} (e.g. redis://…)")
    return WorkerPool("celery", broker, backend, queue, lost_after)
