"""The plan of a Pod pipeline's pass: the steps' deadline as a moment."""

from __future__ import annotations

import datetime as dt

from initpipeline.core.pod_plan import steps_deadline
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
