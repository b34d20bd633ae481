"""Throttled progress: at most one call per interval, the last numbers always."""

from __future__ import annotations

import threading

from strongroom.engine import progress
from strongroom.engine.progress import Throttled


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


def test_one_call_per_interval_and_the_final_one_always(monkeypatch):
    clock = _Clock(1000.0)
    monkeypatch.setattr(progress, "time", clock)
    seen: list[int] = []
    report = Throttled(seen.append, interval=0.2)
    report(1)
    clock.now += 0.1
    report(2)
    report(3)
    clock.now += 0.15
    report(4)
    report(5)
    report.final(6)
    clock.now += 0.1
    report(7)  # within the interval after the final call
    clock.now += 0.2
    report(8)
    assert seen == [1, 4, 6, 8]


def test_threads_calling_at_once_get_one_call_per_interval(monkeypatch):
    clock = _Clock(1000.0)
    monkeypatch.setattr(progress, "time", clock)
    seen: list[int] = []
    report = Throttled(seen.append, interval=0.2)
    start = threading.Barrier(8)

    def calls(n: int) -> None:
        start.wait()
        for _ in range(2000):
            report(n)

    threads = [threading.Thread(target=calls, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 1  # the clock never moved: one call in all


def test_no_callback_does_nothing():
    Throttled(None)(1)
    Throttled(None).final(1)
