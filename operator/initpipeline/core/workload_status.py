"""The status of a Deployment or StatefulSet pipeline: its steps over the Pods of the current revision,
its once-steps' Job, and where its rollout stands (pure: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..spec import names, views
from ..spec.names import Obj
from .build import job_steps, once_job_name, pod_steps, selector_text
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
from .workload_plan import Plan, job_state, workload_revision

MAX_NAMED_PODS = 5  # the status names at most this many stuck Pods, whatever the replicas


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


# The status is written as a merge patch: a key that a run no longer has must be written as null, or the
# Pod and step of an earlier run (or revision) would stay.
_ONCE_CLEARED: Obj = {"pod": None, "currentStep": None}


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
        # only a finished entry: one written while the run was under way would say Waiting for good
        kept = {s["name"]: s for s in previous.get("steps") or []
                if prev_once.get("revision") == plan_.revision and s["name"] in once_names
                and s.get("state") == "Succeeded"}
        steps = [kept.get(n) or {"name": n, "kind": views.step_kind(s), "state": "Succeeded", "once": True}
                 for n, s in ((s["name"], s) for s in job_steps_spec) if n in once_names]
        job_ref = prev_once.get("job") if prev_once.get("revision") == plan_.revision else None
        return steps, {"revision": plan_.revision, "job": job_ref or job_name, "state": "Succeeded",
                       **_ONCE_CLEARED}, None, None
    d = derive(job_steps_spec, job_pod)
    pod_name = (job_pod or {}).get("metadata", {}).get("name")
    by_name = {s["name"]: s for s in d.steps}
    steps = [{**by_name[n], "once": True, "job": job_name, **({"pod": pod_name} if pod_name else {})}
             for n in once_names]
    state = "Pending" if job is None else {"Complete": "Succeeded", "Failed": "Failed"}.get(
        job_state(job), "Running")
    failure: Condition | None = None
    words: str | None = None
    if state == "Succeeded":
        # the Job completes only after every step did; its Pod's last update may not be seen yet
        for entry in steps:
            if entry["state"] != "Succeeded":
                entry["state"] = "Succeeded"
    elif state == "Failed":
        failed_job = views.condition((job or {}).get("status"), "Failed")
        why: Obj = failed_job if failed_job.get("status") == "True" else {}
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
    once = {"revision": plan_.revision, "job": job_name, "state": state, **_ONCE_CLEARED}
    if pod_name:
        once["pod"] = pod_name
    if d.current_step and state != "Succeeded":
        once["currentStep"] = d.current_step
    return steps, once, failure, words


@dataclass(frozen=True)
class Replicas:
    """What the workload's own status says about its Pods."""

    ready: int
    updated: int
    total: int
    synced: bool  # the workload's controller has seen its current spec, at this revision


@dataclass(frozen=True)
class Standing:
    """Where a workload pipeline stands: its phase, message, current step and condition values."""

    phase: str
    message: str
    current_step: str | None
    initialized: Condition
    ready: Condition
    degraded: Condition = NOT_SO
    failed: Condition = NOT_SO


def workload_status(pipeline: Obj, plan_: Plan, workload: Obj | None, pods: list[Obj], now: str) -> Obj:
    """The status of a Deployment or StatefulSet pipeline.

    `pods` are the pipeline's Pods: the workload's (of every revision) and its Jobs' Pods."""
    spec = pipeline["spec"]
    replicas = _replicas(workload, plan_.revision) if workload is not None else None
    return rollout_status(pipeline, plan_, replicas, int((spec.get("workload") or {}).get("replicas", 1)),
                          views.workload_kind(spec), pods, now)


def rollout_status(pipeline: Obj, plan_: Plan, replicas: Replicas | None, desired: int, kind: str, pods: list[Obj],
                   now: str, extra: Obj | None = None) -> Obj:
    """The status of a workload's rollout to the plan's revision, owned or attached: `replicas` as its
    controller reports them (None: there is no workload yet)."""
    meta, spec = pipeline["metadata"], pipeline["spec"]
    generation = int(meta.get("generation", 1))
    previous: Obj = pipeline.get("status") or {}
    current, job_pod = _revision_pods(pods, plan_.revision)
    once_entries: list[Obj] = []
    once_block: Obj | None = None
    once_failure: Condition | None = None
    once_words: str | None = None
    if job_steps(spec):
        once_entries, once_block, once_failure, once_words = _once_steps_view(
            meta["name"], spec, job_steps(spec), plan_.job, job_pod, plan_, previous)
    steps = _steps(spec, plan_, current, desired, once_entries)
    looks = [(p, derive(pod_steps(spec), p)) for p in current]  # once per Pod, for both figures below
    stuck = stuck_pods(looks)
    initialized_pods = sum(1 for p, d in looks
                           if not d.current_step and (p.get("status") or {}).get("phase") == "Running")
    serving = (f"{replicas.ready}/{replicas.total} Pods of the previous revision ready" if replicas is not None
               else "nothing runs yet")
    if once_failure is not None:
        msg = f"{once_failure.message}; revision {plan_.revision} is not rolled out ({serving})"
        stand = Standing("Failed", msg, (once_block or {}).get("currentStep"),
                         Condition(False, "OnceStepFailed", msg), Condition(False, "OnceStepFailed", msg),
                         Condition(True, "OnceStepFailed", msg), Condition(True, "OnceStepFailed", msg))
    elif not plan_.rolled:
        waiting = f"waiting for Job {plan_.waiting_for_job} of an earlier revision to finish" \
            if plan_.waiting_for_job else once_words or "starting the once-steps"
        msg = f"revision {plan_.revision}: {waiting}; {serving}"
        running = Condition(False, "OnceStepsRunning", msg)
        stand = Standing("Initializing", msg, (once_block or {}).get("currentStep"), running, running)
    elif replicas is None:
        msg = f"creating the {kind} {meta['name']}"
        pending = Condition(False, "WorkloadPending", msg)
        stand = Standing("Pending", msg, None, pending, pending)
    else:
        stand = _rollout(plan_.revision, desired, replicas, steps, stuck, initialized_pods)
    status: Obj = {
        "phase": stand.phase,
        "message": stand.message,
        "currentStep": stand.current_step,
        "observedGeneration": generation,
        "revision": plan_.revision,
        "workload": {"kind": kind, "name": meta["name"]},
        "replicas": replicas.total if replicas else 0,
        "readyReplicas": replicas.ready if replicas else 0,
        "updatedReplicas": replicas.updated if replicas else 0,
        "ready": f"{replicas.ready if replicas else 0}/{desired}",
        "selector": selector_text(pipeline),
        "steps": steps,
        "conditions": merge_conditions(previous.get("conditions"), {
            "Initialized": stand.initialized, "Ready": stand.ready, "Degraded": stand.degraded,
            "Failed": stand.failed,
        }, generation, now),
    }
    if once_block is not None:
        status["once"] = once_block
    if stuck:
        status["stuckPods"] = stuck[:MAX_NAMED_PODS]
        status["stuckPodCount"] = len(stuck)
    status.update(extra or {})
    return status


def _revision_pods(pods: list[Obj], revision: str) -> tuple[list[Obj], Obj | None]:
    """The app Pods of this revision that are not going away, and the oldest once-steps Pod of it."""
    def labels(p: Obj) -> dict[str, str]:
        return dict(p["metadata"].get("labels") or {})

    current = [p for p in pods if labels(p).get(names.LABEL_ROLE) != "once" and not p["metadata"].get(
        "deletionTimestamp") and labels(p).get(names.LABEL_REVISION) == revision]
    job_pod = next((p for p in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
                    if labels(p).get(names.LABEL_ROLE) == "once" and labels(p).get(names.LABEL_REVISION) == revision),
                   None)
    return current, job_pod


def _steps(spec: Obj, plan_: Plan, current: list[Obj], desired: int, once_entries: list[Obj]) -> list[Any]:
    """One entry per step in the spec's order: a once-step's single run, or an every-Pod step over the Pods."""
    every_pod = pod_steps(spec)
    pod_entries = {s["name"]: s for s in aggregate_steps(every_pod, current, desired)} if plan_.rolled else {
        s["name"]: {"name": s["name"], "kind": views.step_kind(s), "state": "Waiting", "restartCount": 0,
                    "pods": {"done": 0, "running": 0, "failed": 0, "waiting": 0}} for s in every_pod}
    once_by_name = {s["name"]: s for s in once_entries}
    return [once_by_name.get(s["name"]) or pod_entries[s["name"]] for s in spec["steps"]
            if s["name"] in once_by_name or s["name"] in pod_entries]


def _replicas(workload: Obj | None, revision: str) -> Replicas:
    wstatus: Obj = (workload or {}).get("status") or {}
    synced = workload is not None and int(wstatus.get("observedGeneration") or 0) >= int(
        workload["metadata"].get("generation") or 1) and workload_revision(workload) == revision
    return Replicas(int(wstatus.get("readyReplicas") or 0), int(wstatus.get("updatedReplicas") or 0),
                    int(wstatus.get("replicas") or 0), synced)


def _rollout(revision: str, desired: int, replicas: Replicas, steps: list[Obj], stuck: list[Obj],
             initialized_pods: int) -> Standing:
    """A workload at this revision: rolled out and ready, or how far its rollout is."""
    first_stuck = stuck[0] if stuck else None
    current_step = first_stuck["step"] if first_stuck else next(
        (s["name"] for s in steps if s["state"] not in ("Succeeded",) and not s.get("once")
         and not (s["state"] == "Running" and s.get("pods", {}).get("done", 0) >= desired)), None)
    degraded = NOT_SO
    if first_stuck is not None:
        more = f" (and {len(stuck) - 1} more Pods)" if len(stuck) > 1 else ""
        degraded = Condition(True, str(first_stuck["reason"]),
                             f"Pod {first_stuck['name']}: {first_stuck.get('message') or first_stuck['reason']}{more}")
    if replicas.synced and replicas.updated == desired and replicas.ready == desired and replicas.total == desired:
        msg = f"{replicas.ready}/{desired} Pods of revision {revision} ready"
        return Standing("Running", msg, current_step, Condition(True, "AllStepsSucceeded", msg),
                        Condition(True, "AllReplicasReady", msg), degraded)
    msg = (f"rolling out revision {revision}: {replicas.updated}/{desired} Pods updated, {replicas.ready}/{desired} "
           f"ready{', ' + degraded.message if degraded.holds else ''}")
    phase = "Running" if initialized_pods >= desired and desired > 0 else "Initializing"
    if desired == 0 and replicas.synced:
        phase = "Running"
    initialized = Condition(initialized_pods >= desired,
                            "AllStepsSucceeded" if initialized_pods >= desired else "StepInProgress", msg)
    return Standing(phase, msg, current_step, initialized,
                    Condition(False, "RollingOut" if replicas.synced else "WorkloadUpdating", msg), degraded)
