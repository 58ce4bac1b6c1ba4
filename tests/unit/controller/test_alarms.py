"""The alarms on a frozen clock: what falls due, in which order, and how long the thread waits (no real
timers, as kopf's own timer tests do); then one run of the thread on the wall clock."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from initpipeline.controller.alarms import Alarms
from initpipeline.controller.context import wall_clock
from tests.unit.controller.fakes import FakeClock


def _noted(fired: list[str], name: str) -> Callable[[], None]:
    return lambda: fired.append(name)


def test_alarms_fall_due_in_order_and_can_be_moved_or_cancelled() -> None:
    clock = FakeClock()
    alarms, fired = Alarms(clock), []
    start = clock()
    alarms.at(start + dt.timedelta(milliseconds=300), "b", _noted(fired, "b"))
    alarms.at(start + dt.timedelta(milliseconds=100), "a", _noted(fired, "a"))
    alarms.at(start + dt.timedelta(milliseconds=150), "gone", _noted(fired, "gone"))
    alarms.cancel("gone")
    alarms.at(start + dt.timedelta(seconds=60), "moved", _noted(fired, "moved"))
    alarms.at(start + dt.timedelta(milliseconds=200), "moved", _noted(fired, "moved"))  # brought forward
    assert alarms.take_due() == [] and alarms.seconds_to_next() == 0.1
    clock.advance(0.1)
    for action in alarms.take_due():
        action()
    assert fired == ["a"] and alarms.seconds_to_next() == 0.1  # the cancelled one is skipped
    clock.advance(0.25)
    for action in alarms.take_due():
        action()
    assert fired == ["a", "moved", "b"]
    assert alarms.pending() == {} and alarms.seconds_to_next() is None


def test_setting_an_alarm_again_at_the_same_moment_keeps_one() -> None:
    clock = FakeClock()
    alarms, fired = Alarms(clock), []
    for _ in range(3):
        alarms.at(clock(), "k", _noted(fired, "k"))
    for action in alarms.take_due():
        action()
    assert fired == ["k"]


def test_the_thread_runs_due_actions_and_survives_a_failing_one() -> None:
    alarms = Alarms(wall_clock)
    later = threading.Event()

    def fail() -> None:
        raise RuntimeError("boom")

    now = wall_clock()
    alarms.start()
    alarms.at(now, "bad", fail)
    alarms.at(now + dt.timedelta(milliseconds=50), "good", later.set)
    assert later.wait(10)
    assert alarms.pending() == {}
