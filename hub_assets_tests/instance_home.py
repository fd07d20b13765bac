"""The Dagster instance tests run on: the one production runs on, i.e. the project's dagster.yaml
(PostgreSQL storage, run queue and tag limits, pools, run retries, run monitoring) opened as
`hub-assets` opens it, with its storage in a PostgreSQL database of its own."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from sqlalchemy.engine import make_url

from hub_assets.environment import REPO_ROOT, HubEnvironment, open_instance
from hub_assets.settings import DAGSTER_PG_URL


def instance_dir() -> tempfile.TemporaryDirectory[str]:
    """A home for a test instance's local files (compute logs), in memory where the machine has a
    tmpfs: Dagster writes them on every step."""
    shm = "/dev/shm"
    return tempfile.TemporaryDirectory(dir=shm if os.access(shm, os.W_OK) else None, prefix="hub-dagster-")


@dataclass(frozen=True)
class InstanceHome:
    """DAGSTER_HOME holding a copy of the project's dagster.yaml, and the database its storage uses."""

    dagster_home: Path
    database_url: str  # postgresql+psycopg://…, as HUB_DATABASE_URL would be

    @classmethod
    def create(cls, directory: Path, database_url: str) -> InstanceHome:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / "dagster.yaml", directory / "dagster.yaml")
        return cls(directory, database_url)

    def env(self) -> dict[str, str]:
        """The variables `hub-assets` exports for dagster.yaml's `{env: …}` settings, so a child
        process with them opens this same instance."""
        return {
            "DAGSTER_HOME": str(self.dagster_home),
            DAGSTER_PG_URL: make_url(self.database_url).set(drivername="postgresql+psycopg2").render_as_string(False),
            "HUB_DAGSTER_DIR": str(self.dagster_home / "storage"),
            "HUB_DAGSTER_LOGS": str(self.dagster_home / "logs"),
        }

    def open(self) -> dg.DagsterInstance:
        """The instance, opened by the code `hub-assets` opens it with; the variables of `env()`
        must be set (dagster.yaml reads them once, here)."""
        environment = HubEnvironment(
            home=self.dagster_home,
            database_url=self.database_url,
            store_url="",  # not part of the instance
            dagster_home=self.dagster_home,
            embedded_postgres=None,
        )
        return open_instance(environment)
