"""Where a `hub-assets` process finds its catalog, store and Dagster instance.

Unset variables fall back to embedded defaults under HUB_HOME (default ./.hub): a PostgreSQL
the project starts itself and a file:// store. Production sets the variables instead.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .embedded_postgres import ensure_database, ensure_server, stop_server
from .settings import DAGSTER_PG_URL, DATABASE_URL, OBJECT_STORE_URL, dagster_pg_url

if TYPE_CHECKING:
    import dagster as dg

REPO_ROOT = Path(__file__).resolve().parents[1]
EMBEDDED_DATABASE = "hub"


@dataclass(frozen=True)
class HubEnvironment:
    home: Path
    database_url: str
    store_url: str
    dagster_home: Path
    embedded_postgres: Path | None

    def stop_embedded_postgres(self) -> None:
        """Stop the PostgreSQL this project started, if it did; its data stays."""
        if self.embedded_postgres is not None:
            stop_server(self.embedded_postgres)


def prepare() -> HubEnvironment:
    """Resolve the configuration and export it, so Dagster's `{env: …}` settings and child
    processes (`dagster dev`, run workers) see the same values."""
    home = Path(os.environ.get("HUB_HOME") or ".hub").resolve()
    embedded = None if os.environ.get(DATABASE_URL) else home / "postgres"
    database_url = os.environ.get(DATABASE_URL) or ensure_database(ensure_server(home / "postgres"), EMBEDDED_DATABASE)
    store_url = os.environ.get(OBJECT_STORE_URL) or f"file://{home / 'store'}"
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or home / "dagster").resolve()
    defaults = {
        DATABASE_URL: database_url,
        OBJECT_STORE_URL: store_url,
        DAGSTER_PG_URL: dagster_pg_url(database_url),
        "HUB_DAGSTER_DIR": str(dagster_home / "storage"),
        "HUB_DAGSTER_LOGS": str(dagster_home / "logs"),
        "DAGSTER_HOME": str(dagster_home),
    }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    if not (dagster_home / "dagster.yaml").exists() or dagster_home == home / "dagster":
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    return HubEnvironment(home, database_url, store_url, dagster_home, embedded)


def open_instance(environment: HubEnvironment) -> dg.DagsterInstance:
    """The instance of dagster.yaml; its storage pools connections itself (hub_assets/instance).
    Dagster is imported here, not above: commands that need no instance start without it."""
    import dagster as dg

    return dg.DagsterInstance.from_config(str(environment.dagster_home))
