"""The steps' deadline as a moment, and the alarms that act on it (no per-pipeline polling)."""

from __future__ import annotations

import datetime as dt
import threading

from initpipeline.controller.alarms import Alarms
from initpipeline.controller.reconciler import steps_deadline
from tests.cases import shop
from tests.unit.pods import STEPS, T0, done, pending, pod, running


def test_the_deadline_falls_due_deadline_seconds_after_the_pod_started() -> None:
    doc = shop()
    doc["spec"]["activeDeadlineSeconds"] = 30
    stepping = pod("Pending", [running(STEPS[0], T0), pending(STEPS[1]), pending(STEPS[2]), pending(STEPS[3])])
    assert steps_deadline(doc, stepping) == dt.datetime(2026, 11, 22, 10, 0, 30, tzinfo=dt.UTC)


def test_no_deadline_once_it_cannot_be_overrun() -> None:
    doc = shop()
    stepping = pod("Pending", [running(STEPS[0], T0), pending(STEPS[1]), pending(STEPS[2]), pending(STEPS[3])])
    assert steps_deadline(doc, stepping) is None  # none asked for
    doc["spec"]["activeDeadlineSeconds"] = 30
    app_running = pod("Running", [done(s) for s in STEPS], initialized=True, ready=True)
    assert steps_deadline(doc, app_running) is None  # the steps are done: the app is never stopped
    stopped = pod("Pending", [running(STEPS[0], T0)])
    stopped["spec"]["activeDeadlineSeconds"] = 30
    assert steps_deadline(doc, stopped) is None  # already set on the Pod
    unscheduled = pod("Pending", [], scheduled=False)
    assert steps_deadline(doc, unscheduled) is None  # not started: no start time to count from


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
