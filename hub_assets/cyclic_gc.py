"""The cyclic garbage collector paused around work that makes many long-lived containers and no
cycles: each of its passes walks every container made since the last, for nothing."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Whether this process has set objects aside with `freeze` (a forked child inherits both them and
# this). Asked instead of gc.get_freeze_count(), which walks every frozen object to count them:
# 25 ms after the CLI's imports, on every decode of its run.
_frozen = False


@contextmanager
def cyclic_gc_paused(*, freeze: bool = False, promote: bool = False) -> Iterator[None]:
    """The collector off inside, and left as it was found afterwards (off when another caller
    had it paused; a concurrent caller may resume it early, which only costs time).

    With `freeze`, what exists at the end is set aside for good (`gc.freeze`): no later
    collection, nor the interpreter's at exit, walks it again, and none of it is ever collected.
    With `promote`, what exists when the block completes moves to the oldest generation unwalked
    (a freeze undone at once): the youngest generation's next collection, triggered by the first
    allocation after the block, would otherwise walk everything the block made only to promote
    it. A block that fails promotes nothing (what it made is garbage, cycles included, for the
    young collection to take). Skipped once the process has frozen objects with `freeze`, which
    undoing the freeze would thaw."""
    global _frozen
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if promote and not _frozen:
            gc.freeze()
            gc.unfreeze()
    finally:
        if freeze:
            gc.freeze()
            _frozen = True
        if enabled:
            gc.enable()
