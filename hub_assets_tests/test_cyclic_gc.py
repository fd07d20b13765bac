"""The collector paused around a block: restored as found; with `freeze` what the block made is set
aside (the CLI's imports of Dagster), with `promote` it moves to the oldest generation unwalked (a
decoded bundle)."""

from __future__ import annotations

import gc

import pytest

from hub_assets.cyclic_gc import cyclic_gc_paused


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("freeze", [True, False])
def test_the_collector_is_off_inside_and_as_it_was_after(collector_off: None, enabled: bool, freeze: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    with pytest.raises(LookupError), cyclic_gc_paused(freeze=freeze):
        assert not gc.isenabled()
        raise LookupError("a failure inside leaves it as it was too")
    assert gc.isenabled() == enabled


def test_freeze_sets_aside_what_the_block_made(collector_off: None) -> None:
    with cyclic_gc_paused(freeze=True):
        made = [[n] for n in range(1000)]
    assert gc.get_freeze_count() >= len(made)
    gc.unfreeze()
    with cyclic_gc_paused():
        made = [[n] for n in range(1000)]
    assert gc.get_freeze_count() == 0


def _in_generation(generation: int, made: list[list[int]]) -> bool:
    ids = {id(item) for item in gc.get_objects(generation=generation)}
    return all(id(item) in ids for item in made)


def test_promote_moves_what_the_block_made_to_the_oldest_generation_unfrozen(collector_off: None) -> None:
    with cyclic_gc_paused(promote=True):
        made = [[n] for n in range(1000)]
    assert gc.get_freeze_count() == 0
    assert _in_generation(2, made)
    assert not _in_generation(0, made)


def test_a_failed_block_promotes_nothing(collector_off: None) -> None:
    made: list[list[int]] = []
    with pytest.raises(LookupError), cyclic_gc_paused(promote=True):
        made.extend([n] for n in range(1000))
        raise LookupError("refused halfway")
    assert _in_generation(0, made)
    assert not _in_generation(2, made)


def test_promote_leaves_a_freeze_of_the_process_alone(collector_off: None) -> None:
    kept = [[n] for n in range(100)]  # referenced to the end: what the freeze set aside stays counted
    with cyclic_gc_paused(freeze=True):
        pass
    frozen = gc.get_freeze_count()
    with cyclic_gc_paused(promote=True):
        made = [[n] for n in range(1000)]
    # Not thawed, and what the block made neither frozen with it nor promoted (a frozen object
    # can still be freed by its count, so the freeze count may drop a little meanwhile).
    assert frozen // 2 < gc.get_freeze_count() <= frozen
    assert not _in_generation(2, made)
    assert len(kept) == 100
