"""Attach mode: what the webhook adds to a Pod of the user's workload, and what the operator then does."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from initpipeline.core.attach.inject import Refusal, inject
from initpipeline.core.attach.job import job_template
from initpipeline.core.attach.plan import plan_attached
from initpipeline.core.attach.revision import attach_revision, current_revision, revision_entry, steps_hash
from initpipeline.core.attach.status import attach_status
from initpipeline.core.build import build_once_job, once_job_name
from initpipeline.spec import names
from initpipeline.spec.validation import validate_pipeline
from tests.unit.attached import admitted, job, new_pod, pipeline, replicaset, rev_of
from tests.unit.pods import done, pod, running

Obj = dict[str, Any]
NOW = "2026-11-30T10:00:00Z"


def test_the_example_is_valid() -> None:
    assert validate_pipeline(pipeline()) == []


def test_the_webhook_adds_every_pod_steps_before_the_pods_own_init_containers_and_gates_it() -> None:
    p = new_pod()
    p["spec"]["initContainers"] = [{"name": "theirs", "image": "busybox:1"}]
    patch = inject(pipeline(), p, "runner:1")
    assert [c["name"] for c in patch["spec"]["initContainers"]] == ["wait-deps", "fetch-secrets", "theirs"]
    assert patch["spec"]["schedulingGates"] == [{"name": names.ONCE_GATE}]
    labels = patch["metadata"]["labels"]
    assert labels[names.LABEL_UID] == "u1" and labels[names.LABEL_PIPELINE] == "shop"
    assert labels[names.LABEL_REVISION] == attach_revision(pipeline()["spec"], p["metadata"]["labels"])
    # the Pod's own volumes stay, the steps' scratch volume is added
    assert [v["name"] for v in patch["spec"]["volumes"]] == ["secrets", "ipl-tmp"]


def test_a_revision_whose_once_steps_succeeded_is_not_gated() -> None:
    p = new_pod()
    rev = attach_revision(pipeline()["spec"], p["metadata"]["labels"])
    patch = inject(pipeline({"attached": {"succeededRevisions": ["0000000", rev]}}), p, "runner:1")
    assert "schedulingGates" not in patch["spec"]


def test_without_once_steps_nothing_is_gated() -> None:
    doc = pipeline()
    doc["spec"]["steps"] = [s for s in doc["spec"]["steps"] if s["name"] != "migrate"]
    assert "schedulingGates" not in inject(doc, new_pod(), "runner:1")["spec"]


def test_the_revision_is_the_workloads_with_the_steps() -> None:
    spec = pipeline()["spec"]
    one = attach_revision(spec, {"pod-template-hash": "aaa"})
    assert one == attach_revision(spec, {"pod-template-hash": "aaa", "other": "x"})  # a scale-up: the same
    assert one != attach_revision(spec, {"pod-template-hash": "bbb"})  # a rollout
    changed = copy.deepcopy(spec)
    changed["steps"][0]["waitForService"]["timeoutSeconds"] = 60
    assert one != attach_revision(changed, {"pod-template-hash": "aaa"})  # new steps
    assert attach_revision(spec, {"controller-revision-hash": "aaa"}) is None  # not a Deployment's Pod
    # made of parts that the admission policy's CEL can join: the steps' hash and the workload's own
    assert re.fullmatch(r"[0-9a-f]{7}-aaa", str(one)) and one.startswith(steps_hash(spec))
    stateful = {**spec, "attach": {"kind": "StatefulSet", "name": "db"}}
    assert attach_revision(stateful, {"controller-revision-hash": "db-7c9f6b5d4"}) == \
        f"{steps_hash(stateful)}-7c9f6b5d4"


@pytest.mark.parametrize(("change", "words"), [
    (lambda p: p["metadata"]["labels"].pop("pod-template-hash"), "has no pod-template-hash label"),
    (lambda p: p["spec"]["containers"][0].update(name="web"), "imageFrom 'app' is not a container of this Pod (web)"),
    (lambda p: p["spec"].update(volumes=[]), "step fetch-secrets: volume 'secrets' is not a volume of this Pod"),
    (lambda p: p["spec"].update(initContainers=[{"name": "migrate", "image": "x"}]),
     "step migrate: the Pod already has a container of that name"),
], ids=["no-revision-label", "no-such-container", "no-such-volume", "name-taken"])
def test_a_pod_that_cannot_run_the_steps_is_refused_with_the_reason(change: Any, words: str) -> None:
    p = new_pod()
    change(p)
    with pytest.raises(Refusal) as refused:
        inject(pipeline(), p, "runner:1")
    assert words in str(refused.value)


def test_a_pipeline_that_does_not_attach_or_is_invalid_refuses_the_pod() -> None:
    own = pipeline()
    own["spec"].pop("attach")
    with pytest.raises(Refusal, match=r"has no spec\.attach"):
        inject(own, new_pod(), "runner:1")
    broken = pipeline()
    broken["spec"]["steps"][0]["waitForService"]["targets"] = []
    with pytest.raises(Refusal, match=r"is invalid \(spec.steps\[0\]"):
        inject(broken, new_pod(), "runner:1")


def test_the_current_revision_is_the_newest_of_the_workloads_own() -> None:
    attach = {"kind": "Deployment", "name": "shop"}
    assert current_revision(attach, []) is None
    assert current_revision(attach, [replicaset("aaa", 1, owner="other")]) is None
    found = current_revision(attach, [replicaset("aaa", 3, desired=5), replicaset("bbb", 2)])
    assert found is not None and found.pod_hash == "aaa" and found.desired == 5
    revision = revision_entry({"kind": "ControllerRevision", "revision": 4, "metadata": {
        "name": "db-7f9c", "labels": {names.LABEL_INJECT: "db"},
        "ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": True}]}})
    found = current_revision({"kind": "StatefulSet", "name": "db"}, [revision])
    assert found is not None and found.pod_hash == "db-7f9c" and found.desired is None


def test_gated_pods_start_one_job_for_their_revision_with_their_images() -> None:
    doc = pipeline()
    pods = [admitted(doc, new_pod(image="shop:2.0"), f"shop-a-{i}") for i in range(3)]
    step = plan_attached(doc["spec"], pods, [], [replicaset("6d4f8b9c7", 1)], {})
    assert step.run_job == rev_of(pods[0]) and step.job_pod is pods[2] and not step.ungate
    built = build_once_job({**doc, "spec": {**doc["spec"], "template": job_template(step.job_pod)}}, "runner:1",
                           step.run_job)
    assert built is not None and built["metadata"]["labels"][names.LABEL_REVISION] == step.run_job
    assert built["metadata"]["name"] == once_job_name("shop", step.run_job) and len(built["metadata"]["name"]) == 17
    containers = built["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in containers] == ["wait-deps", "migrate"]
    assert containers[1]["image"] == "shop:2.0"  # imageFrom: app, of this revision's Pods
    assert built["spec"]["template"]["metadata"]["labels"][names.LABEL_UID] == "u1"
    # the Pod's volumes as the webhook left them hold the steps' scratch volume: the Job brings its own
    volumes = [v["name"] for v in built["spec"]["template"]["spec"]["volumes"]]
    assert sorted(volumes) == sorted(set(volumes)) and "ipl-tmp" in volumes


def test_a_complete_job_records_the_revision_and_lifts_the_gates() -> None:
    doc = pipeline()
    pods = [admitted(doc, new_pod(), f"shop-a-{i}") for i in range(3)]
    rev = rev_of(pods[0])
    step = plan_attached(doc["spec"], pods, [job(rev, "Complete")], [replicaset("6d4f8b9c7", 1)], {})
    assert step.run_job is None and step.succeeded == [rev]
    assert step.ungate == ["shop-a-0", "shop-a-1", "shop-a-2"]


def test_a_failed_job_keeps_the_gates_and_runs_nothing_until_it_is_deleted() -> None:
    doc = pipeline()
    pods = [admitted(doc, new_pod(), f"shop-a-{i}") for i in range(2)]
    rev = rev_of(pods[0])
    failed = plan_attached(doc["spec"], pods, [job(rev, "Failed")], [replicaset("6d4f8b9c7", 1)], {})
    assert failed.run_job is None and not failed.ungate and failed.job is not None
    again = plan_attached(doc["spec"], pods, [], [replicaset("6d4f8b9c7", 1)], {})
    assert again.run_job == rev


ROLLOUT = [replicaset("aaa", 1, desired=1), replicaset("bbb", 2, desired=1)]


def test_one_run_at_a_time_and_only_for_the_workloads_current_revision() -> None:
    doc = pipeline()
    old = admitted(doc, new_pod("aaa"), "shop-a-0", "2026-11-30T09:00:00Z")
    new = admitted(doc, new_pod("bbb"), "shop-b-0", "2026-11-30T09:05:00Z")
    busy = plan_attached(doc["spec"], [old, new], [job(rev_of(old))], ROLLOUT, {})
    assert busy.run_job is None and busy.waiting_for_job == f"shop-once-{rev_of(old)}"
    assert busy.revision == rev_of(new)
    free = plan_attached(doc["spec"], [old, new], [job(rev_of(old), "Failed")], ROLLOUT, {})
    assert free.run_job == rev_of(new)
    # the old ReplicaSet replaced one of its Pods after the rollout began: it is the newest Pod, but its
    # revision is not the workload's, so it starts no Job
    late_old = admitted(doc, new_pod("aaa"), "shop-a-1", "2026-11-30T09:09:00Z")
    step = plan_attached(doc["spec"], [old, new, late_old], [], ROLLOUT, {})
    assert step.revision == rev_of(new) and step.run_job == rev_of(new) and step.job_pod is new


def test_a_scale_up_or_rollback_to_a_succeeded_revision_runs_nothing_and_old_jobs_go() -> None:
    doc = pipeline()
    first = admitted(doc, new_pod("aaa"), "shop-a-0", "2026-11-30T09:00:00Z")
    rev_a = rev_of(first)
    done_before = {"attached": {"succeededRevisions": [rev_a]}}
    doc_after = pipeline(done_before)
    back = admitted(doc_after, new_pod("aaa"), "shop-a-9", "2026-11-30T10:00:00Z")
    assert "schedulingGates" not in back["spec"]
    step = plan_attached(doc["spec"], [back], [job("bbbbbbb", "Complete"), job(rev_a, "Complete")],
                         [replicaset("bbb", 2), replicaset("aaa", 3)], done_before)
    assert step.run_job is None and not step.ungate
    assert step.delete_jobs == ["shop-once-bbbbbbb"] and step.succeeded == [rev_a, "bbbbbbb"]


def test_status_says_it_waits_for_pods_of_the_workload() -> None:
    doc = pipeline()
    status = attach_status(doc, plan_attached(doc["spec"], [], [], [], {}), [], NOW)
    assert status["phase"] == "Pending" and status["workload"] == {"kind": "Deployment", "name": "shop"}
    assert "waiting for Deployment shop with the label initpipeline.dev/inject=shop" in status["message"]


def test_status_while_the_migration_runs_and_once_all_pods_are_ready() -> None:
    doc = pipeline()
    pods = [admitted(doc, new_pod(), f"shop-a-{i}") for i in range(3)]
    rev = rev_of(pods[0])
    job_pod = {"metadata": {"name": f"shop-once-{rev}-x", "creationTimestamp": NOW,
                            "labels": {names.LABEL_REVISION: rev, names.LABEL_ROLE: "once", names.LABEL_UID: "u1"}},
               **{k: v for k, v in pod("Pending", [done("wait-deps"), running("migrate")]).items() if k != "metadata"}}
    step = plan_attached(doc["spec"], [*pods, job_pod], [job(rev)], [replicaset("6d4f8b9c7", 1)], {})
    status = attach_status(doc, step, [*pods, job_pod], NOW)
    assert status["phase"] == "Initializing" and status["currentStep"] == "migrate"
    assert status["once"]["state"] == "Running" and status["ready"] == "0/3"

    for p in pods:  # the gates lifted, the Pods started
        p["spec"].pop("schedulingGates")
        p["status"] = pod("Running", [done("wait-deps"), done("fetch-secrets")], ready=True, initialized=True)["status"]
    step = plan_attached(doc["spec"], pods, [job(rev, "Complete")], [replicaset("6d4f8b9c7", 1)], {})
    status = attach_status(doc, step, pods, NOW)
    assert status["phase"] == "Running" and status["ready"] == "3/3"
    assert status["attached"] == {"succeededRevisions": [rev]}
    assert {s["name"]: s["state"] for s in status["steps"]} == {
        "wait-deps": "Succeeded", "migrate": "Succeeded", "fetch-secrets": "Succeeded"}


def test_a_failed_migration_fails_the_pipeline_while_the_old_pods_serve() -> None:
    doc = pipeline()
    old = admitted(pipeline({"attached": {"succeededRevisions": ["x"]}}), new_pod("aaa"), "shop-a-0")
    old["metadata"]["labels"][names.LABEL_REVISION] = "x"
    old["status"] = pod("Running", [done("wait-deps"), done("fetch-secrets")], ready=True, initialized=True)["status"]
    new = admitted(doc, new_pod("bbb"), "shop-b-0", "2026-11-30T09:30:00Z")
    record = {"attached": {"succeededRevisions": ["x"]}}
    step = plan_attached(doc["spec"], [old, new], [job(rev_of(new), "Failed")], ROLLOUT, record)
    status = attach_status(doc, step, [old, new], NOW)
    assert status["phase"] == "Failed" and "1/2 Pods of the previous revision ready" in status["message"]


def test_an_earlier_revisions_job_that_is_stuck_goes_and_the_current_one_runs() -> None:
    """A rollout with an image that cannot be pulled, fixed by the next: the first Job can never finish."""
    doc = pipeline()
    old = admitted(doc, new_pod("aaa", image="typo:1"), "shop-a-0", "2026-11-30T09:00:00Z")
    new = admitted(doc, new_pod("bbb"), "shop-b-0", "2026-11-30T09:05:00Z")
    old_job_pod = {"metadata": {"name": "shop-once-x-1", "labels": {names.LABEL_REVISION: rev_of(old),
                                                                   names.LABEL_ROLE: "once"}},
                   "status": {"phase": "Pending", "initContainerStatuses": [
                       {"name": "wait-deps", "state": {"waiting": {"reason": "PodInitializing"}}},
                       {"name": "migrate", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}
    step = plan_attached(doc["spec"], [old, new, old_job_pod], [job(rev_of(old))], ROLLOUT, {})
    assert step.delete_jobs == [f"shop-once-{rev_of(old)}"] and step.run_job == rev_of(new)
    # one that runs a step is left to finish
    old_job_pod["status"]["initContainerStatuses"][1]["state"] = {"running": {"startedAt": NOW}}
    step = plan_attached(doc["spec"], [old, new, old_job_pod], [job(rev_of(old))], ROLLOUT, {})
    assert step.delete_jobs == [] and step.run_job is None and step.waiting_for_job == f"shop-once-{rev_of(old)}"
