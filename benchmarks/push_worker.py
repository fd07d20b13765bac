"""One timed large push in a fresh process (started by benchmarks/push_latency.py; not meant to be
run by hand), so its peak RSS is its own.

    python benchmarks/push_worker.py MODE OUT_JSON BUNDLE_FILE REPO_ID DATABASE_URL STORE_URL

MODE `push`: hub_assets' push of the file as a stream, validation included. MODE `seed`: the
seed's push of a large bundle: the whole file read into memory, hashed, uploaded, the branch
moved and the bundle recorded, nothing parsed. MODE `decode`: the index's decode of the same
bundle (BundleSource: from the upload, objects' content kept), for its memory and time; the
bundle is uploaded first, untimed.
"""

import hashlib
import json
import sys
import time
from pathlib import Path

from worker import peak_rss_kb  # benchmarks/ is this script's directory


def main() -> int:
    mode, out, path, repo_id, database_url, store_url = sys.argv[1:7]
    from hub_assets.bundle import decode_bundle
    from hub_assets.hub import Hub, push
    from hub_assets.store import partition_key, upload_key

    hub = Hub.connect(database_url, store_url)
    result: dict = {"mode": mode}
    try:
        if mode == "decode":
            data = Path(path).read_bytes()
            key = partition_key(repo_id, hashlib.sha256(data).hexdigest())
            hub.store.put(upload_key(key), data)
            del data
            started = time.perf_counter()
            with hub.store.open(upload_key(key)) as stream:
                decode_bundle(
                    stream,
                    bundle_key=key.split("/")[1],
                    name=key,
                    limits=hub.limits,
                    catalog=hub.catalog.view(repo_id),
                )
        elif mode == "seed":
            started = time.perf_counter()
            data = Path(path).read_bytes()
            key = partition_key(repo_id, hashlib.sha256(data).hexdigest())
            hub.store.put(upload_key(key), data)
            hub.catalog.move_branch(repo_id, "main", "0" * 64, None, force=False)
            hub.catalog.record_bundle(repo_id, key.split("/")[1], len(data), "main")
        elif mode == "push":
            started = time.perf_counter()
            with open(path, "rb") as stream:
                push(hub, repo_id, "main", stream)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
        result["wall_s"] = time.perf_counter() - started
    finally:
        hub.close()
    result["peak_rss_kb"] = peak_rss_kb()
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
