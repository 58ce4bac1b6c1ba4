"""Steps after the rollout (`when: AfterRollout`): their Job, when it is due, and the status and Events that
tell migrated, rolled out and contracted apart."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from initpipeline.core.build import after_steps, build_after_job, build_once_job, job_steps, pod_steps, render, revision
from initpipeline.core.publish import after_rollout_events
from initpipeline.core.workload_plan import plan, rolled_out
from initpipeline.core.workload_status import workload_status
from initpipeline.spec import names
from initpipeline.spec.validation import validate_pipeline
from tests.cases import deployment as shop
from tests.cases import shop as pod_shop
from tests.cases import step
from tests.unit.pods import done, failed, pod, running
from tests.unit.workloads import as_observed, desired_of, job, named

Obj = dict[str, Any]
NOW = "2026-11-22T10:05:00Z"


def contracting() -> Obj:
    """The shop Deployment with a contract step after the rollout (the built-in runner on the same folder)."""
    doc = shop()
    step(doc, "migrate")["migration"] = copy.deepcopy(step(pod_shop(), "migrate")["migration"])
    doc["spec"]["steps"].insert(2, {"name": "contract", "when": "AfterRollout",
                                    "migration": copy.deepcopy(step(doc, "migrate")["migration"])})
    return doc


def rev() -> str:
    return revision(contracting()["spec"])


def app_pods(count: int, revision_: str) -> list[Obj]:
    return [named(ready_app(), f"shop-{i}", revision_) for i in range(count)]


def ready_app() -> Obj:
    return pod("Running", [done("wait-deps"), done("fetch-config")], ready=True, initialized=True)


def job_pod(*contract: Obj, phase: str = "Pending") -> Obj:
    return pod(phase, [done("wait-deps"), *contract], restart_policy="Never")


def test_the_after_steps_run_in_a_job_of_their_own_and_nowhere_else() -> None:
    spec = contracting()["spec"]
    assert [s["name"] for s in job_steps(spec)] == ["wait-deps", "migrate"]
    assert [s["name"] for s in after_steps(spec)] == ["wait-deps", "contract"]
    assert "contract" not in [s["name"] for s in pod_steps(spec)]
    after = build_after_job(contracting(), "runner:1")
    assert after is not None and after["metadata"]["name"] == f"shop-after-{rev()}"
    assert after["metadata"]["labels"][names.LABEL_ROLE] == "after"
    inits = {c["name"]: c for c in after["spec"]["template"]["spec"]["initContainers"]}
    assert list(inits) == ["wait-deps", "contract"]
    assert inits["contract"]["command"][-4:] == ["--lint", "block", "--when", "after-rollout"]
    once = build_once_job(contracting(), "runner:1")
    assert once is not None and "--when" not in {c["name"]: c for c in once["spec"]["template"]["spec"][
        "initContainers"]}["migrate"]["command"]
    assert [o["kind"] for o in render(contracting())] == ["Deployment", "Job", "Job"]
    assert build_after_job(shop(), "runner:1") is None


@pytest.mark.parametrize("change,words", [
    (lambda d: d["spec"]["steps"][0].update(when="AfterRollout"),
     "only migration and container steps can run after the rollout"),
    (lambda d: step(d, "contract").update(once=False), "a step that runs after the rollout runs once"),
    (lambda d: d["spec"]["workload"].update(kind="Pod", replicas=1),
     "when AfterRollout needs a Deployment or StatefulSet of the pipeline's own"),
])
def test_after_rollout_is_refused_where_it_cannot_run(change: Any, words: str) -> None:
    doc = contracting()
    assert validate_pipeline(doc, cel=True) == []
    change(doc)
    assert any(words in str(e) for e in validate_pipeline(doc, cel=True)), validate_pipeline(doc, cel=True)


def test_rolled_out_means_every_pod_of_the_revision_ready_and_none_older_left() -> None:
    desired = desired_of(contracting())
    full = as_observed(desired, ready=3, updated=3, total=3)
    full["status"]["availableReplicas"] = 3
    assert rolled_out(full, app_pods(3, rev()), rev())
    assert not rolled_out(full, [*app_pods(3, rev()), named(ready_app(), "old-0", "0ld")], rev())
    half = as_observed(desired, ready=3, updated=2, total=3)
    assert not rolled_out(half, app_pods(3, rev()), rev())
    stale = as_observed(desired, ready=3, updated=3, total=3)
    stale["metadata"]["generation"] = 2  # the controller has not seen the latest spec
    assert not rolled_out(stale, app_pods(3, rev()), rev())
    sts = copy.deepcopy(full)
    sts["kind"] = "StatefulSet"
    sts["status"].update(currentRevision="a", updateRevision="b")
    assert not rolled_out(sts, app_pods(3, rev()), rev())


def planned(workload: Obj, pods: list[Obj], jobs: list[Obj], previous: Obj | None = None) -> Any:
    doc = contracting()
    return plan(doc["spec"], desired_of(doc), True, workload, jobs, previous or {}, pods, True)


def rolled(ready: int = 3) -> Obj:
    workload = as_observed(desired_of(contracting()), ready=ready, updated=3, total=3)
    workload["status"]["availableReplicas"] = ready
    return workload


def test_the_after_job_is_made_once_the_rollout_is_over_and_only_then() -> None:
    once = job(f"shop-once-{rev()}", rev(), "Complete")
    assert not planned(rolled(ready=2), app_pods(3, rev()), [once]).create_after_job
    step_ = planned(rolled(), app_pods(3, rev()), [once])
    assert step_.rolled_out and step_.create_after_job
    # it exists, or it succeeded before (its Job since deleted): never again
    assert not planned(rolled(), app_pods(3, rev()), [once, job(f"shop-after-{rev()}", rev())]).create_after_job
    succeeded = {"afterRollout": {"revision": rev(), "state": "Succeeded"}}
    assert not planned(rolled(), app_pods(3, rev()), [once], succeeded).create_after_job
    # a failed one that was deleted runs again
    failed_before = {"afterRollout": {"revision": rev(), "state": "Failed"}}
    assert planned(rolled(), app_pods(3, rev()), [once], failed_before).create_after_job
    # an older revision's Job that still runs finishes first
    assert not planned(rolled(), app_pods(3, rev()), [once, job("shop-after-0ld", "0ld")]).create_after_job


def test_a_new_revision_before_the_after_job_ran_cancels_it() -> None:
    newer = contracting()
    newer["spec"]["template"]["spec"]["containers"][0]["image"] = "shop:1.1"
    new_rev = revision(newer["spec"])
    # the workload is being moved to the new revision: the old revision's after-steps are not run
    old_workload = rolled()
    step_ = plan(newer["spec"], desired_of(newer), True, old_workload,
                 [job(f"shop-once-{new_rev}", new_rev, "Complete")], {}, app_pods(3, rev()), True)
    assert step_.write_workload == "replace" and not step_.create_after_job


def status_with(after_job: Obj | None, the_pod: Obj | None, previous: Obj | None = None) -> Obj:
    doc = contracting()
    doc["status"] = previous or {}
    jobs = [job(f"shop-once-{rev()}", rev(), "Complete")] + ([after_job] if after_job else [])
    step_ = planned(rolled(), app_pods(3, rev()), jobs, previous)
    pods = app_pods(3, rev()) + ([named(the_pod, f"shop-after-{rev()}-x", rev(), "after")] if the_pod else [])
    return workload_status(doc, step_, rolled(), pods, NOW)


def conditions(status: Obj) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_the_status_says_waiting_running_succeeded_with_its_own_entry() -> None:
    waiting = status_with(None, None)
    assert waiting["afterRollout"]["state"] == "Waiting"
    assert conditions(waiting)["AfterRollout"] == ("False", "RollingOut")
    assert conditions(waiting)["Ready"][0] == "True"
    entry = next(s for s in waiting["steps"] if s["name"] == "contract")
    assert entry["when"] == "AfterRollout" and entry["state"] == "Waiting"

    after_job = job(f"shop-after-{rev()}", rev())
    after_job["metadata"]["creationTimestamp"] = "2026-11-22T10:04:00Z"
    run = status_with(after_job, job_pod(running("contract")))
    assert run["afterRollout"]["state"] == "Running" and run["afterRollout"]["startedAt"] == "2026-11-22T10:04:00Z"
    assert run["afterRollout"]["currentStep"] == "contract"
    assert conditions(run)["AfterRollout"] == ("False", "AfterRolloutRunning")
    assert run["phase"] == "Running"  # the new version serves meanwhile

    complete = job(f"shop-after-{rev()}", rev(), "Complete")
    complete["status"]["completionTime"] = "2026-11-22T10:04:30Z"
    ok = status_with(complete, job_pod(done("contract"), phase="Succeeded"))
    assert ok["afterRollout"]["state"] == "Succeeded" and ok["afterRollout"]["finishedAt"] == "2026-11-22T10:04:30Z"
    assert conditions(ok)["AfterRollout"] == ("True", "AfterRolloutSucceeded")
    assert next(s for s in ok["steps"] if s["name"] == "contract")["state"] == "Succeeded"
    # its Job deleted later: the status keeps what it recorded
    kept = status_with(None, None, previous=ok)
    assert kept["afterRollout"]["state"] == "Succeeded" and conditions(kept)["AfterRollout"][0] == "True"


def test_a_failed_after_job_degrades_the_pipeline_and_the_app_serves_on() -> None:
    broken = job(f"shop-after-{rev()}", rev(), "Failed")
    status = status_with(broken, job_pod(failed("contract", message="column name is in use"), phase="Failed"))
    assert status["afterRollout"]["state"] == "Failed"
    assert status["phase"] == "Running"
    assert conditions(status)["Degraded"] == ("True", "AfterRolloutFailed")
    assert conditions(status)["Failed"][0] == "False"
    assert "column name is in use" in status["afterRollout"]["message"]
    assert "delete the Job to run them again" in status["afterRollout"]["message"]


def test_events_mark_the_start_and_the_end_of_the_after_rollout_run() -> None:
    def block(state: str, revision_: str = "r1") -> Obj:
        return {"revision": revision_, "state": state, "job": "shop-after-r1", "message": f"it is {state}"}
    assert [e[1] for e in after_rollout_events(None, block("Waiting"))] == []
    assert [e[1] for e in after_rollout_events(block("Waiting"), block("Running"))] == ["AfterRolloutStarted"]
    assert [e[1] for e in after_rollout_events(block("Running"), block("Succeeded"))] == ["AfterRolloutSucceeded"]
    assert [(e[0], e[1]) for e in after_rollout_events(block("Waiting"), block("Failed"))] == [
        ("Normal", "AfterRolloutStarted"), ("Warning", "AfterRolloutFailed")]
    assert after_rollout_events(block("Succeeded"), block("Succeeded")) == []
    # a new revision's run starts afresh
    assert [e[1] for e in after_rollout_events(block("Succeeded", "r0"), block("Running"))] == ["AfterRolloutStarted"]
