"""Deployment and StatefulSet pipelines: what to create or replace, and their status (pure: no I/O).

A revision's once-steps run in one Job before the workload's template moves to that revision. The
planner decides from what the watches show (the workload, the pipeline's Jobs) and from what the
status already records (a revision whose once-steps succeeded never runs them again, even when its
Job is gone).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ..spec import names, views
from ..spec.names import Obj
from .build import job_steps, once_job_name, pod_steps, revision, selector_labels
from .pod_status import (
    NOT_SO,
    STUCK_REASONS,
    Condition,
    Derived,
    StepStatus,
    derive,
    is_sidecar,
    merge_conditions,
    step_status,
    trim,
)

ANNOTATION_SPEC_HASH = f"{names.GROUP}/spec-hash"
MAX_NAMED_PODS = 5  # the status names at most this many stuck Pods, whatever the replicas


def spec_hash(workload: Obj) -> str:
    """A hash of the workload's spec as the operator built it: a change means it must be rewritten."""
    return hashlib.sha256(json.dumps(workload["spec"], sort_keys=True).encode()).hexdigest()[:16]


def job_state(job: Obj) -> str:
    """Complete, Failed or Active, from the Job's terminal conditions (set once its Pod is gone)."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return str(cond["type"])
    return "Active"


def workload_revision(workload: Obj | None) -> str | None:
    if workload is None:
        return None
    labels = (((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(names.LABEL_REVISION)


def _job_revision(job: Obj) -> str | None:
    return ((job.get("metadata") or {}).get("labels") or {}).get(names.LABEL_REVISION)


@dataclass
class Plan:
    """What one reconcile pass does for a workload pipeline."""

    revision: str
    create_job: bool = False
    write_workload: str | None = None  # "create" or "replace"
    delete_jobs: list[str] = field(default_factory=list)
    waiting_for_job: str | None = None  # a Job of an earlier revision that still runs
    job: Obj | None = None  # this revision's Job, as observed
    rolled: bool = False  # the workload runs (or is being set to) this revision


def plan(spec: Obj, desired: Obj, job_needed: bool, workload: Obj | None, jobs: list[Obj],
         previous: Obj) -> Plan:
    rev = revision(spec)
    name = desired["metadata"]["name"]
    out = Plan(rev, job=next((j for j in jobs if j["metadata"]["name"] == once_job_name(name, rev)), None))
    once = previous.get("once") or {}
    done_before = once.get("revision") == rev and once.get("state") == "Succeeded"
    at_rev = workload_revision(workload) == rev
    job_done = out.job is not None and job_state(out.job) == "Complete"
    if job_needed and not (at_rev or done_before or job_done):
        if out.job is None:
            # never two once-step runs at a time: an earlier revision's Job is left to finish first
            running = [j["metadata"]["name"] for j in jobs if job_state(j) == "Active"]
            if running:
                out.waiting_for_job = running[0]
            else:
                out.create_job = True
        return out
    out.rolled = True
    if workload is None:
        out.write_workload = "create"
    elif (workload.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_SPEC_HASH) != spec_hash(desired) \
            or (workload.get("spec") or {}).get("replicas") != desired["spec"]["replicas"]:
        # a new spec, or someone scaled or edited the workload itself: the pipeline's spec wins
        out.write_workload = "replace"
    if at_rev or out.write_workload:
        out.delete_jobs = [j["metadata"]["name"] for j in jobs
                           if _job_revision(j) != rev and job_state(j) != "Active"]
    return out


# ---- status ----------------------------------------------------------------------------------------

def _done(step_spec: Obj, step: StepStatus, container_status: Obj | None) -> bool:
    if step["state"] == "Succeeded":
        return True
    return is_sidecar(step_spec) and step["state"] == "Running" and (container_status or {}).get("started") is True


def aggregate_steps(steps_spec: list[Obj], pods: list[Obj], desired: int) -> list[StepStatus]:
    """One entry per every-Pod step over the Pods of the current revision: a state that reflects
    them all, how many Pods are at which state, the earliest start and latest finish, and the worst
    failure."""
    per_pod: list[dict[str, tuple[StepStatus, bool]]] = []
    for pod in pods:
        statuses = {cs.get("name"): cs for cs in (pod.get("status") or {}).get("initContainerStatuses") or []}
        looked: dict[str, tuple[StepStatus, bool]] = {}
        for spec in steps_spec:
            step = step_status(spec, statuses.get(spec["name"]))
            looked[spec["name"]] = (step, _done(spec, step, statuses.get(spec["name"])))
        per_pod.append(looked)
    out: list[StepStatus] = []
    for spec in steps_spec:
        looks = [p[spec["name"]] for p in per_pod]
        counts = {"done": sum(1 for _, d in looks if d),
                  "running": sum(1 for s, d in looks if not d and s["state"] == "Running"),
                  "failed": sum(1 for s, _ in looks if s["state"] == "Failed"),
                  "waiting": sum(1 for s, d in looks if not d and s["state"] == "Waiting")}
        if counts["failed"]:
            state = "Failed"
        elif desired and counts["done"] >= desired:
            state = "Running" if is_sidecar(spec) else "Succeeded"
        elif counts["running"] or counts["done"]:
            state = "Running"
        else:
            state = "Waiting"
        entry: StepStatus = {"name": spec["name"], "kind": views.step_kind(spec), "state": state, "pods": counts,
                             "restartCount": max((s.get("restartCount", 0) for s, _ in looks), default=0)}
        failures = [s for s, _ in looks if s["state"] == "Failed" or s.get("reason") in STUCK_REASONS]
        starts = [started for s, _ in looks if (started := s.get("startedAt"))]
        if starts:
            entry["startedAt"] = min(starts)
        ends = [finished for s, _ in looks if (finished := s.get("finishedAt")) and s["state"] == "Succeeded"]
        if ends and state == "Succeeded":
            entry["finishedAt"] = max(ends)
            entry["exitCode"] = 0  # in every Pod
        if failures:
            worst = max(failures, key=lambda s: (s["state"] == "Failed", s.get("restartCount", 0)))
            if "exitCode" in worst:
                entry["exitCode"] = worst["exitCode"]
            if "reason" in worst:
                entry["reason"] = worst["reason"]
            if "message" in worst:
                entry["message"] = worst["message"]
        out.append(entry)
    return out


def stuck_pods(looks: list[tuple[Obj, Derived]]) -> list[Obj]:
    """The Pods that need a look (a step failing or stuck, or not schedulable), each with its step,
    from each Pod's derived view."""
    found: list[Obj] = []
    for pod, d in sorted(looks, key=lambda look: look[0]["metadata"]["name"]):
        if d.degraded.holds:
            found.append({"name": pod["metadata"]["name"], "step": d.troubled_step or d.current_step,
                          "reason": d.degraded.reason, "message": trim(d.degraded.message, 256)})
    return found


def _once_steps_view(name: str, spec: Obj, job_steps_spec: list[Obj], job: Obj | None, job_pod: Obj | None,
                     plan_: Plan, previous: Obj) -> tuple[list[Obj], Obj, Condition | None, str | None]:
    """The once-steps' single run: their entries, the status's `once` block, a failure (failed, reason,
    message) if the run failed, and what is happening in words while it runs."""
    kind = views.workload_kind(spec)
    once_names = [s["name"] for s in job_steps_spec if views.is_once(s, kind)]
    job_name = once_job_name(name, plan_.revision)
    prev_once = previous.get("once") or {}
    if plan_.rolled and job_pod is None:
        # ran before (the Job or its Pod may be gone): keep what the status recorded of that run
        kept = {s["name"]: s for s in previous.get("steps") or []
                if prev_once.get("revision") == plan_.revision and s["name"] in once_names}
        steps = [kept.get(n) or {"name": n, "kind": views.step_kind(s), "state": "Succeeded", "once": True}
                 for n, s in ((s["name"], s) for s in job_steps_spec) if n in once_names]
        job_ref = prev_once.get("job") if prev_once.get("revision") == plan_.revision else None
        return steps, {"revision": plan_.revision, "job": job_ref or job_name, "state": "Succeeded"}, None, None
    d = derive(job_steps_spec, job_pod)
    pod_name = (job_pod or {}).get("metadata", {}).get("name")
    by_name = {s["name"]: s for s in d.steps}
    steps = [{**by_name[n], "once": True, "job": job_name, **({"pod": pod_name} if pod_name else {})}
             for n in once_names]
    state = "Pending" if job is None else {"Complete": "Succeeded", "Failed": "Failed"}.get(
        job_state(job), "Running")
    failure: Condition | None = None
    words: str | None = None
    if state == "Failed":
        why: Obj = next((c for c in (job or {}).get("status", {}).get("conditions") or []
                    if c.get("type") == "Failed" and c.get("status") == "True"), {})
        if d.phase == "Failed" or d.failed.holds or d.degraded.holds:
            msg = d.message
        else:
            msg = f"Job {job_name} failed: {why.get('reason', 'Failed')}: {why.get('message', '')}".rstrip(": ")
            current = next((s for s in steps if s["state"] != "Succeeded"), None)
            if current is not None:
                current.update(state="Failed", reason=why.get("reason") or "JobFailed")
        failure = Condition(True, "OnceStepFailed",
                            f"once-steps of revision {plan_.revision} failed in Job {job_name}: {msg}")
    elif state == "Running":
        words = f"once-steps Job {job_name}: {d.message}"
    elif state == "Pending":
        words = f"starting the once-steps Job {job_name}"
    once = {"revision": plan_.revision, "job": job_name, "state": state}
    if pod_name:
        once["pod"] = pod_name
    if d.current_step and state != "Succeeded":
        once["currentStep"] = d.current_step
    return steps, once, failure, words


def workload_status(pipeline: Obj, plan_: Plan, workload: Obj | None, pods: list[Obj], now: str,
                    extra: Obj | None = None) -> Obj:
    """The status of a Deployment or StatefulSet pipeline.

    `pods` are the pipeline's Pods: the workload's (of every revision) and its Jobs' Pods."""
    meta, spec = pipeline["metadata"], pipeline["spec"]
    generation = int(meta.get("generation", 1))
    previous: Obj = pipeline.get("status") or {}
    kind = views.workload_kind(spec)
    desired = int((spec.get("workload") or {}).get("replicas", 1))
    rev = plan_.revision
    every_pod = pod_steps(spec)
    once_spec = job_steps(spec)

    def labels(p: Obj) -> dict[str, str]:
        return dict(p["metadata"].get("labels") or {})

    app_pods = [p for p in pods
                if labels(p).get(names.LABEL_ROLE) != "once" and not p["metadata"].get("deletionTimestamp")]
    current = [p for p in app_pods if labels(p).get(names.LABEL_REVISION) == rev]
    job_pod = next((p for p in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
                    if labels(p).get(names.LABEL_ROLE) == "once" and labels(p).get(names.LABEL_REVISION) == rev), None)

    once_entries: list[Obj] = []
    once_block: Obj | None = None
    once_failure: Condition | None = None
    once_words: str | None = None
    if once_spec:
        once_entries, once_block, once_failure, once_words = _once_steps_view(
            meta["name"], spec, once_spec, plan_.job, job_pod, plan_, previous)
    pod_entries = {s["name"]: s for s in aggregate_steps(every_pod, current, desired)} if plan_.rolled else {
        s["name"]: {"name": s["name"], "kind": views.step_kind(s), "state": "Waiting", "restartCount": 0,
                    "pods": {"done": 0, "running": 0, "failed": 0, "waiting": 0}} for s in every_pod}
    once_by_name = {s["name"]: s for s in once_entries}
    steps = [once_by_name.get(s["name"]) or pod_entries[s["name"]] for s in spec["steps"]
             if s["name"] in once_by_name or s["name"] in pod_entries]

    wstatus: Obj = (workload or {}).get("status") or {}
    ready_n = int(wstatus.get("readyReplicas") or 0)
    updated_n = int(wstatus.get("updatedReplicas") or 0)
    total_n = int(wstatus.get("replicas") or 0)
    synced = workload is not None and int(wstatus.get("observedGeneration") or 0) >= int(
        workload["metadata"].get("generation") or 1) and workload_revision(workload) == rev
    looks = [(p, derive(every_pod, p)) for p in current]  # once per Pod, for both figures below
    stuck = stuck_pods(looks)
    initialized_n = sum(1 for p, d in looks if not d.current_step and (p.get("status") or {}).get("phase") == "Running")
    serving = f"{ready_n}/{total_n} Pods of the previous revision ready" if workload is not None else "nothing runs yet"
    not_failed = NOT_SO
    degraded: Condition = not_failed
    failed: Condition = not_failed
    if once_failure is not None:
        msg = f"{once_failure.message}; revision {rev} is not rolled out ({serving})"
        phase, current_step = "Failed", (once_block or {}).get("currentStep")
        failed = degraded = Condition(True, "OnceStepFailed", msg)
        initialized = ready = Condition(False, "OnceStepFailed", msg)
    elif not plan_.rolled:
        waiting = f"waiting for Job {plan_.waiting_for_job} of an earlier revision to finish" \
            if plan_.waiting_for_job else once_words or "starting the once-steps"
        msg = f"revision {rev}: {waiting}; {serving}"
        phase, current_step = "Initializing", (once_block or {}).get("currentStep")
        initialized = ready = Condition(False, "OnceStepsRunning", msg)
    elif workload is None:
        msg = f"creating the {kind} {meta['name']}"
        phase, current_step = "Pending", None
        initialized = ready = Condition(False, "WorkloadPending", msg)
    else:
        all_ready = synced and updated_n == desired and ready_n == desired and total_n == desired
        first_stuck = stuck[0] if stuck else None
        current_step = first_stuck["step"] if first_stuck else next(
            (s["name"] for s in steps if s["state"] not in ("Succeeded",) and not s.get("once")
             and not (s["state"] == "Running" and s.get("pods", {}).get("done", 0) >= desired)), None)
        if first_stuck is not None:
            more = f" (and {len(stuck) - 1} more Pods)" if len(stuck) > 1 else ""
            degraded = Condition(True, str(first_stuck["reason"]),
                        f"Pod {first_stuck['name']}: {first_stuck.get('message') or first_stuck['reason']}{more}")
        if all_ready:
            msg = f"{ready_n}/{desired} Pods of revision {rev} ready"
            phase = "Running"
            initialized = Condition(True, "AllStepsSucceeded", msg)
            ready = Condition(True, "AllReplicasReady", msg)
        else:
            msg = (f"rolling out revision {rev}: {updated_n}/{desired} Pods updated, {ready_n}/{desired} ready"
                   f"{', ' + degraded.message if degraded.holds else ''}")
            phase = "Running" if initialized_n >= desired and desired > 0 else "Initializing"
            if desired == 0 and synced:
                phase = "Running"
            initialized = Condition(initialized_n >= desired, "AllStepsSucceeded" if initialized_n >= desired
                           else "StepInProgress", msg)
            ready = Condition(False, "RollingOut" if synced else "WorkloadUpdating", msg)
    status: Obj = {
        "phase": phase,
        "message": msg,
        "currentStep": current_step,
        "observedGeneration": generation,
        "revision": rev,
        "workload": {"kind": kind, "name": meta["name"]},
        "replicas": total_n,
        "readyReplicas": ready_n,
        "updatedReplicas": updated_n,
        "ready": f"{ready_n}/{desired}",
        "selector": ",".join(f"{k}={v}" for k, v in selector_labels(pipeline).items()),
        "steps": steps,
        "conditions": merge_conditions(previous.get("conditions"), {
            "Initialized": initialized, "Ready": ready, "Degraded": degraded, "Failed": failed,
        }, generation, now),
    }
    if once_block is not None:
        status["once"] = once_block
    if stuck:
        status["stuckPods"] = stuck[:MAX_NAMED_PODS]
        status["stuckPodCount"] = len(stuck)
    status.update(extra or {})
    return status
