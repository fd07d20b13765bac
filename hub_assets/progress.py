"""A one-line progress bar on stderr, for the long steps of the demo."""

import sys
import time


class Progress:
    def __init__(self, label: str, width: int = 30) -> None:
        self.label = label
        self.width = width
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{self.label:<28} [{bar}] {done}/{total}{end}")
        sys.stderr.flush()
