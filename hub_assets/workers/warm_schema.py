"""Imported once by the run workers' forkserver (local.WARM_MODULES, last): asks the instance
database's schema probes an index run asks, then closes its connections, so that every run forked
afterwards knows the answers (~65 ms of reflection queries a run, most inside the run window,
measured 2026-12-02) and inherits no open connection.

An import with effects, because importing is the one thing a multiprocessing forkserver does
before it forks. Where it cannot (the database not reachable yet, no DAGSTER_HOME), it says so
once and the runs ask for themselves, as before.
"""

import logging

import dagster as dg

from ..instance.storage import learn_schema

log = logging.getLogger(__name__)


def _learn() -> None:
    try:
        with dg.DagsterInstance.get() as instance:
            learn_schema(instance)
    except Exception as error:
        log.warning("run workers will ask the instance's schema themselves: %s", error)


_learn()
