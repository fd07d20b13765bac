"""The cyclic garbage collector paused around work that makes many long-lived containers and no
cycles: each of its passes walks every container made since the last, for nothing."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused(*, freeze: bool = False, promote: bool = False) -> Iterator[None]:
    """The collector off inside, and left as it was found afterwards (off when another caller
    had it paused; a concurrent caller may resume it early, which only costs time).

    With `freeze`, what exists at the end is set aside for good (`gc.freeze`): no later
    collection, nor the interpreter's at exit, walks it again, and none of it is ever collected.
    With `promote`, what exists at the end moves to the oldest generation unwalked (a freeze
    undone at once): the youngest generation's next collection, triggered by the first
    allocation after the block, would otherwise walk everything the block made only to promote
    it. Skipped while the process keeps objects frozen, since undoing the freeze would thaw them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        elif promote and gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()
