"""The kopf handlers as kopf calls them (no API server): the indexers decide what the caches keep of each
object, and which pipeline an event wakes; the registrations are the ones passes.py reads."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import kopf

from initpipeline.controller import handlers
from initpipeline.controller.passes import INDEXES
from initpipeline.core.attach.revision import revision_entry
from initpipeline.spec import names
from tests.unit.attached import admitted, new_pod, pipeline
from tests.unit.controller.fakes import OWNER, Recording

Obj = dict[str, Any]


def call(handler: Any, body: Obj, **kwargs: Any) -> Any:
    return asyncio.run(handler(body=kopf.Body(body), **kwargs))


def test_every_index_that_a_pass_reads_is_registered_and_nothing_else() -> None:
    registry = kopf.get_default_registry()
    registered = {h.id for h in registry._indexing.get_all_handlers()}
    assert registered == set(INDEXES)


def test_a_pods_entry_is_slim_and_filed_under_its_pipeline() -> None:
    big = {"metadata": {"name": "shop-1", "namespace": "ns", "ownerReferences": OWNER,
                        "labels": {names.LABEL_PIPELINE: "shop"}, "managedFields": [{"huge": "x" * 1000}]},
           "spec": {"containers": [{"name": "app", "image": "shop:1", "env": [{"name": "A", "value": "1"}]}],
                    "restartPolicy": "Always", "activeDeadlineSeconds": 60},
           "status": {"phase": "Pending"}}
    entry = call(handlers.pods_by_owner, big)
    assert list(entry) == ["u1"]
    kept = entry["u1"]
    assert "managedFields" not in kept["metadata"] and kept["status"] == {"phase": "Pending"}
    assert kept["spec"] == {"activeDeadlineSeconds": 60, "restartPolicy": "Always"}  # no containers
    assert call(handlers.pods_by_owner, {**big, "metadata": {"name": "x", "labels": {}}}) is None  # no owner


def test_a_gated_attached_pod_keeps_what_its_revisions_job_runs_with() -> None:
    doc = pipeline()
    gated = admitted(doc, new_pod(image="shop:2.0"), "shop-a-0")
    gated["metadata"]["labels"][names.LABEL_UID] = "u1"  # owned by its ReplicaSet: the uid label says whose
    kept = call(handlers.pods_by_owner, gated)["u1"]
    assert [c["image"] for c in kept["spec"]["containers"]] == ["shop:2.0"]
    assert [g["name"] for g in kept["spec"]["schedulingGates"]] == [names.ONCE_GATE]


def test_workloads_keep_their_replicas_and_template_labels_only() -> None:
    deployment = {"kind": "Deployment", "metadata": {"name": "shop", "ownerReferences": OWNER},
                  "spec": {"replicas": 3, "template": {"metadata": {"labels": {"a": "b"}},
                                                       "spec": {"containers": [{"name": "app"}]}}},
                  "status": {"readyReplicas": 2}}
    kept = call(handlers.deployments_by_owner, deployment)["u1"]
    assert kept["spec"] == {"replicas": 3, "template": {"metadata": {"labels": {"a": "b"}}}}
    assert kept["status"] == {"readyReplicas": 2}


def test_an_attached_workloads_revisions_are_filed_under_the_pipeline_that_the_label_names() -> None:
    rs = {"kind": "ReplicaSet", "metadata": {"name": "shop-abc", "namespace": "ns",
                                             "labels": {names.LABEL_INJECT: "shop", "pod-template-hash": "abc"},
                                             "annotations": {"deployment.kubernetes.io/revision": "2"},
                                             "ownerReferences": [{"kind": "Deployment", "name": "shop",
                                                                  "controller": True}]}}
    assert call(handlers.replicasets_by_pipeline, rs) == {("ns", "shop"): revision_entry(rs)}


class Woken:
    """A controller whose queue records the pipelines woken instead of reconciling them."""

    def __init__(self) -> None:
        self.ctl = Recording()
        self.woken: list[str] = []
        self.done = threading.Event()

        def work(uid: str) -> None:
            self.woken.append(uid)
            self.done.set()
        self.ctl.queue.start(work, 1)

    def wait(self) -> list[str]:
        assert self.done.wait(5)
        return self.woken


def test_a_childs_event_wakes_its_pipeline() -> None:
    woken = Woken()
    job = {"kind": "Job", "metadata": {"name": "shop-once-abc", "ownerReferences": OWNER, "labels": {}}}
    call(handlers.on_child_event, job, memo=kopf.Memo(controller=woken.ctl), **{n: {} for n in INDEXES})
    assert woken.wait() == ["u1"]


def test_a_revisions_event_wakes_the_pipelines_of_that_name() -> None:
    woken = Woken()
    rs = {"metadata": {"name": "shop-abc", "namespace": "ns", "labels": {names.LABEL_INJECT: "shop"}}}
    indexes: dict[str, Any] = {n: {} for n in INDEXES}
    indexes["pipelines_by_name"] = {("ns", "shop"): ["u7"]}
    call(handlers.on_revision_event, rs, memo=kopf.Memo(controller=woken.ctl), **indexes)
    assert woken.wait() == ["u7"]


def test_a_deleted_pipeline_is_forgotten_at_once() -> None:
    ctl = Recording()
    ctl.remember("u1").handled = 3
    ctl.wake_in(60, "u1")
    body = {"metadata": {"uid": "u1", "namespace": "ns", "name": "shop"}}
    call(handlers.on_pipeline, body, type="DELETED", memo=kopf.Memo(controller=ctl))
    assert "u1" not in ctl.memory and ctl.alarms.pending() == {}


def test_cached_objects_share_their_keys_and_short_strings_and_drop_what_nobody_reads() -> None:
    def body(name: str) -> Obj:  # as two watch events bring them: every string a copy of its own
        return json.loads(json.dumps({
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "ownerReferences": OWNER,
                         "annotations": {handlers.LAST_APPLIED: "{" + "x" * 5000 + "}", "keep": "me"}},
            "spec": {}, "status": {"phase": "Pending", "message": "m" * 100}}))
    first, second = (call(handlers.pipelines_by_uid, body(n)) for n in ("a", "b"))
    one, two = first["uid-a"], second["uid-b"]
    assert one["metadata"]["annotations"] == {"keep": "me"}
    shared_key = next(k for k in one["status"] if k == "phase")
    assert shared_key is next(k for k in two["status"] if k == "phase")
    assert one["status"]["phase"] is two["status"]["phase"] and one["metadata"]["namespace"] is two["metadata"][
        "namespace"]
    assert one["status"]["message"] is not two["status"]["message"]  # long text is left as it came
