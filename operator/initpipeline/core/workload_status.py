"""The status of a Deployment or StatefulSet pipeline: its steps over the Pods of the current revision,
its once-steps' Job, and where its rollout stands (pure: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..spec import names, views
from ..spec.names import Obj
from .build import (
    ROLE_AFTER,
    ROLE_ONCE,
    after_job_name,
    after_steps,
    job_steps,
    once_job_name,
    pod_steps,
    selector_text,
)
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


Look = tuple[StepStatus, bool]  # a step in one Pod, and whether it is done there


def aggregate_steps(steps_spec: list[Obj], pods: list[Obj], desired: int) -> list[StepStatus]:
    """One entry per every-Pod step over the Pods of the current revision: a state that reflects
    them all, how many Pods are at which state, the earliest start and latest finish, and the worst
    failure."""
    per_pod = [_looks(steps_spec, pod) for pod in pods]
    return [_aggregate(spec, [looked[spec["name"]] for looked in per_pod], desired) for spec in steps_spec]


def _looks(steps_spec: list[Obj], pod: Obj) -> dict[str, Look]:
    statuses = {cs.get("name"): cs for cs in (pod.get("status") or {}).get("initContainerStatuses") or []}
    out: dict[str, Look] = {}
    for spec in steps_spec:
        step = step_status(spec, statuses.get(spec["name"]))
        out[spec["name"]] = (step, _done(spec, step, statuses.get(spec["name"])))
    return out


def _aggregate(spec: Obj, looks: list[Look], desired: int) -> StepStatus:
    counts = _counts(looks)
    state = _state_over_pods(spec, counts, desired)
    entry: StepStatus = {"name": spec["name"], "kind": views.step_kind(spec), "state": state, "pods": counts,
                         "restartCount": max((s.get("restartCount", 0) for s, _ in looks), default=0)}
    starts = [started for s, _ in looks if (started := s.get("startedAt"))]
    if starts:
        entry["startedAt"] = min(starts)
    ends = [finished for s, _ in looks if (finished := s.get("finishedAt")) and s["state"] == "Succeeded"]
    if ends and state == "Succeeded":
        entry["finishedAt"] = max(ends)
        entry["exitCode"] = 0  # in every Pod
    failures = [s for s, _ in looks if s["state"] == "Failed" or s.get("reason") in STUCK_REASONS]
    if failures:
        worst = max(failures, key=lambda s: (s["state"] == "Failed", s.get("restartCount", 0)))
        entry.update({key: worst[key] for key in ("exitCode", "reason", "message") if key in worst})  # type: ignore[typeddict-item]
    return entry


def _counts(looks: list[Look]) -> dict[str, int]:
    """How many Pods are where with this step (done includes a started sidecar)."""
    out = {"done": 0, "running": 0, "failed": 0, "waiting": 0}
    for step, done in looks:
        if done:
            out["done"] += 1
        elif step["state"] in ("Running", "Waiting"):
            out[step["state"].lower()] += 1
        if step["state"] == "Failed":
            out["failed"] += 1
    return out


def _state_over_pods(spec: Obj, counts: dict[str, int], desired: int) -> str:
    if counts["failed"]:
        return "Failed"
    if desired and counts["done"] >= desired:
        return "Running" if is_sidecar(spec) else "Succeeded"
    return "Running" if counts["running"] or counts["done"] else "Waiting"


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


@dataclass
class OnceView:
    """The once-steps' single run as the status shows it."""

    entries: list[Obj]  # their status.steps entries
    block: Obj  # status.once
    failure: Condition | None = None  # the run failed
    words: str | None = None  # what is happening, while it runs


def _once_steps_view(name: str, spec: Obj, job_steps_spec: list[Obj], job: Obj | None, job_pod: Obj | None,
                     plan_: Plan, previous: Obj) -> OnceView:
    kind = views.workload_kind(spec)
    once_names = [s["name"] for s in job_steps_spec if views.is_once(s, kind)]
    job_name = once_job_name(name, plan_.revision)
    if plan_.rolled and job_pod is None:
        return _ran_before(job_steps_spec, once_names, job_name, plan_.revision, previous)
    d = derive(job_steps_spec, job_pod)
    pod_name = (job_pod or {}).get("metadata", {}).get("name")
    by_name = {s["name"]: s for s in d.steps}
    view = OnceView([{**by_name[n], "once": True, "job": job_name, **({"pod": pod_name} if pod_name else {})}
                     for n in once_names], {})
    state = "Pending" if job is None else {"Complete": "Succeeded", "Failed": "Failed"}.get(
        job_state(job), "Running")
    if state == "Succeeded":
        # the Job completes only after every step did; its Pod's last update may not be seen yet
        for entry in view.entries:
            entry["state"] = "Succeeded"
    elif state == "Failed":
        view.failure = _once_failure(view.entries, d, job, job_name, plan_.revision)
    else:
        view.words = f"once-steps Job {job_name}: {d.message}" if state == "Running" else \
            f"starting the once-steps Job {job_name}"
    view.block = {"revision": plan_.revision, "job": job_name, "state": state, **_ONCE_CLEARED}
    if pod_name:
        view.block["pod"] = pod_name
    if d.current_step and state != "Succeeded":
        view.block["currentStep"] = d.current_step
    return view


def _ran_before(job_steps_spec: list[Obj], once_names: list[str], job_name: str, revision: str,
                previous: Obj) -> OnceView:
    """A run that succeeded before (the Job or its Pod may be gone): what the status recorded of it, but
    only finished entries (one written while the run was under way would say Waiting for good)."""
    prev_once = previous.get("once") or {}
    same = prev_once.get("revision") == revision
    kept = {s["name"]: s for s in previous.get("steps") or []
            if same and s["name"] in once_names and s.get("state") == "Succeeded"}
    steps = [kept.get(s["name"]) or {"name": s["name"], "kind": views.step_kind(s), "state": "Succeeded", "once": True}
             for s in job_steps_spec if s["name"] in once_names]
    job_ref = prev_once.get("job") if same else None
    return OnceView(steps, {"revision": revision, "job": job_ref or job_name, "state": "Succeeded", **_ONCE_CLEARED})


def _once_failure(entries: list[Obj], d: Derived, job: Obj | None, job_name: str, revision: str) -> Condition:
    """Why the run failed: its Pod's words, else the Job's (then the first unfinished step is the one)."""
    msg, why = _job_failure(d, job, job_name)
    if why is not None:
        current = next((s for s in entries if s["state"] != "Succeeded"), None)
        if current is not None:
            current.update(state="Failed", reason=why.get("reason") or "JobFailed")
    return Condition(True, "OnceStepFailed", f"once-steps of revision {revision} failed in Job {job_name}: {msg}")


def _job_failure(d: Derived, job: Obj | None, job_name: str) -> tuple[str, Obj | None]:
    """Why a steps Job failed: its Pod's words, else the Job's own (and then its Failed condition, for the
    caller to mark the first unfinished step)."""
    if d.phase == "Failed" or d.failed.holds or d.degraded.holds:
        return d.message, None
    failed_job = views.condition((job or {}).get("status"), "Failed")
    why: Obj = failed_job if failed_job.get("status") == "True" else {}
    return f"Job {job_name} failed: {why.get('reason', 'Failed')}: {why.get('message', '')}".rstrip(": "), why


@dataclass
class AfterView:
    """The after-rollout steps' run as the status shows it."""

    entries: list[Obj]  # their status.steps entries
    block: Obj  # status.afterRollout
    condition: Condition  # AfterRollout: True once they succeeded for this revision


def after_view(name: str, steps_spec: list[Obj], plan_: Plan, pods: list[Obj], previous: Obj) -> AfterView:
    """Where the after-rollout steps of the plan's revision stand: waiting for the rollout, running in their
    Job, or done; a failure is the pipeline's Degraded, never its Failed (the new version serves)."""
    rev, job = plan_.revision, plan_.after_job
    job_name = after_job_name(name, rev)
    after_names = [s["name"] for s in steps_spec if views.after_rollout(s)]
    before: Obj = previous.get("afterRollout") or {}
    if job is None and before.get("revision") == rev and before.get("state") == "Succeeded":
        kept = {s["name"]: s for s in previous.get("steps") or [] if s["name"] in after_names}
        entries = [kept.get(n) or {"name": n, "state": "Succeeded", "once": True, "when": names.AFTER_ROLLOUT}
                   for n in after_names]
        return AfterView(entries, dict(before), Condition(True, "AfterRolloutSucceeded", str(before.get("message"))))
    pod = _job_pod(pods, ROLE_AFTER, rev) if job is not None else None
    d = derive(steps_spec, pod)
    by_name = {s["name"]: s for s in d.steps}
    entries = [{**by_name[n], "once": True, "when": names.AFTER_ROLLOUT, "job": job_name} for n in after_names]
    block: Obj = {"revision": rev, "job": job_name, "pod": None, "currentStep": None, "startedAt": None,
                  "finishedAt": None}
    if job is None:
        state, message = "Waiting", f"waiting for revision {rev} to roll out: every Pod ready, none of an older one"
    else:
        state = {"Complete": "Succeeded", "Failed": "Failed"}.get(job_state(job), "Running")
        message = _after_message(state, d, job, job_name, rev)
        block.update(startedAt=job["metadata"].get("creationTimestamp"), pod=(pod or {}).get("metadata", {}).get(
            "name"), finishedAt=_job_finished(job), currentStep=d.current_step if state == "Running" else None)
        if state == "Succeeded":
            for entry in entries:
                entry["state"] = "Succeeded"
    block.update(state=state, message=message)
    reasons = {"Succeeded": "AfterRolloutSucceeded", "Failed": "AfterRolloutFailed", "Running": "AfterRolloutRunning"}
    return AfterView(entries, block, Condition(state == "Succeeded", reasons.get(state, "RollingOut"), message))


def _after_message(state: str, d: Derived, job: Obj, job_name: str, rev: str) -> str:
    if state == "Succeeded":
        return f"after-rollout steps of revision {rev} succeeded in Job {job_name}"
    if state == "Running":
        return f"after-rollout steps of revision {rev} run in Job {job_name}: {d.message}"
    why, _ = _job_failure(d, job, job_name)
    return (f"after-rollout steps of revision {rev} failed in Job {job_name}: {why}; the app serves on; delete "
            "the Job to run them again")


def _job_finished(job: Obj) -> str | None:
    jstatus: Obj = job.get("status") or {}
    if jstatus.get("completionTime"):
        return str(jstatus["completionTime"])
    failed = views.condition(jstatus, "Failed")
    return str(failed["lastTransitionTime"]) if failed.get("status") == "True" and failed.get(
        "lastTransitionTime") else None


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
    once_spec, after_spec = job_steps(spec), after_steps(spec)
    once = _once_steps_view(meta["name"], spec, once_spec, plan_.job, job_pod, plan_, previous) if once_spec else None
    after = after_view(meta["name"], after_spec, plan_, pods, previous) if after_spec else None
    steps = _steps(spec, plan_, current, desired, (once.entries if once else []) + (after.entries if after else []))
    looks = [(p, derive(pod_steps(spec), p)) for p in current]  # once per Pod, for both figures below
    stuck = stuck_pods(looks)
    if (once is not None and once.failure is not None) or not plan_.rolled or replicas is None:
        stand = _before_rollout(plan_, once, replicas, f"creating the {kind} {meta['name']}")
    else:
        initialized_pods = sum(1 for p, d in looks
                               if not d.current_step and (p.get("status") or {}).get("phase") == "Running")
        stand = _rollout(plan_.revision, desired, replicas, steps, stuck, initialized_pods)
    conditions = _conditions(stand, after)
    counts = replicas or Replicas(0, 0, 0, False)
    status: Obj = {
        "phase": stand.phase,
        "message": stand.message,
        "currentStep": stand.current_step,
        "observedGeneration": generation,
        "revision": plan_.revision,
        "workload": {"kind": kind, "name": meta["name"]},
        "replicas": counts.total,
        "readyReplicas": counts.ready,
        "updatedReplicas": counts.updated,
        "ready": f"{counts.ready}/{desired}",
        "selector": selector_text(pipeline),
        "steps": steps,
        "conditions": merge_conditions(previous.get("conditions"), conditions, generation, now),
    }
    if once is not None:
        status["once"] = once.block
    if after is not None:
        status["afterRollout"] = after.block
    if stuck:
        status["stuckPods"] = stuck[:MAX_NAMED_PODS]
        status["stuckPodCount"] = len(stuck)
    status.update(extra or {})
    return status


def _conditions(stand: Standing, after: AfterView | None) -> dict[str, Condition]:
    """The standing's conditions, and AfterRollout where the spec has such steps: their failure degrades
    the pipeline (unless something else already does), never fails it."""
    conditions = {"Initialized": stand.initialized, "Ready": stand.ready, "Degraded": stand.degraded,
                  "Failed": stand.failed}
    if after is not None:
        conditions["AfterRollout"] = after.condition
        if after.condition.reason == "AfterRolloutFailed" and not stand.degraded.holds:
            conditions["Degraded"] = Condition(True, "AfterRolloutFailed", after.condition.message)
    return conditions


def _stuck_condition(stuck: list[Obj]) -> Condition:
    """Degraded, named after the first stuck Pod (and how many more there are)."""
    if not stuck:
        return NOT_SO
    first = stuck[0]
    more = f" (and {len(stuck) - 1} more Pods)" if len(stuck) > 1 else ""
    why = first.get("message") or first["reason"]
    return Condition(True, str(first["reason"]), f"Pod {first['name']}: {why}{more}")


def _before_rollout(plan_: Plan, once: OnceView | None, replicas: Replicas | None, creating: str) -> Standing:
    """Where a revision stands before its rollout: its once-steps failed or still run, or the workload
    is being created."""
    serving = (f"{replicas.ready}/{replicas.total} Pods of the previous revision ready" if replicas is not None
               else "nothing runs yet")
    current_step = once.block.get("currentStep") if once else None
    if once is not None and once.failure is not None:
        msg = f"{once.failure.message}; revision {plan_.revision} is not rolled out ({serving})"
        failed = Condition(True, "OnceStepFailed", msg)
        not_ready = Condition(False, "OnceStepFailed", msg)
        return Standing("Failed", msg, current_step, not_ready, not_ready, failed, failed)
    if not plan_.rolled:
        waiting = f"waiting for Job {plan_.waiting_for_job} of an earlier revision to finish" \
            if plan_.waiting_for_job else (once.words if once else None) or "starting the once-steps"
        msg = f"revision {plan_.revision}: {waiting}; {serving}"
        running = Condition(False, "OnceStepsRunning", msg)
        return Standing("Initializing", msg, current_step, running, running)
    pending = Condition(False, "WorkloadPending", creating)
    return Standing("Pending", creating, None, pending, pending)


def _revision_pods(pods: list[Obj], revision: str) -> tuple[list[Obj], Obj | None]:
    """The app Pods of this revision that are not going away, and the oldest once-steps Pod of it."""
    def labels(p: Obj) -> dict[str, str]:
        return dict(p["metadata"].get("labels") or {})

    current = [p for p in pods if labels(p).get(names.LABEL_ROLE) not in (ROLE_ONCE, ROLE_AFTER)
               and not p["metadata"].get("deletionTimestamp") and labels(p).get(names.LABEL_REVISION) == revision]
    return current, _job_pod(pods, ROLE_ONCE, revision)


def _job_pod(pods: list[Obj], role: str, revision: str) -> Obj | None:
    """The oldest Pod of a revision's Job of this role."""
    return next((p for p in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
                 if (p["metadata"].get("labels") or {}).get(names.LABEL_ROLE) == role
                 and (p["metadata"].get("labels") or {}).get(names.LABEL_REVISION) == revision), None)


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
    current_step = stuck[0]["step"] if stuck else next(
        (s["name"] for s in steps if s["state"] != "Succeeded" and not s.get("once")
         and not (s["state"] == "Running" and s.get("pods", {}).get("done", 0) >= desired)), None)
    degraded = _stuck_condition(stuck)
    if replicas.synced and replicas.updated == desired and replicas.ready == desired and replicas.total == desired:
        msg = f"{replicas.ready}/{desired} Pods of revision {revision} ready"
        return Standing("Running", msg, current_step, Condition(True, "AllStepsSucceeded", msg),
                        Condition(True, "AllReplicasReady", msg), degraded)
    msg = (f"rolling out revision {revision}: {replicas.updated}/{desired} Pods updated, {replicas.ready}/{desired} "
           f"ready{', ' + degraded.message if degraded.holds else ''}")
    phase = "Running" if (initialized_pods >= desired > 0) or (desired == 0 and replicas.synced) else "Initializing"
    initialized = Condition(initialized_pods >= desired,
                            "AllStepsSucceeded" if initialized_pods >= desired else "StepInProgress", msg)
    return Standing(phase, msg, current_step, initialized,
                    Condition(False, "RollingOut" if replicas.synced else "WorkloadUpdating", msg), degraded)
