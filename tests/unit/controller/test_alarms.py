"""The steps' deadline as a moment, and the alarms that act on it (no per-pipeline polling)."""

from __future__ import annotations

import datetime as dt
import threading

from initpipeline.controller.alarms import Alarms


def test_alarms_fire_in_order_and_can_be_moved_or_cancelled() -> None:
    alarms = Alarms()
    fired: list[str] = []
    all_done = threading.Event()
    now = dt.datetime.now(dt.UTC)

    def note(name: str) -> None:
        fired.append(name)
        if name == "last":
            all_done.set()

    alarms.at(now + dt.timedelta(milliseconds=300), "b", lambda: note("b"))
    alarms.at(now + dt.timedelta(milliseconds=100), "a", lambda: note("a"))
    alarms.at(now + dt.timedelta(milliseconds=150), "gone", lambda: note("gone"))
    alarms.cancel("gone")
    alarms.at(now + dt.timedelta(seconds=60), "moved", lambda: note("moved"))
    alarms.at(now + dt.timedelta(milliseconds=200), "moved", lambda: note("moved"))  # brought forward
    alarms.at(now + dt.timedelta(milliseconds=400), "last", lambda: note("last"))
    assert all_done.wait(10)
    assert fired == ["a", "moved", "b", "last"]
    assert alarms.pending() == {}


def test_a_failing_action_does_not_stop_the_alarms() -> None:
    alarms = Alarms()
    later = threading.Event()

    def fail() -> None:
        raise RuntimeError("boom")

    now = dt.datetime.now(dt.UTC)
    alarms.at(now, "bad", fail)
    alarms.at(now + dt.timedelta(milliseconds=50), "good", later.set)
    assert later.wait(10)
