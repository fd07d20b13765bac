"""CI: install the project on the newest supported Python on this machine and run a smoke through the CLI.

    .venv/bin/python .ci/newest_python_smoke.py

Finds interpreters under pyenv (`$PYENV_ROOT/versions/*/bin/python`) and `python3.N` on PATH, keeps those
that `requires-python` admits and that are newer than the one running this, and installs the project
into `.venv-3.N` with the newest. Without one it says so in one line and exits 0. Then, in that venv
(`--smoke`): every fixture bundle is pushed and indexed (`hub-assets push --index`), listed as indexed
(`hub-assets status`) and cloned back (`hub-assets clone`), and each clone must hold the same commits,
manifests and object bytes as the bundle pushed. The hub runs on the embedded defaults under a scratch
HUB_HOME, as a new user's first `hub-assets` does, so the embedded PostgreSQL package is exercised too.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = REPO_ROOT / "hub_assets_tests" / "fixtures"
# Python 2 too may be among pyenv's versions: no print function, so one write of a fixed format.
_PROBE = "import sys; sys.stdout.write('%d.%d.%d %s' % (tuple(sys.version_info[:3]) + (sys.executable,)))"
_PIP_QUIET = ["--quiet", "--disable-pip-version-check", "--progress-bar", "off"]


def _candidates() -> list[str]:
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = sorted(glob.glob(str(pyenv_root / "versions" / "*" / "bin" / "python")))
    minors = range(sys.version_info.minor + 1, sys.version_info.minor + 10)
    return found + [path for minor in minors if (path := shutil.which(f"python3.{minor}"))]


def _version_of(interpreter: str) -> tuple[Version, str] | None:
    """(version, real executable) of `interpreter`, or None if it does not run (e.g. a pyenv shim of a
    version that is not selected)."""
    try:
        done = subprocess.run([interpreter, "-c", _PROBE], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    if done.returncode != 0:
        return None
    version, executable = done.stdout.split(maxsplit=1)
    return Version(version), executable.strip()


def newest_python(requires_python: SpecifierSet, than: Version) -> tuple[Version, str] | None:
    """The newest interpreter that `requires_python` admits and whose minor version is newer than `than`'s."""
    versions = {found for candidate in _candidates() if (found := _version_of(candidate))}
    eligible = [(v, exe) for v, exe in versions if v in requires_python and v.release[:2] > than.release[:2]]
    return max(eligible, default=None)


def _run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(part) for part in command], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        sys.exit(f"smoke: `{' '.join(map(str, command))}` failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def install_and_smoke() -> None:
    requires = SpecifierSet(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    running = Version(".".join(map(str, sys.version_info[:3])))
    newest = newest_python(requires, running)
    if newest is None:
        print(f"ci: no Python newer than {running} within requires-python {requires} here: newest-Python smoke skipped")
        return
    version, interpreter = newest
    venv = REPO_ROOT / f".venv-{version.major}.{version.minor}"
    started = time.monotonic()
    if not (venv / "bin" / "python").exists():
        _run(interpreter, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", *_PIP_QUIET, "-e", REPO_ROOT)
    print(f"ci: newest-Python smoke on {version} ({interpreter}), installed in {time.monotonic() - started:.1f} s")
    subprocess.run([venv / "bin" / "python", __file__, "--smoke"], check=True)


def _bundle_contents(data: bytes, name: str) -> tuple[object, ...]:
    """What a clone must reproduce: commits, resolved manifests and object bytes, whatever the layout."""
    from hub_assets.bundle import EmptyCatalog, Limits, decode_bundle, decoded_bytes

    bundle = decode_bundle(
        io.BytesIO(data),
        bundle_key=hashlib.sha256(data).hexdigest(),
        name=name,
        limits=Limits(),
        catalog=EmptyCatalog(),
    )
    return (
        {c.commit_id: c for c in bundle.commits},
        {s.snapshot_id: s.manifest for s in bundle.snapshots},
        {o.object_id: decoded_bytes(o) for o in bundle.objects},
    )


def smoke() -> None:
    from hub_assets.embedded_postgres import stop_server

    fixtures = sorted(FIXTURES_DIR.glob("*.bundle"))
    cli = Path(sys.executable).parent / "hub-assets"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hub-smoke-") as scratch:
        home = Path(scratch) / "hub"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_", "AWS_"))}
        env["HUB_HOME"] = str(home)
        try:
            for fixture in fixtures:
                repo = fixture.stem
                pushed = json.loads(
                    _run(cli, "push", fixture, "--repo", repo, "--branch", "main", "--index", "--json", env=env)
                )
                clone = Path(scratch) / f"{repo}.clone"
                _run(cli, "clone", "--repo", repo, "--branch", "main", clone, env=env)
                if _bundle_contents(clone.read_bytes(), clone.name) != _bundle_contents(
                    fixture.read_bytes(), fixture.name
                ):
                    sys.exit(f"smoke: the clone of {repo}/main differs from {fixture.name}")
                print(f"smoke: {fixture.name} pushed as {pushed['partition_key']}, indexed, cloned back identical")
            status = json.loads(_run(cli, "status", "--json", env=env))
            if sorted((s["repo_id"], s["status"]) for s in status) != [(f.stem, "indexed") for f in fixtures]:
                sys.exit(f"smoke: status lists {status}")
        finally:
            stop_server(home / "postgres")
    print(f"smoke: {len(fixtures)} fixtures on Python {sys.version.split()[0]} in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="run the smoke with this interpreter (its venv)")
    if parser.parse_args().smoke:
        smoke()
    else:
        install_and_smoke()
