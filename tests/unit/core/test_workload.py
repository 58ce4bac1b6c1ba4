"""Deployment and StatefulSet pipelines: the built objects, the planner and the aggregated status."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from initpipeline.core.build import build_once_job, build_workload, job_steps, pod_steps, revision
from initpipeline.core.pod_status import derive
from initpipeline.core.workload_plan import Plan, plan
from initpipeline.core.workload_status import aggregate_steps, stuck_pods, workload_status
from initpipeline.spec import names
from initpipeline.spec.validation import validate_pipeline
from tests.cases import ROOT, deployment
from tests.unit.pods import T0, T1, T2, crash_looping, done, failed, pending, pod, running
from tests.unit.workloads import as_observed, desired_of, job, named

Obj = dict[str, Any]
NOW = "2026-11-22T10:01:00Z"


def shop() -> Obj:
    return deployment()


def sts() -> Obj:
    doc: Obj = yaml.safe_load((ROOT / "examples" / "workloads" / "postgres-statefulset.yaml").read_text())
    doc["metadata"].update(namespace="ns", uid="u2", generation=1)
    return doc


# ---- building ----------------------------------------------------------------------------------------

def test_the_examples_are_valid() -> None:
    assert validate_pipeline(shop()) == [] and validate_pipeline(sts()) == []


def test_the_migration_runs_in_the_job_after_the_waits_and_not_in_the_pods() -> None:
    doc = shop()
    assert [s["name"] for s in pod_steps(doc["spec"])] == ["wait-deps", "fetch-config"]
    assert [s["name"] for s in job_steps(doc["spec"])] == ["wait-deps", "migrate"]
    deployment = build_workload(doc, "runner:1")
    assert [c["name"] for c in deployment["spec"]["template"]["spec"]["initContainers"]] == \
        ["wait-deps", "fetch-config"]
    once = build_once_job(doc, "runner:1")
    assert once is not None
    assert [c["name"] for c in once["spec"]["template"]["spec"]["initContainers"]] == ["wait-deps", "migrate"]


def test_once_false_keeps_a_migration_in_every_pod() -> None:
    doc = shop()
    doc["spec"]["steps"][1]["once"] = False
    assert build_once_job(doc, "runner:1") is None
    assert "migrate" in [s["name"] for s in pod_steps(doc["spec"])]


def test_the_job_runs_one_pod_that_is_never_retried_nor_replaced_while_it_exists() -> None:
    once = build_once_job(shop(), "runner:1")
    assert once is not None
    spec = once["spec"]
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"]) == (1, 1, 0)
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    # only the volumes its steps mount: not the app's config volume
    assert [v["name"] for v in spec["template"]["spec"]["volumes"]] == ["ipl-tmp"]
    assert once["metadata"]["name"] == f"shop-once-{revision(shop()['spec'])}"


def test_selector_is_the_uid_and_the_pods_carry_the_revision() -> None:
    deployment = build_workload(shop(), "runner:1")
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["selector"] == {"matchLabels": {names.LABEL_UID: "u1"}}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == "shop" and labels[names.LABEL_UID] == "u1"
    assert labels[names.LABEL_REVISION] == revision(shop()["spec"])
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_a_scale_is_not_a_new_revision_but_a_template_change_is() -> None:
    doc = shop()
    scaled = copy.deepcopy(doc)
    scaled["spec"]["workload"]["replicas"] = 5
    assert revision(scaled["spec"]) == revision(doc["spec"])
    changed = copy.deepcopy(doc)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "shop:1.1"
    assert revision(changed["spec"]) != revision(doc["spec"])


def test_statefulset_keeps_its_claims_and_mounts_them_in_the_steps() -> None:
    workload = build_workload(sts(), "runner:1")
    assert workload["kind"] == "StatefulSet" and workload["spec"]["serviceName"] == "pg"
    assert workload["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    [init] = workload["spec"]["template"]["spec"]["initContainers"]
    assert init["volumeMounts"] == [{"name": "data", "mountPath": "/var/lib/postgresql/data"}]
    assert build_once_job(sts(), "runner:1") is None


# ---- validation --------------------------------------------------------------------------------------

def errors(doc: Obj) -> list[str]:
    return [str(e) for e in validate_pipeline(doc)]


def test_a_new_pipeline_starts_the_job_and_not_the_workload() -> None:
    doc = shop()
    step = plan(doc["spec"], desired_of(doc), True, None, [], {})
    assert step.create_job and step.write_workload is None and not step.rolled


def test_the_workload_is_created_once_the_job_completed() -> None:
    doc = shop()
    rev = revision(doc["spec"])
    step = plan(doc["spec"], desired_of(doc), True, None, [job(f"shop-once-{rev}", rev, "Complete")], {})
    assert not step.create_job and step.write_workload == "create" and step.rolled


def test_a_failed_job_leaves_the_running_workload_alone() -> None:
    old, new = shop(), shop()
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "shop:2.0"
    running_workload = as_observed(desired_of(old), ready=3, updated=3, total=3)
    rev = revision(new["spec"])
    step = plan(new["spec"], desired_of(new), True, running_workload, [job(f"shop-once-{rev}", rev, "Failed")], {})
    assert step.write_workload is None and not step.create_job and not step.rolled


def test_a_scale_of_the_same_revision_runs_no_job() -> None:
    doc = shop()
    workload = as_observed(desired_of(doc), ready=3, updated=3, total=3)
    doc["spec"]["workload"]["replicas"] = 5
    step = plan(doc["spec"], desired_of(doc), True, workload, [], {})
    assert not step.create_job and step.write_workload == "replace"


def test_a_recorded_success_is_never_run_again_even_without_its_job() -> None:
    doc = shop()
    rev = revision(doc["spec"])
    previous = {"once": {"revision": rev, "state": "Succeeded", "job": f"shop-once-{rev}"}}
    step = plan(doc["spec"], desired_of(doc), True, None, [], previous)
    assert not step.create_job and step.write_workload == "create"


def test_no_second_job_while_an_earlier_revisions_job_runs() -> None:
    doc = shop()
    step = plan(doc["spec"], desired_of(doc), True, None, [job("shop-once-0000000", "0000000")], {})
    assert not step.create_job and step.waiting_for_job == "shop-once-0000000"


def test_finished_jobs_of_earlier_revisions_go_once_the_workload_moved_on() -> None:
    doc = shop()
    rev = revision(doc["spec"])
    workload = as_observed(desired_of(doc), ready=3, updated=3, total=3)
    jobs = [job("shop-once-0000000", "0000000", "Complete"), job(f"shop-once-{rev}", rev, "Complete")]
    step = plan(doc["spec"], desired_of(doc), True, workload, jobs, {})
    assert step.write_workload is None and step.delete_jobs == ["shop-once-0000000"]


def test_a_hand_scaled_workload_is_set_back() -> None:
    doc = shop()
    workload = as_observed(desired_of(doc), ready=3, updated=3, total=3)
    workload["spec"]["replicas"] = 1
    assert plan(doc["spec"], desired_of(doc), True, workload, [], {}).write_workload == "replace"


# ---- status ------------------------------------------------------------------------------------------

def test_steps_are_aggregated_over_the_pods() -> None:
    spec = pod_steps(shop()["spec"])  # wait-deps, fetch-config
    pods = [pod("Running", [done("wait-deps", T0, T1), done("fetch-config", T1, T2)], ready=True),
            pod("Pending", [done("wait-deps", T0, T2), running("fetch-config", T2)]),
            pod("Pending", [running("wait-deps", T1), pending("fetch-config")])]
    wait, fetch = aggregate_steps(spec, pods, 3)
    assert wait["state"] == "Running" and wait["pods"] == {"done": 2, "running": 1, "failed": 0, "waiting": 0}
    assert wait["startedAt"] == T0 and "finishedAt" not in wait
    assert fetch["pods"] == {"done": 1, "running": 1, "failed": 0, "waiting": 1}
    all_done = aggregate_steps(spec, pods[:1] * 3, 3)
    assert all_done[0]["state"] == "Succeeded" and all_done[0]["finishedAt"] == T1
    assert all_done[0]["exitCode"] == 0 and "exitCode" not in wait


def test_the_worst_failure_is_reported() -> None:
    spec = pod_steps(shop()["spec"])
    pods = [pod("Pending", [failed("wait-deps", 3, message="timed out")]),
            pod("Pending", [crash_looping("wait-deps", 5, "refused", restarts=4)])]
    [wait, _] = aggregate_steps(spec, pods, 2)
    assert wait["state"] == "Failed" and wait["exitCode"] == 5 and wait["reason"] == "CrashLoopBackOff"
    assert wait["pods"]["failed"] == 2 and wait["restartCount"] == 4


def status_for(doc: Obj, step: Plan, workload: Obj | None, pods: list[Obj]) -> Obj:
    return workload_status(doc, step, workload, pods, NOW)


def test_status_while_the_migration_runs_names_the_job_and_its_step() -> None:
    doc = shop()
    rev = revision(doc["spec"])
    the_job = job(f"shop-once-{rev}", rev)
    job_pod = named(pod("Pending", [done("wait-deps"), running("migrate")]), f"shop-once-{rev}-abcde", rev, "once")
    step = plan(doc["spec"], desired_of(doc), True, None, [the_job], {})
    status = status_for(doc, step, None, [job_pod])
    assert status["phase"] == "Initializing" and status["currentStep"] == "migrate"
    migrate = next(s for s in status["steps"] if s["name"] == "migrate")
    assert migrate["state"] == "Running" and migrate["once"] and migrate["pod"] == f"shop-once-{rev}-abcde"
    assert status["once"] == {"revision": rev, "job": f"shop-once-{rev}", "state": "Running",
                              "pod": f"shop-once-{rev}-abcde", "currentStep": "migrate"}
    assert "migrate is running" in status["message"]


def test_a_complete_job_means_its_steps_succeeded_even_before_its_pods_last_update_is_seen() -> None:
    doc = shop()
    rev = revision(doc["spec"])
    the_job = job(f"shop-once-{rev}", rev, "Complete")
    lagging = named(pod("Pending", [done("wait-deps"), running("migrate")]), f"shop-once-{rev}-abcde", rev, "once")
    step = plan(doc["spec"], desired_of(doc), True, None, [the_job], {})
    status = status_for(doc, step, None, [lagging])
    migrate = next(s for s in status["steps"] if s["name"] == "migrate")
    assert migrate["state"] == "Succeeded" and status["once"]["state"] == "Succeeded"
    # null, not absent: the status is a merge patch, which would keep the step of the run's last write
    assert "currentStep" in status["once"] and status["once"]["currentStep"] is None


def test_a_failed_migration_fails_the_pipeline_while_the_old_pods_serve() -> None:
    old, doc = shop(), shop()
    doc["spec"]["template"]["spec"]["containers"][0]["image"] = "shop:2.0"
    doc["metadata"]["generation"] = 2
    rev = revision(doc["spec"])
    workload = as_observed(desired_of(old), ready=3, updated=3, total=3)
    job_pod = named(pod("Failed", [done("wait-deps"), failed("migrate", 3, message="relation exists")]),
                    f"shop-once-{rev}-abcde", rev, "once")
    step = plan(doc["spec"], desired_of(doc), True, workload, [job(f"shop-once-{rev}", rev, "Failed")], {})
    status = status_for(doc, step, workload, [job_pod])
    assert status["phase"] == "Failed"
    failed_cond = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed_cond["status"] == "True" and failed_cond["reason"] == "OnceStepFailed"
    assert "relation exists" in status["message"] and "3/3 Pods of the previous revision ready" in status["message"]
    migrate = next(s for s in status["steps"] if s["name"] == "migrate")
    assert migrate["state"] == "Failed" and migrate["exitCode"] == 3


def test_ready_when_every_desired_pod_of_the_revision_is_ready() -> None:
    doc = shop()
    rev = revision(doc["spec"])
    previous = {"once": {"revision": rev, "state": "Succeeded", "job": f"shop-once-{rev}"}}
    doc["status"] = previous
    workload = as_observed(desired_of(doc), ready=3, updated=3, total=3)
    pods = [named(pod("Running", [done("wait-deps"), done("fetch-config")], ready=True, initialized=True),
                  f"shop-{i}", rev) for i in range(3)]
    step = plan(doc["spec"], desired_of(doc), True, workload, [], previous)
    status = status_for(doc, step, workload, pods)
    assert status["phase"] == "Running" and status["ready"] == "3/3"
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["status"] == "True"
    assert status["selector"] == f"{names.LABEL_UID}=u1" and status["replicas"] == 3
    assert [s["state"] for s in status["steps"]] == ["Succeeded"] * 3
    assert "stuckPods" not in status


def test_a_once_step_recorded_mid_run_is_shown_succeeded_once_its_job_pod_is_gone() -> None:
    """A status written while the run was under way (the Job seen Complete before its Pod's last
    update) must not leave the step Waiting for good once the Job's Pod is gone."""
    doc = shop()
    rev = revision(doc["spec"])
    previous = {"once": {"revision": rev, "state": "Succeeded", "job": f"shop-once-{rev}"},
                "steps": [{"name": "migrate", "kind": "migration", "state": "Waiting", "once": True}]}
    doc["status"] = previous
    workload = as_observed(desired_of(doc), ready=3, updated=3, total=3)
    step = plan(doc["spec"], desired_of(doc), True, workload, [], previous)
    status = status_for(doc, step, workload, [])
    migrate = next(s for s in status["steps"] if s["name"] == "migrate")
    assert migrate["once"] and migrate["state"] == "Succeeded"


def test_stuck_pods_are_named_but_bounded() -> None:
    doc = shop()
    doc["spec"]["workload"]["replicas"] = 100
    rev = revision(doc["spec"])
    previous = {"once": {"revision": rev, "state": "Succeeded"}}
    workload = as_observed(desired_of(doc), ready=0, updated=100, total=100)
    pods = [named(pod("Pending", [crash_looping("wait-deps", 1, "no route")]), f"shop-{i:03}", rev)
            for i in range(100)]
    status = status_for({**doc, "status": previous}, plan(doc["spec"], desired_of(doc), True, workload, [], previous),
                        workload, pods)
    assert status["stuckPodCount"] == 100 and len(status["stuckPods"]) == 5
    assert status["stuckPods"][0] == {"name": "shop-000", "step": "wait-deps", "reason": "CrashLoopBackOff",
                                      "message": status["stuckPods"][0]["message"]}
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and "and 99 more Pods" in degraded["message"]
    assert len(yaml.safe_dump(status)) < 8000


def test_a_pod_whose_sidecar_crash_loops_after_it_started_is_stuck_on_that_sidecar() -> None:
    steps = [{"name": "proxy", "container": {"image": "proxy:1", "restartPolicy": "Always"}},
             {"name": "migrate", "container": {"image": "shop:1"}}]
    p = named(pod("Running", [crash_looping("proxy", 1), done("migrate", T1, T2)], initialized=True), "shop-1", "r")
    d = derive(steps, p)
    assert d.phase == "Running"
    assert stuck_pods([(p, d)]) == [{"name": "shop-1", "step": "proxy", "reason": "CrashLoopBackOff",
                                     "message": d.degraded.message}]


def test_deleting_a_failed_job_tries_the_same_revision_again() -> None:
    doc = shop()
    rev = revision(doc["spec"])
    previous = {"once": {"revision": rev, "state": "Failed", "job": f"shop-once-{rev}"}}
    step = plan(doc["spec"], desired_of(doc), True, None, [], previous)
    assert step.create_job and not step.rolled


def test_a_revision_applied_while_an_earlier_job_runs_waits_and_says_so() -> None:
    doc = shop()
    step = plan(doc["spec"], desired_of(doc), True, None, [job("shop-once-0000000", "0000000")], {})
    status = status_for(doc, step, None, [])
    assert status["phase"] == "Initializing"
    assert "waiting for Job shop-once-0000000 of an earlier revision to finish" in status["message"]
