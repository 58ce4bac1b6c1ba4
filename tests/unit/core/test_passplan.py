"""decide(): one pass's plan from the view and the clock, for each mode (pure: no controller, no cluster)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from initpipeline.core.children import Children
from initpipeline.core.passplan import Refused, Remembered, View, decide
from initpipeline.spec import names
from tests.unit.attached import admitted, job, new_pod, replicaset, rev_of
from tests.unit.attached import pipeline as attached_pipeline
from tests.unit.controller.fakes import OWNER, owned, pipeline
from tests.unit.pods import STEPS, pending, pod

Obj = dict[str, Any]
NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)


def view(doc: Obj | None, children: Children | None = None, remembered: Remembered | None = None,
         terminating: dt.datetime | None = None) -> View:
    return View(doc, children or Children(), remembered or Remembered(), lambda ref: None, terminating, "runner:1")


def actions(plan: Any) -> list[tuple[str, str, str]]:
    return [(w.action, w.kind, w.name) for w in plan.writes]


def test_a_new_pod_pipeline_plans_its_pod_and_a_status_that_waits_for_its_event() -> None:
    plan = decide(view(pipeline(1)), NOW)
    assert actions(plan) == [("create", "Pod", "shop-1")]
    create = plan.writes[0]
    assert create.brings_status and create.refused == "PodRejected" and create.body is not None
    assert plan.handled == 1 and plan.publish is not None and plan.status["podName"] == "shop-1"


def test_a_deleted_pod_of_this_generation_is_recreated_and_said_at_once() -> None:
    previous = {"podName": "shop-1", "observedGeneration": 1, "phase": "Initializing", "podRecreations": 0}
    plan = decide(view(pipeline(1), remembered=Remembered(written=previous)), NOW)
    assert actions(plan) == [("create", "Pod", "shop-1")] and not plan.writes[0].brings_status
    assert plan.events == [("Warning", "PodRecreated", "Pod shop-1 was deleted and has been recreated")]
    assert plan.status["podRecreations"] == 1


def test_an_older_generation_in_the_cache_plans_nothing() -> None:
    plan = decide(view(pipeline(1), remembered=Remembered(handled=2)), NOW)
    assert plan.writes == [] and plan.publish is None and plan.handled is None


def test_a_namespace_seen_going_away_plans_nothing_until_it_is_new() -> None:
    doc = pipeline(1)
    doc["metadata"]["creationTimestamp"] = "2026-11-30T09:00:00Z"
    seen = NOW - dt.timedelta(seconds=10)
    assert decide(view(doc, terminating=seen), NOW).writes == []
    later = decide(view(doc, terminating=seen), NOW + dt.timedelta(minutes=5))
    assert later.forget_terminating and actions(later) == [("create", "Pod", "shop-1")]


def test_a_refusal_remembered_from_the_last_pass_is_published_with_no_writes() -> None:
    refused = Refused(1, "PodRejected", "Pod is invalid")
    plan = decide(view(pipeline(1), remembered=Remembered(refused=refused)), NOW)
    assert plan.writes == [] and plan.publish is not None and plan.publish.write
    assert plan.status["phase"] == "Failed" and "Pod is invalid" in plan.status["message"]
    assert ("Warning", "PipelineFailed", plan.status["message"]) in plan.publish.events
    # once the status says it, the same spec waits for a new generation
    after = decide(view(pipeline(1), remembered=Remembered(written=plan.publish.stored, refused=refused)), NOW)
    assert after.writes == [] and after.publish is None


def test_an_invalid_spec_plans_its_status_and_stops_watching_objects() -> None:
    doc = pipeline(1)
    doc["spec"]["steps"][0]["name"] = "Not A Name"
    plan = decide(view(doc), NOW)
    assert plan.writes == [] and plan.watch == set() and plan.status["phase"] == "Failed"
    assert "spec.steps[0].name" in plan.status["message"]


def test_a_pod_past_its_steps_deadline_is_stopped_and_one_before_it_wakes_the_pipeline_then() -> None:
    doc = pipeline(1)
    doc["spec"]["activeDeadlineSeconds"] = 60
    running = owned(pod("Pending", [pending(s) for s in STEPS], scheduled=True), "shop-1")
    running["status"]["startTime"] = "2026-11-30T09:59:30Z"
    early = decide(view(doc, Children(pods=[running])), NOW)
    assert early.writes == [] and early.wake_at == dt.datetime(2026, 11, 30, 10, 0, 30, tzinfo=dt.UTC)
    late = decide(view(doc, Children(pods=[running])), NOW + dt.timedelta(seconds=31))
    assert actions(late) == [("stop", "Pod", "shop-1")] and late.writes[0].value == 60


def test_a_workload_pipeline_plans_its_job_then_its_workload_and_removes_old_jobs_once() -> None:
    doc = pipeline(1)
    doc["spec"]["workload"] = {"kind": "Deployment", "replicas": 2}
    first = decide(view(doc), NOW)
    assert [w.action for w in first.writes] == ["create"] and first.writes[0].kind == "Job"
    rev = first.writes[0].body["metadata"]["labels"][names.LABEL_REVISION]
    complete = {**job(rev, "Complete"), "metadata": {**job(rev)["metadata"], "ownerReferences": OWNER}}
    old = {**job("old", "Complete"), "metadata": {**job("old")["metadata"], "ownerReferences": OWNER}}
    second = decide(view(doc, Children(jobs=[complete, old])), NOW)
    assert actions(second) == [("create", "Deployment", "shop"), ("delete", "Job", "shop-once-old")]


def test_an_attached_pipeline_lifts_the_gates_of_a_revision_whose_job_succeeded() -> None:
    doc = attached_pipeline()
    pods = [admitted(doc, new_pod(), f"shop-a-{i}") for i in range(2)]
    for p in pods:
        p["metadata"]["labels"][names.LABEL_UID] = "u1"
    rev = rev_of(pods[0])
    done = {**job(rev, "Complete"), "metadata": {**job(rev)["metadata"], "ownerReferences": OWNER}}
    plan = decide(view(doc, Children(pods=pods, jobs=[done], revisions=[replicaset("6d4f8b9c7", 1)])), NOW)
    assert actions(plan) == [("ungate", "Pod", "shop-a-0"), ("ungate", "Pod", "shop-a-1")]
    assert all(names.ONCE_GATE not in [g["name"] for g in w.value] for w in plan.writes)
    assert plan.status["injection"]["kind"] == "Deployment" and rev in plan.status["attached"]["succeededRevisions"]


def test_a_child_refused_for_now_is_said_and_created_again_once_due() -> None:
    refused = Refused(1, "PodRejected", "error looking up service account ns/default", at=NOW)
    held = decide(view(pipeline(1), remembered=Remembered(refused=refused)), NOW + dt.timedelta(seconds=1))
    assert held.writes == [] and held.hold_refused and held.wake_at == NOW + dt.timedelta(seconds=5)
    assert held.status["phase"] == "Pending" and "refused the Pod for now" in held.status["message"]
    due = decide(view(pipeline(1), remembered=Remembered(refused=refused)), NOW + dt.timedelta(seconds=5))
    assert actions(due) == [("create", "Pod", "shop-1")] and not due.hold_refused
    # a refusal of an older generation says nothing about this one
    older = Refused(0, "PodRejected", "Pod is invalid")
    assert actions(decide(view(pipeline(1), remembered=Remembered(refused=older)), NOW)) == [
        ("create", "Pod", "shop-1")]
