"""Index runs on a pool of Celery workers (HUB_RUN_LAUNCHER=celery): real `hub-assets dev` and
`hub-assets worker` processes, a Redis broker of the test's own, PostgreSQL and moto S3."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from hub_assets_tests.hostile.processes import hub_child_env

from .hub import (
    WORKER_TAG,
    ScaledHub,
    assert_indexed_once_in_push_order,
    assert_within_pool_limits,
    chains,
    push_round_robin,
    scaled_hub,
)
from .processes import Forward, remote_addresses

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPOS = [f"pool-{n}" for n in range(5)]
PUSHES_PER_REPO = 4


def index_twenty_pushes_on_two_workers(hub: ScaledHub) -> None:
    """20 pushes from 5 repos: each bundle indexed exactly once, by both workers, each repo's
    bundles one at a time in push order, pools within their slots; each worker logs one line per run."""
    histories = chains(REPOS, PUSHES_PER_REPO)
    pushed = push_round_robin(hub.dev, histories, range(PUSHES_PER_REPO))
    records = assert_indexed_once_in_push_order(hub, pushed)
    by_worker = {worker.name: 0 for worker in hub.workers}
    for record in records:
        by_worker[record.dagster_run.tags[WORKER_TAG]] += 1
    assert all(by_worker.values()), f"runs did not spread over both workers: {by_worker}"
    assert_within_pool_limits(hub.dev, records)
    logged = [line for worker in hub.workers for line in worker.finished_runs()]
    assert sorted((partition, run_id, outcome) for partition, run_id, outcome, _ in logged) == sorted(
        (r.dagster_run.tags["dagster/partition"], r.dagster_run.run_id, "succeeded") for r in records
    )
    hub.dev.assert_running()


def test_twenty_pushes_from_five_repos_on_two_workers(
    pg_url: str, s3_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scaled_hub(pg_url, s3_store_url, tmp_path, monkeypatch, workers=2) as hub:
        index_twenty_pushes_on_two_workers(hub)


def namespaces() -> dict[str, str]:
    """HUB_TEST_NETNS=ns1=10.77.1.1,ns2=10.77.2.1: network namespaces (made by netns.sh) and the
    host's address on each one's veth pair."""
    spec = os.environ.get("HUB_TEST_NETNS", "")
    return dict(item.split("=", 1) for item in spec.split(",") if item)


@pytest.mark.skipif(len(namespaces()) < 2, reason="needs two network namespaces: run hub_assets_tests/workers/netns.sh")
def test_twenty_pushes_on_two_workers_each_in_a_network_namespace_of_its_own(
    pg_url: str, s3_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, with each worker in a network namespace of its own: PostgreSQL, the broker and S3
    are reached over a veth pair (relayed there by socat), never over loopback."""
    database, placed = make_url(pg_url), namespaces()  # read before scaled_hub clears every HUB_* variable
    with scaled_hub(pg_url, s3_store_url, tmp_path, monkeypatch, workers=0) as hub:
        for namespace, address in placed.items():
            relay = {
                name: Forward.start(address, port)
                for name, port in (("pg", database.port or 5432), ("broker", hub.broker.port), ("s3", _s3_port()))
            }
            for forward in relay.values():
                hub._stack.callback(forward.stop)
            env = hub_child_env(
                tmp_path,
                database.set(host=address, port=relay["pg"].port).render_as_string(hide_password=False),
                s3_store_url,
                **{
                    **{name: value for name, value in hub.worker_env.items() if name.startswith("AWS_")},
                    "HUB_RUN_LAUNCHER": "celery",
                    "HUB_BROKER_URL": f"redis://{address}:{relay['broker'].port}/0",
                    "AWS_ENDPOINT_URL": f"http://{address}:{relay['s3'].port}",
                    # 100 writes in flight through socat to moto's server were reset ("Connection
                    # reset by peer", every retry): the relay, not the hub, is what runs out here.
                    "HUB_OBJECTS_IN_FLIGHT": "8",
                },
            )
            worker = hub.add_worker(prefix=("ip", "netns", "exec", namespace), env=env)
            assert remote_addresses(worker.process.pid) == {address}, "the worker reaches its services over the veth"
        index_twenty_pushes_on_two_workers(hub)
        for worker, address in zip(hub.workers, placed.values(), strict=True):
            assert remote_addresses(worker.process.pid) == {address}


def _s3_port() -> int:
    return int(os.environ["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
