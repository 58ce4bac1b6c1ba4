"""waitForObject's pure part: the waits a pipeline has, whether a condition holds, and what follows."""

from __future__ import annotations

from typing import Any

import yaml

from initpipeline.core.build import build_pod, build_workload, job_steps
from initpipeline.core.objects import ObjectRef, Observation, evaluate, object_waits, plan_objects
from initpipeline.spec import names
from tests.cases import ROOT, shop

NOW = "2026-11-30T12:00:00Z"


def pipeline(*waits: dict[str, Any]) -> dict[str, Any]:
    doc = shop()
    doc["metadata"].update(namespace="ns", uid="u1", generation=1)
    doc["spec"]["steps"][:0] = [{"name": f"wait-{i}", "waitForObject": body} for i, body in enumerate(waits)]
    return doc


SEED = {"apiVersion": "batch/v1", "kind": "Job", "name": "seed"}
API = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
CERT = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "tls",
        "condition": {"type": "Ready"}}


def job(*conditions: tuple[str, str]) -> Observation:
    return Observation({"metadata": {"name": "seed"},
                        "status": {"conditions": [{"type": t, "status": s} for t, s in conditions]}})


def pod(name: str, phase: str = "Pending", met: str | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if met is not None:
        meta["annotations"] = {names.ANNOTATION_OBJECTS_MET: met}
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {"metadata": meta, "status": {"phase": phase}}


def test_waits_take_the_default_condition_of_jobs_and_deployments() -> None:
    waits = object_waits(pipeline(SEED, API, CERT))
    assert [(w.step, str(w.ref), w.condition) for w in waits] == [
        ("wait-0", "Job seed", "Complete=True"), ("wait-1", "Deployment api", "Available=True"),
        ("wait-2", "Certificate tls", "Ready=True")]
    assert waits[0].ref == ObjectRef("ns", "batch/v1", "Job", "seed")


def test_a_condition_is_met_only_with_the_status_asked_for() -> None:
    wait = object_waits(pipeline(SEED))[0]
    assert evaluate(wait, None) == (False, "not seen yet")
    assert evaluate(wait, Observation(None)) == (False, "not found")
    assert evaluate(wait, job()) == (False, "no Complete condition yet")
    assert evaluate(wait, job(("Complete", "False"))) == (False, "Complete=False")
    assert evaluate(wait, job(("Complete", "True"))) == (True, "Complete=True")


def test_a_failed_job_says_so() -> None:
    wait = object_waits(pipeline(SEED))[0]
    failed = Observation({"status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the limit"}]}})
    assert evaluate(wait, failed) == (False, "Failed=True (BackoffLimitExceeded: Job has reached the limit)")


def test_a_deployment_mid_rollout_is_not_available_yet() -> None:
    wait = object_waits(pipeline(API))[0]
    stale = Observation({"metadata": {"generation": 3},
                         "status": {"observedGeneration": 2, "conditions": [{"type": "Available", "status": "True"}]}})
    assert evaluate(wait, stale) == (False, "its controller has not observed generation 3 yet (at 2)")
    available = [{"type": "Available", "status": "True"}]
    current = Observation({"metadata": {"generation": 3}, "status": {"observedGeneration": 3, "conditions": available}})
    assert evaluate(wait, current)[0] is True


def test_a_problem_of_the_watch_is_what_was_seen() -> None:
    wait = object_waits(pipeline(CERT))[0]
    problem = "the operator may not watch Certificate objects (add it to the chart's objectWaits.rules)"
    assert evaluate(wait, Observation(problem=problem)) == (False, problem)


def test_unmet_waits_are_watched_and_no_pod_is_touched() -> None:
    waits = object_waits(pipeline(SEED, API))
    plan = plan_objects(waits, None, {waits[0].ref: job(("Complete", "False"))}, [pod("p1")], NOW)
    assert plan.watch == {waits[0].ref, waits[1].ref}
    assert plan.met_value == "" and plan.annotate == []
    assert [(e["step"], e["met"], e["lastSeen"]) for e in plan.entries] == [
        ("wait-0", False, "Complete=False"), ("wait-1", False, "not seen yet")]


def test_a_met_condition_names_the_step_on_pending_pods_that_lack_it() -> None:
    waits = object_waits(pipeline(SEED, API))
    seen = {waits[0].ref: job(("Complete", "True"))}
    pods = [pod("new"), pod("told", met="wait-0"), pod("running", phase="Running"), pod("old", met=""),
            pod("going", deleting=True)]
    plan = plan_objects(waits, None, seen, pods, NOW)
    assert plan.met_value == "wait-0"
    assert plan.annotate == ["new", "old"]
    assert plan.watch == {waits[1].ref}
    assert plan.entries[0] == {"step": "wait-0", "apiVersion": "batch/v1", "kind": "Job", "name": "seed",
                               "condition": "Complete=True", "key": waits[0].key, "met": True,
                               "lastSeen": "Complete=True", "metAt": NOW}


def test_a_condition_that_held_stays_met_when_the_object_goes() -> None:
    waits = object_waits(pipeline(SEED))
    first = plan_objects(waits, None, {waits[0].ref: job(("Complete", "True"))}, [], NOW)
    later = plan_objects(waits, first.entries, {waits[0].ref: Observation(None)}, [pod("p2")], "2026-12-01T00:00:00Z")
    assert later.entries == first.entries
    assert later.watch == set() and later.annotate == ["p2"]


def test_a_changed_target_waits_again() -> None:
    before = object_waits(pipeline(SEED))
    met = plan_objects(before, None, {before[0].ref: job(("Complete", "True"))}, [], NOW).entries
    after = object_waits(pipeline({**SEED, "name": "seed-2"}))
    plan = plan_objects(after, met, {}, [pod("p1", met="wait-0")], NOW)
    assert plan.entries[0]["met"] is False and plan.watch == {after[0].ref}
    assert plan.met_value == "" and plan.annotate == []


def test_the_step_reads_the_annotation_through_a_downward_api_file() -> None:
    built = build_pod(pipeline(SEED))
    step = built["spec"]["initContainers"][0]
    assert step["command"] == ["initpipeline", "step", "wait-object", "--met-file", "/var/run/initpipeline/objects/met",
                               "--step", "wait-0", "--object", "Job seed", "--condition", "Complete=True",
                               "--timeout", "300"]
    mount = {"name": "ipl-objects", "mountPath": "/var/run/initpipeline/objects", "readOnly": True}
    assert mount in step["volumeMounts"]
    volume = next(v for v in built["spec"]["volumes"] if v["name"] == "ipl-objects")
    assert volume["downwardAPI"]["items"] == [
        {"path": "met", "fieldRef": {"fieldPath": "metadata.annotations['initpipeline.dev/objects-met']"}}]
    assert "serviceAccountName" not in built["spec"]  # nothing of RBAC comes with the step


def test_a_workload_runs_the_wait_before_its_once_steps_too() -> None:
    doc = pipeline(SEED)
    doc["spec"]["workload"] = {"kind": "Deployment", "replicas": 2}
    assert [s["name"] for s in job_steps(doc["spec"])] == ["wait-0", "wait-deps", "migrate"]
    template = build_workload(doc)["spec"]["template"]
    assert template["spec"]["initContainers"][0]["name"] == "wait-0"
    assert "annotations" not in template["metadata"]  # met steps are told to Pods, never to the template


def test_the_crd_keeps_every_field_of_an_entry() -> None:
    """The API server prunes status fields that the CRD's schema does not name."""
    crd = yaml.safe_load((ROOT / "crds" / "initpipelines.initpipeline.dev.yaml").read_text())
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    waits = object_waits(pipeline(SEED))
    entry = plan_objects(waits, None, {waits[0].ref: job(("Complete", "True"))}, [], NOW).entries[0]
    assert set(entry) <= set(status["objects"]["items"]["properties"])
