"""How soon a wait step asks a target again, by what the target last said (pure)."""

from __future__ import annotations

import pytest

from initpipeline.steps.services import Pace, failed
from initpipeline.steps.wait import NOT_YET_INTERVAL, REFUSED_INTERVAL, next_interval


def test_a_refused_connection_is_asked_again_at_the_fast_pace_whatever_the_wait() -> None:
    assert next_interval(Pace.REFUSED, backoff=0.8, waited=600, max_interval=1) == REFUSED_INTERVAL


@pytest.mark.parametrize(("waited", "expected"), [(0, 0.2), (6, 0.3), (30, 0.7), (48, 1.0), (600, 1.0)])
def test_a_not_yet_answer_slows_by_a_second_a_minute_up_to_max_interval(waited: float, expected: float) -> None:
    assert next_interval(Pace.NOT_YET, backoff=0.1, waited=waited, max_interval=1) == pytest.approx(expected)


def test_a_low_max_interval_caps_the_not_yet_pace_too() -> None:
    assert next_interval(Pace.NOT_YET, backoff=0.1, waited=0, max_interval=0.1) == 0.1
    assert NOT_YET_INTERVAL > REFUSED_INTERVAL


def test_other_failures_keep_their_back_off() -> None:
    assert next_interval(Pace.BACK_OFF, backoff=0.4, waited=1, max_interval=1) == 0.4


def test_pace_of_a_classified_failure() -> None:
    assert failed("connection refused").pace is Pace.REFUSED
    assert failed("timed out").pace is Pace.BACK_OFF
