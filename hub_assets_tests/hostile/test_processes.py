"""`run_measured` measures the command alone, however large the test process has grown."""

from __future__ import annotations

import sys
from pathlib import Path

from .processes import run_measured

MIB = 1 << 20


def test_peak_rss_is_the_commands_own_not_the_test_processes(tmp_path: Path) -> None:
    ballast = bytearray(600 * MIB)
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # touch every page: resident, not just reserved

    done = run_measured(
        [sys.executable, "-c", "import sys; sys.stdout.write('x' * 3); sys.exit(3)"], {}, tmp_path / "small"
    )
    grown = run_measured(
        [sys.executable, "-c", "b = bytearray(200 << 20); b[::4096] = b'1' * len(b[::4096])"], {}, tmp_path / "big"
    )

    assert (done.returncode, done.stdout) == (3, "xxx")
    assert done.peak_rss_bytes < 100 * MIB < len(ballast), done.peak_rss_bytes
    assert 200 * MIB < grown.peak_rss_bytes < 300 * MIB, grown.peak_rss_bytes
