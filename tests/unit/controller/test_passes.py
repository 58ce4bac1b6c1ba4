"""A work-queue pass (passes.run_pass) and the first event that starts the queue: retries after failures,
with the caches as plain mappings."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import kopf

from initpipeline.controller.context import RETRY_KEY, WRITE_KEY
from initpipeline.controller.handlers import on_pipeline
from initpipeline.controller.passes import INDEXES, RETRY_DELAY_MAX, Caches, retry_delay, run_pass
from tests.unit.controller.fakes import Recording, RecordingClient, owned, pipeline
from tests.unit.pods import STEPS, pending, pod

Obj = dict[str, Any]


class FlakyClient(RecordingClient):
    """The Pod create fails unexpectedly while `broken` is set."""

    broken = True

    def create_pod(self, pod: Obj) -> tuple[Obj, bool]:
        if self.broken:
            raise RuntimeError("the API server answered 500")
        return super().create_pod(pod)


def retry_in(cluster: Recording) -> float:
    due = cluster.alarms.pending()[RETRY_KEY + "u1"]
    return (due - cluster.clock()).total_seconds()  # the fake clock stands still


def test_retries_after_unexpected_failures_back_off_and_reset_on_success() -> None:
    flaky = FlakyClient()
    cluster = Recording(flaky)
    indexes: dict[str, Any] = {name: {} for name in INDEXES}
    indexes["pipelines_by_uid"] = {"u1": [pipeline(1)]}
    waits = []
    for _ in range(3):
        run_pass(cluster, Caches(indexes), "u1")
        waits.append(retry_in(cluster))
    assert waits == [10, 20, 40]
    flaky.broken = False
    run_pass(cluster, Caches(indexes), "u1")
    assert ("create", "shop-1") in cluster.writes
    assert RETRY_KEY + "u1" not in cluster.alarms.pending() and cluster.memory["u1"].failures == 0


def test_the_backoff_has_a_ceiling() -> None:
    assert [retry_delay(n) for n in (1, 2, 3)] == [10, 20, 40]
    assert retry_delay(6) == retry_delay(60) == retry_delay(10**6) == RETRY_DELAY_MAX


class DeletedMidPass(RecordingClient):
    """The pipeline's DELETED event arrives while the pass writes its status: kopf drops it from the index
    and the handler forgets it, before the pass stores what it wrote."""

    def __init__(self, indexes: dict[str, Any]) -> None:
        super().__init__()
        self.indexes = indexes
        self.controller: Recording | None = None

    def write_status(self, namespace: str, name: str, status: Obj) -> None:
        super().write_status(namespace, name, status)
        self.indexes["pipelines_by_uid"].pop("u1")
        assert self.controller is not None
        self.controller.forget("u1", "ns", "shop")


def test_a_pipeline_deleted_during_its_pass_leaves_nothing_behind() -> None:
    indexes: dict[str, Any] = {name: {} for name in INDEXES}
    indexes["pipelines_by_uid"] = {"u1": [pipeline(1)]}
    lonely = owned(pod("Pending", [pending(s) for s in STEPS], scheduled=False), "shop-1")
    indexes["pods_by_owner"] = {"u1": [lonely]}
    client = DeletedMidPass(indexes)
    cluster = client.controller = Recording(client)
    run_pass(cluster, Caches(indexes), "u1")
    assert ("status", "Pending") in cluster.writes
    assert "u1" not in cluster.memory  # what was written, the generation, the times, failures and holds
    assert not [key for key in cluster.alarms.pending() if key.endswith("u1")]
    assert cluster.metrics.registry.get_sample_value("initpipeline_pipelines", {"phase": "Pending"}) == 0


def test_a_held_first_status_keeps_its_alarm_while_the_pipeline_exists() -> None:
    indexes: dict[str, Any] = {name: {} for name in INDEXES}
    indexes["pipelines_by_uid"] = {"u1": [pipeline(1)]}
    indexes["pods_by_owner"] = {"u1": [owned(pod("Pending", [pending(s) for s in STEPS]), "shop-1")]}
    cluster = Recording()
    run_pass(cluster, Caches(indexes), "u1")
    assert cluster.writes == [] and WRITE_KEY + "u1" in cluster.alarms.pending()


def test_the_first_event_starts_as_many_reconcile_threads_as_configured() -> None:
    cluster = Recording(reconcile_threads=3)
    indexes: dict[str, Any] = {name: {} for name in INDEXES}
    before = set(threading.enumerate())
    body = {"metadata": {"uid": "u1", "namespace": "ns", "name": "shop"}}
    asyncio.run(on_pipeline(type="ADDED", body=body, memo=kopf.Memo(controller=cluster), **indexes))
    started = set(threading.enumerate()) - before  # threads, not names: other tests' queues run too
    assert sum(t.name.startswith("initpipeline-reconcile-") for t in started) == 3
    assert cluster.queue.wait_idle(5)
