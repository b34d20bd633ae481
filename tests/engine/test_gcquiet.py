"""quiet_gc: fewer collections inside, the settings as they were after, nested use."""

from __future__ import annotations

import gc

from strongroom.engine.gcquiet import GEN0_THRESHOLD, quiet_gc


def test_thresholds_rise_inside_and_come_back_after():
    before = gc.get_threshold()
    with quiet_gc():
        inside = gc.get_threshold()
        assert inside[0] >= GEN0_THRESHOLD and gc.get_freeze_count() > 0
        with quiet_gc():  # an overlapping backup leaves them as they are
            assert gc.get_threshold() == inside
        assert gc.get_threshold() == inside
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_cyclic_garbage_is_still_collected():
    class Node:
        pass

    with quiet_gc():
        a, b = Node(), Node()
        a.other, b.other = b, a
        del a, b
        assert gc.collect() >= 2


def test_settings_come_back_after_an_error():
    before = gc.get_threshold()
    try:
        with quiet_gc():
            raise RuntimeError("walk failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
