"""When a status change may wait (core.hold): a workload's progress, a Pod pipeline's step handover."""

from __future__ import annotations

from typing import Any

from initpipeline.core.hold import HANDOVER_HOLD, PROGRESS_WRITE_INTERVAL, handover_only, progress_only, write_hold
from tests.unit.pods import STEPS, crash_looping, done, image_pull_backoff, pending, pod, running, status_of


def test_progress_only_is_a_change_of_counts_and_their_words() -> None:
    assert progress_only(_rollout_status(1), _rollout_status(2))


def test_a_phase_a_condition_or_a_step_state_is_a_milestone() -> None:
    before = _rollout_status(2)
    assert not progress_only(before, _rollout_status(3, phase="Running"))
    assert not progress_only(before, _rollout_status(3, ready_condition="True"))
    assert not progress_only(before, _rollout_status(3, step_state="Succeeded"))
    assert not progress_only({}, _rollout_status(0))  # the first status of all


def test_a_step_handing_over_to_the_next_is_a_handover() -> None:
    first = status_of(_at(0))
    assert handover_only({}, first)  # a new Pod, nothing started yet
    running_first = status_of(_at(0, "running"), first)
    assert not handover_only(first, running_first)  # a step started: news
    handing_over = status_of(_at(1), running_first)
    assert handover_only(running_first, handing_over)
    # a short step that started and ended between two looks hands over too
    assert handover_only(first, status_of(_at(1), first))


def test_trouble_regressions_and_milestones_are_never_a_handover() -> None:
    running_first = status_of(_at(0, "running"))
    stuck = status_of(pod("Pending", [done(STEPS[0]), image_pull_backoff(STEPS[1]), pending(STEPS[2]),
                                      pending(STEPS[3])]), running_first)
    assert not handover_only(running_first, stuck)
    assert not handover_only({}, status_of(pod("Pending", [], scheduled=False)))  # unschedulable
    crashed = status_of(pod("Pending", [crash_looping(STEPS[0])] + [pending(n) for n in STEPS[1:]]))
    assert not handover_only({}, crashed)
    # the Pod was deleted and made anew: the first step waits again after it had run
    assert not handover_only(running_first, status_of(_at(0), running_first))
    # a new generation's Pod: everything starts over, written at once
    newer = status_of(_at(0))
    newer["observedGeneration"] = 3
    assert not handover_only(status_of(_at(1), running_first), newer)
    # the last step done: Initialized flips
    all_done = status_of(pod("Pending", [done(n) for n in STEPS]), status_of(_at(3, "running")))
    assert not handover_only(status_of(_at(3, "running")), all_done)


def _rollout_status(ready: int, phase: str = "Initializing", ready_condition: str = "False",
                    step_state: str = "Running") -> dict[str, Any]:
    return {"phase": phase, "observedGeneration": 1, "readyReplicas": ready, "ready": f"{ready}/3",
            "message": f"rolling out: {ready}/3 ready",
            "conditions": [{"type": "Ready", "status": ready_condition, "reason": "RollingOut",
                            "message": f"{ready}/3 ready"}],
            "steps": [{"name": "wait", "state": step_state, "pods": {"done": ready, "running": 3 - ready},
                       "finishedAt": f"2026-01-01T00:00:0{ready}Z"}]}


def _at(index: int, next_state: str = "waiting") -> dict[str, Any]:
    """The Pod with the steps before `index` done and step `index` waiting (or running)."""
    current = pending(STEPS[index]) if next_state == "waiting" else running(STEPS[index])
    return pod("Pending", [done(n) for n in STEPS[:index]] + [current] + [pending(n) for n in STEPS[index + 1:]])


def test_the_rule_holds_progress_and_handovers_for_their_time_only() -> None:
    """write_hold with the time as an argument: what the controller asks before each status write."""
    before, more = _rollout_status(1), _rollout_status(2)
    assert write_hold(False, before, more, now=10.0, last_write=9.5, held_since=None).wait == 0.5
    assert write_hold(False, before, more, now=11.0, last_write=9.5, held_since=None).wait <= 0
    assert write_hold(False, before, _rollout_status(2, phase="Running"), 10.0, 9.9, None).wait == 0
    running_first = status_of(_at(0, "running"))
    handing_over = status_of(_at(1), running_first)
    first = write_hold(True, running_first, handing_over, now=50.0, last_write=None, held_since=None)
    assert (first.wait, first.held_since) == (HANDOVER_HOLD, 50.0)
    later = write_hold(True, running_first, handing_over, now=51.5, last_write=None, held_since=first.held_since)
    assert later.held_since == 50.0 and later.wait == HANDOVER_HOLD - 1.5  # the hold does not start over
    news = write_hold(True, running_first, status_of(_at(1, "running"), running_first), 51.5, None, 50.0)
    assert (news.wait, news.held_since) == (0, None)
    assert PROGRESS_WRITE_INTERVAL == 1.0
