"""Copies of large byte runs without the GIL give the bytes a slice assignment gives."""

from __future__ import annotations

import os

import pytest

from strongroom.bulkcopy import LARGE, copy_into, move_within


@pytest.mark.parametrize("size", [0, 1, LARGE - 1, LARGE, 3 * LARGE + 5])
@pytest.mark.parametrize("source", [bytes, bytearray, memoryview])
def test_copy_into_writes_the_range_only(size, source):
    data = os.urandom(size)
    src = memoryview(bytearray(data)) if source is memoryview else source(data)
    dst = bytearray(b"\xaa" * (size + 20))
    assert copy_into(dst, 7, src) == 7 + size
    assert dst[7:7 + size] == data
    assert dst[:7] == b"\xaa" * 7 and dst[7 + size:] == b"\xaa" * 13
    assert len(dst) == size + 20


def test_copy_into_a_view_of_a_larger_buffer():
    data = os.urandom(2 * LARGE)
    backing = bytearray(4 * LARGE)
    copy_into(memoryview(backing)[LARGE:3 * LARGE + 1], 1, memoryview(bytearray(data)))
    assert backing[LARGE + 1:3 * LARGE + 1] == data
    assert not any(backing[:LARGE + 1]) and not any(backing[3 * LARGE + 1:])


def test_copy_beyond_the_end_is_refused_and_writes_nothing():
    dst = bytearray(LARGE)
    with pytest.raises(ValueError):
        copy_into(dst, 1, bytes(LARGE))
    assert len(dst) == LARGE


@pytest.mark.parametrize("n", [10, LARGE, 2 * LARGE + 3])
def test_move_within_overlapping_ranges(n):
    data = bytearray(os.urandom(3 * n))
    expected = bytearray(data)
    expected[0:2 * n] = bytes(expected[n // 2:n // 2 + 2 * n])
    move_within(data, 0, n // 2, n // 2 + 2 * n)
    assert data == expected
    backward = bytearray(os.urandom(3 * n))
    expected = bytearray(backward)
    expected[n:3 * n] = bytes(expected[0:2 * n])
    move_within(backward, n, 0, 2 * n)
    assert backward == expected


def test_move_within_refuses_ranges_outside():
    with pytest.raises(ValueError):
        move_within(bytearray(10), 5, 0, 6)

