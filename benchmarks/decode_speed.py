"""Validated decoding vs the seed's unpack + resolve + zstd (issue #13), on the reference push.

    .venv/bin/python benchmarks/decode_speed.py [--scales 1,10] [--repeats 7] [--before main] [--no-rss]

Modes, each timed on the bundle's bytes already in memory (the baseline's fetch + sha256 is not
counted; the project's modes include the sha256 of the whole bundle, which they compute anyway):

  baseline  benchmarks/baseline.py's own steps: unpack (one msgpack.unpackb) + resolve_deltas
            + decode_objects (zstd)
  index     decode_bundle as the index calls it: EmptyCatalog, object_content=True, with the key
  push      decode_bundle as a large push calls it: object_content=False, no key

decode_bundle is handed the bytes themselves, which it reads in place, as the baseline's unpack
does (a stream over them, a BytesIO, would add a copy the baseline does not make).

Every timing is one fresh process that loads the bytes and the code, then decodes once, as a run
worker does: the same mode timed over and over in one long-lived process swung with the state
of its heap (a worker's baseline at 10x took 0.65 s in one process and 1.27 s in the next,
RESULTS.md 2026-12-03 03:30). For each code version (this tree; with --before REF also that
commit's hub_assets, extracted under benchmarks/.work) and mode, `repeats` processes run,
interleaved (each round runs every version and mode once, the order reversed every other round).
Times are medians and minimums; a ratio is the median over the rounds of mode / that round's
baseline (timed once per version, the same code each time, and pooled). Peak RSS: VmHWM of a
fresh process that runs one mode once, reading the bundle as it would in production (the
baseline reads the whole file, decode_bundle streams it from an open file). Prints one table and
appends it, with the machine and date, to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from worker import peak_rss_kb  # benchmarks/ is this script's directory; it imports no hub_assets

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
MODES = ("baseline", "index", "push")


# --------------------------------------------------------------------------- worker side
# Runs with PYTHONPATH set to the code version measured: it imports hub_assets only from there
# (so not run.py, which puts this tree first on sys.path).


def _decode(stream: IO[bytes] | bytes, mode: str, bundle_key: str) -> tuple[int, int]:
    from hub_assets.bundle import EmptyCatalog, decode_bundle
    from hub_assets.settings import bundle_limits

    bundle = decode_bundle(
        stream,
        bundle_key=bundle_key if mode == "index" else None,
        name="bench",
        limits=bundle_limits(),
        catalog=EmptyCatalog(),
        object_content=mode == "index",
    )
    return len(bundle.commits), len(bundle.objects)


def _baseline(data: bytes) -> tuple[int, int]:
    import baseline

    bundle = baseline.unpack(data)
    baseline.resolve_deltas(bundle.get("snapshots", []))
    objects = baseline.decode_objects(bundle)
    return len(bundle.get("commits", [])), len(objects)


def run_mode(mode: str, data: bytes, bundle_key: str) -> tuple[int, int]:
    """(commits, objects) decoded, as a check that every mode read the whole bundle."""
    return _baseline(data) if mode == "baseline" else _decode(data, mode, bundle_key)


def time_once(mode: str, path: Path, bundle_key: str) -> None:
    """Load the bytes and the code, decode them once in `mode`; print seconds and counts as JSON."""
    for module in ("baseline", "hub_assets.bundle", "hub_assets.settings"):
        importlib.import_module(module)  # before the clock starts, for every mode alike
    import hub_assets

    data = path.read_bytes()
    started = time.perf_counter()
    counts = run_mode(mode, data, bundle_key)
    seconds = time.perf_counter() - started
    loaded = str(Path(hub_assets.__file__).parent)
    print(json.dumps({"seconds": seconds, "counts": counts, "hub_assets": loaded}), flush=True)


def peak_rss(mode: str, path: Path, bundle_key: str) -> None:
    """Run `mode` once as production reads the bundle; print VmHWM in kB."""
    if mode == "baseline":
        _baseline(path.read_bytes())
    else:
        with path.open("rb") as stream:
            _decode(stream, mode, bundle_key)
    print(peak_rss_kb())


# --------------------------------------------------------------------------- parent side


def _code_root(ref: str | None) -> Path:
    """This tree, or `ref`'s hub_assets extracted (once per commit) under benchmarks/.work."""
    if ref is None:
        return REPO
    commit = _git("rev-parse", "--short", ref)
    root = WORK / f"code-{commit}"
    if not (root / "hub_assets").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit, "hub_assets"], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def _child_output(code: Path, *args: str) -> str:
    """What this script prints when run with `args` in a fresh process on `code`'s hub_assets."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run([sys.executable, __file__, *args], env=env, text=True, stdout=subprocess.PIPE)
    if done.returncode:
        raise SystemExit(f"{' '.join(args[:2])} with {code} failed ({done.returncode})")
    return done.stdout


def _time(code: Path, mode: str, path: Path, bundle_key: str) -> tuple[float, list[int]]:
    answer = json.loads(_child_output(code, "--once", mode, str(path), bundle_key))
    # An editable install of this tree could shadow the code on PYTHONPATH: "before" would time "after".
    if not Path(answer["hub_assets"]).is_relative_to(code):
        raise SystemExit(f"timing {mode} for {code} imported hub_assets from {answer['hub_assets']}")
    return answer["seconds"], answer["counts"]


def _rss_mb(code: Path, mode: str, path: Path, bundle_key: str) -> float:
    return int(_child_output(code, "--rss", mode, str(path), bundle_key)) / 1024


def benchmark(args: argparse.Namespace) -> str:
    sys.path.insert(0, str(REPO))
    from run import append_section, code_version, ensure_bundle, machine

    versions = {"after": _code_root(None)}
    if args.before:
        versions = {"before": _code_root(args.before), **versions}
    started_at = datetime.now(UTC)
    described = machine(None, None, os.getloadavg())
    before = (
        f"; before = hub_assets of {args.before} ({_git('rev-parse', '--short', args.before)})" if args.before else ""
    )
    lines = [
        f"## {started_at:%Y-%m-%d %H:%M} UTC — validated decode vs the seed's unpack + resolve + zstd (issue #13)",
        "",
        f"- command: `python benchmarks/decode_speed.py {' '.join(sys.argv[1:])}`",
        f"- machine: {described}",
        f"- code: after = {code_version()}{before}",
        f"- {args.repeats} fresh processes per code version and mode, interleaved; median (min) seconds; "
        "ratio = median over rounds of mode / the median of that round's baselines (the baseline, which no code "
        "version changes, is timed once per version and round, and pooled); "
        "peak RSS = VmHWM of one fresh process per mode",
        "",
        "| scale | code | baseline s | index s (×) | push s (×) | peak RSS MB baseline / index / push |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for scale in [float(s) for s in args.scales.split(",")]:
        bundle = ensure_bundle(scale)
        expected = [bundle.commits, bundle.objects]
        runs = [(name, mode) for name in versions for mode in MODES]
        times: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
        for round_number in range(args.repeats):
            for name, mode in runs if round_number % 2 == 0 else reversed(runs):
                seconds, counts = _time(versions[name], mode, bundle.path, bundle.bundle_key)
                if counts != expected:
                    raise SystemExit(f"{name} {mode} decoded {counts}, not {expected} (commits, objects)")
                times[name, mode].append(seconds)
        # The baseline is benchmarks/baseline.py whatever the code version: its timings of a round
        # are pooled, so each version is judged against the same, larger sample.
        rounds = [
            statistics.median(times[name, "baseline"][round_number] for name in versions)
            for round_number in range(args.repeats)
        ]
        baseline = [seconds for name in versions for seconds in times[name, "baseline"]]
        for name, code in versions.items():
            rss = (
                " / ".join(f"{_rss_mb(code, mode, bundle.path, bundle.bundle_key):.0f}" for mode in MODES)
                if args.rss
                else "—"
            )
            cells = [f"{statistics.median(baseline):.3f} ({min(baseline):.3f})"]
            for mode in MODES[1:]:
                ratio = statistics.median(t / b for t, b in zip(times[name, mode], rounds, strict=True))
                cells.append(f"{statistics.median(times[name, mode]):.3f} ({min(times[name, mode]):.3f}) {ratio:.2f}×")
            lines.append(f"| {scale:g}× | {name} | {' | '.join(cells)} | {rss} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.no_append:
        print("\n" + text)
    else:
        append_section(args.results, text)
    return text


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--once":
        time_once(sys.argv[2], Path(sys.argv[3]), sys.argv[4])
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "--rss":
        peak_rss(sys.argv[2], Path(sys.argv[3]), sys.argv[4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,10", help="comma-separated scales of the reference push")
    parser.add_argument("--repeats", type=int, default=7, help="timed processes of each mode per code version")
    parser.add_argument("--before", help="also measure this git ref's hub_assets (e.g. main), alternating")
    parser.add_argument("--no-rss", dest="rss", action="store_false", help="skip the peak RSS processes")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="markdown file to append to")
    benchmark(parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
