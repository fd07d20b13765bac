"""The collector paused around a block: restored as found, and with `freeze` what the block made
is set aside (the CLI's imports of Dagster)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from hub_assets.cyclic_gc import cyclic_gc_paused


@pytest.fixture
def gc_restored() -> Iterator[None]:
    was = gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("freeze", [True, False])
def test_the_collector_is_off_inside_and_as_it_was_after(gc_restored: None, enabled: bool, freeze: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    with pytest.raises(LookupError), cyclic_gc_paused(freeze=freeze):
        assert not gc.isenabled()
        raise LookupError("a failure inside leaves it as it was too")
    assert gc.isenabled() == enabled


def test_freeze_sets_aside_what_the_block_made(gc_restored: None) -> None:
    gc.unfreeze()
    with cyclic_gc_paused(freeze=True):
        made = [[n] for n in range(1000)]
    assert gc.get_freeze_count() >= len(made)
    gc.unfreeze()
    with cyclic_gc_paused():
        made = [[n] for n in range(1000)]
    assert gc.get_freeze_count() == 0
