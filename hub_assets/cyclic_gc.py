"""The cyclic garbage collector paused around work that makes many long-lived containers and no
cycles: each of its passes walks every container made since the last, for nothing."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused(*, freeze: bool = False) -> Iterator[None]:
    """The collector off inside, and left as it was found afterwards (off when another caller
    had it paused; a concurrent caller may resume it early, which only costs time). With
    `freeze`, what exists at the end is set aside for good (`gc.freeze`): no later collection,
    nor the interpreter's at exit, walks it again, and none of it is ever collected."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()
