"""reconcile() against the caches' view, with the cluster's writes recorded (no API server)."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry

from initpipeline.metrics import Metrics
from initpipeline.reconcile import Cluster
from initpipeline.reconcile import reconcile as run_reconcile
from tests.cases import shop
from tests.unit.pods import STEPS, T0, pending, pod, running

Obj = dict[str, Any]
LOG = logging.getLogger("test")


class RecordingCluster(Cluster):
    """Every write is recorded; a read would fail the test (the caches must be enough)."""

    def __init__(self) -> None:
        super().__init__("runner:1", self._event, Metrics(CollectorRegistry()))
        self.writes: list[tuple[str, Any]] = []

    def _event(self, body: Obj, etype: str, reason: str, message: str) -> None:
        self.writes.append(("event", reason))

    def create_pod(self, pod: Obj) -> tuple[Obj, bool]:
        self.writes.append(("create", pod["metadata"]["name"]))
        return pod, True

    def delete_pod(self, namespace: str, name: str) -> None:
        self.writes.append(("delete", name))

    def write_status(self, namespace: str, name: str, status: Obj) -> None:
        self.writes.append(("status", status["phase"]))

    def read_pipeline(self, namespace: str, name: str) -> Obj | None:
        raise AssertionError("reconcile read the pipeline from the API")

    def list_pods(self, namespace: str, pipeline: str) -> list[Obj]:
        raise AssertionError("reconcile listed Pods from the API")


def pipeline(generation: int) -> Obj:
    doc = shop()
    doc["metadata"].update(namespace="ns", uid="u1", generation=generation)
    return doc


def owned(p: Obj, name: str) -> Obj:
    p["metadata"].update(name=name, ownerReferences=[{"kind": "InitPipeline", "uid": "u1", "name": "shop",
                                                      "apiVersion": "initpipeline.dev/v1alpha1"}])
    return p


def test_a_new_pipeline_gets_its_pod_and_a_status_without_reads() -> None:
    cluster = RecordingCluster()
    run_reconcile(cluster, "u1", lambda: (pipeline(1), []), LOG)
    assert cluster.writes[:2] == [("create", "shop-1"), ("status", "Initializing")]


def test_unchanged_status_is_not_written_again() -> None:
    cluster = RecordingCluster()
    stepping = owned(pod("Pending", [running(STEPS[0], T0), pending(STEPS[1]), pending(STEPS[2]),
                                     pending(STEPS[3])]), "shop-1")
    run_reconcile(cluster, "u1", lambda: (pipeline(1), [stepping]), LOG)
    assert [w for w in cluster.writes if w[0] == "status"] == [("status", "Initializing")]
    cluster.writes.clear()
    # the cached pipeline still has no status (the watch is behind): the operator's memory counts
    run_reconcile(cluster, "u1", lambda: (pipeline(1), [stepping]), LOG)
    assert cluster.writes == []


def test_a_new_generation_replaces_the_old_pod() -> None:
    cluster = RecordingCluster()
    old = owned(pod("Running", []), "shop-1")
    run_reconcile(cluster, "u1", lambda: (pipeline(2), [old]), LOG)
    assert ("delete", "shop-1") in cluster.writes and ("create", "shop-2") in cluster.writes


def test_a_stale_cache_never_acts_on_an_older_spec() -> None:
    cluster = RecordingCluster()
    run_reconcile(cluster, "u1", lambda: (pipeline(2), []), LOG)
    cluster.writes.clear()
    run_reconcile(cluster, "u1", lambda: (pipeline(1), []), LOG)  # a handler that saw generation 1
    assert cluster.writes == []
