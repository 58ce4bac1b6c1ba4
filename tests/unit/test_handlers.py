"""The work-queue pass of handlers: retries after failures, with the caches as plain mappings."""

from __future__ import annotations

import datetime as dt
from typing import Any

from initpipeline.handlers import INDEXES, RETRY_DELAY_MAX, _work, retry_delay
from initpipeline.reconcile import RETRY_KEY
from tests.unit.test_reconcile import RecordingCluster, pipeline

Obj = dict[str, Any]


class FlakyCluster(RecordingCluster):
    """The Pod create fails unexpectedly while `broken` is set."""

    broken = True

    def create_pod(self, pod: Obj) -> tuple[Obj, bool]:
        if self.broken:
            raise RuntimeError("the API server answered 500")
        return super().create_pod(pod)


def retry_in(cluster: RecordingCluster) -> float:
    due = cluster.alarms.pending()[RETRY_KEY + "u1"]
    return (due - dt.datetime.now(dt.UTC)).total_seconds()


def test_retries_after_unexpected_failures_back_off_and_reset_on_success() -> None:
    cluster = FlakyCluster()
    indexes: dict[str, Any] = {name: {} for name in INDEXES}
    indexes["pipelines_by_uid"] = {"u1": [pipeline(1)]}
    waits = []
    for _ in range(3):
        _work(cluster, indexes, "u1")
        waits.append(retry_in(cluster))
    assert 9 < waits[0] <= 10 and 19 < waits[1] <= 20 and 39 < waits[2] <= 40
    cluster.broken = False
    _work(cluster, indexes, "u1")
    assert ("create", "shop-1") in cluster.writes
    assert RETRY_KEY + "u1" not in cluster.alarms.pending() and "u1" not in cluster.failures


def test_the_backoff_has_a_ceiling() -> None:
    assert [retry_delay(n) for n in (1, 2, 3)] == [10, 20, 40]
    assert retry_delay(6) == retry_delay(60) == retry_delay(10**6) == RETRY_DELAY_MAX
