"""The collector paused around a block: restored as found; with `freeze` what the block made is set
aside (the CLI's imports of Dagster), with `promote` it moves to the oldest generation unwalked (a
decoded bundle)."""

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


# The promote tests start with the collector off (the fixture restores it), so no automatic
# collection moves the objects between generations while they are looked for.


def _in_generation(generation: int, made: list[list[int]]) -> bool:
    ids = {id(item) for item in gc.get_objects(generation=generation)}
    return all(id(item) in ids for item in made)


def test_promote_moves_what_the_block_made_to_the_oldest_generation_unfrozen(gc_restored: None) -> None:
    gc.disable()
    gc.unfreeze()
    with cyclic_gc_paused(promote=True):
        made = [[n] for n in range(1000)]
    assert gc.get_freeze_count() == 0
    assert _in_generation(2, made)
    assert not _in_generation(0, made)


def test_promote_leaves_a_freeze_of_the_process_alone(gc_restored: None) -> None:
    gc.disable()
    gc.unfreeze()
    kept = [[n] for n in range(100)]
    gc.freeze()
    frozen = gc.get_freeze_count()
    with cyclic_gc_paused(promote=True):
        made = [[n] for n in range(1000)]
    # Not thawed, and what the block made not frozen with it (a frozen object can still be freed,
    # so the count may drop a little meanwhile), nor promoted.
    assert frozen // 2 < gc.get_freeze_count() <= frozen
    assert not _in_generation(2, made)
    assert kept
