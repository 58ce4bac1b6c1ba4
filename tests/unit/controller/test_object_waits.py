"""waitForObject in the controller: what a pass asks to watch and tells the Pods, and the watch registry."""

from __future__ import annotations

import logging
import threading
from typing import Any

from initpipeline.controller.errors import TryAgain
from initpipeline.controller.objectwatch import ObjectWatches
from initpipeline.controller.reconciler import reconcile as run_reconcile
from initpipeline.core.children import Children
from initpipeline.core.objects import ObjectRef, Observation
from tests.unit.controller.fakes import Recording, owned, pipeline
from tests.unit.pods import T0, pending, pod, running

Obj = dict[str, Any]
LOG = logging.getLogger("test")
SEED = ObjectRef("ns", "batch/v1", "Job", "seed")


class FakeWatches:
    """The watch registry as a pass sees it: what it was asked to watch, and what was seen."""

    def __init__(self) -> None:
        self.wanted: dict[str, set[ObjectRef]] = {}
        self.observations: dict[ObjectRef, Observation] = {}

    def want(self, uid: str, refs: set[ObjectRef]) -> None:
        self.wanted[uid] = set(refs)

    def forget(self, uid: str) -> None:
        self.wanted.pop(uid, None)

    def seen(self, ref: ObjectRef) -> Observation | None:
        return self.observations.get(ref)


def waiting_pipeline() -> Obj:
    doc = pipeline(1)
    doc["spec"]["steps"][:0] = [{"name": "wait-seed", "waitForObject": {
        "apiVersion": "batch/v1", "kind": "Job", "name": "seed"}}]
    return doc


def waiting_pod() -> Obj:
    steps = [s["name"] for s in waiting_pipeline()["spec"]["steps"]]
    return owned(pod("Pending", [running(steps[0], T0)] + [pending(s) for s in steps[1:]]), "shop-1")


def test_a_pass_watches_the_object_and_tells_the_pods_once_its_condition_holds() -> None:
    cluster, watches = Recording(), FakeWatches()
    cluster.objects = watches  # type: ignore[assignment]
    status = run_reconcile(cluster, "u1", lambda: (waiting_pipeline(), Children(pods=[waiting_pod()])), LOG)
    assert watches.wanted == {"u1": {SEED}}
    assert [(e["step"], e["met"], e["lastSeen"]) for e in status["objects"]] == [("wait-seed", False, "not seen yet")]
    assert not [w for w in cluster.writes if w[0] == "annotate"]

    watches.observations[SEED] = Observation({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
    status = run_reconcile(cluster, "u1", lambda: (waiting_pipeline(), Children(pods=[waiting_pod()])), LOG)
    assert ("annotate", "shop-1 initpipeline.dev/objects-met=wait-seed") in cluster.writes
    assert watches.wanted == {"u1": set()}  # met: nothing to watch any more
    assert status["objects"][0]["met"] is True


def test_a_pipeline_without_object_waits_writes_no_entries_and_watches_nothing() -> None:
    cluster, watches = Recording(), FakeWatches()
    cluster.objects = watches  # type: ignore[assignment]
    status = run_reconcile(cluster, "u1", lambda: (pipeline(1), Children(pods=[])), LOG)
    assert watches.wanted == {"u1": set()} and status.get("objects") is None


class NotLoggedIn:
    """A client before its login: every read is "try again" (the watchers wait and retry)."""

    api = None

    def __init__(self) -> None:
        self.reads = threading.Event()

    def request(self, *_: Any, **__: Any) -> Obj:
        self.reads.set()
        raise TryAgain("not logged in yet", delay=1)


def test_one_watch_per_object_shared_by_pipelines_and_stopped_when_none_waits() -> None:
    client = NotLoggedIn()
    watches = ObjectWatches(client, lambda uid: None)  # type: ignore[arg-type]
    cert = ObjectRef("ns", "cert-manager.io/v1", "Certificate", "tls")
    watches.want("u1", {SEED, cert})
    watches.want("u2", {SEED})
    assert watches.watching() == {SEED, cert}
    assert client.reads.wait(5)  # the watchers run
    watches.want("u1", set())
    assert watches.watching() == {SEED}  # u2 still waits for the Job
    watches.forget("u2")
    assert watches.watching() == set()
