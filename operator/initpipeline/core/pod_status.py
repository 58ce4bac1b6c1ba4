"""Derives an InitPipeline's status from its Pod (pure: no cluster access)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Required, TypedDict, cast

from ..spec.lockwaits import LockWaits, parse_lock_waits
from ..spec.names import LABEL_PIPELINE, LABEL_UID, Obj
from ..spec.redaction import redact
from ..spec.views import condition, step_kind

# Waiting reasons that mean a step cannot make progress on its own.
STUCK_REASONS = frozenset({
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
})
MESSAGE_LIMIT = 1024

CONDITION_TYPES = ("Initialized", "Ready", "Degraded", "Failed")


def trim(message: str | None, limit: int = MESSAGE_LIMIT) -> str | None:
    """The last `limit` characters, passwords hidden: a failure's last words matter most, and a
    user's container may print its database URL."""
    if not message:
        return None
    message = redact(message.strip())
    return message if len(message) <= limit else "..." + message[-(limit - 3):]


class StepStatus(TypedDict, total=False):
    """One entry of status.steps (the CRD's schema of it)."""

    name: Required[str]
    kind: Required[str]
    state: Required[str]  # Waiting, Running, Succeeded, Failed
    restartCount: Required[int]
    startedAt: str | None  # None only until step_status prunes it
    finishedAt: str | None  # None only until step_status prunes it
    exitCode: int
    reason: str
    message: str | None  # None only until step_status prunes it
    # a workload's: how many Pods are where, or the single run of a once-step
    pods: dict[str, int]
    once: bool
    when: str  # AfterRollout: the step runs in the after-rollout Job
    job: str
    pod: str
    lockWaits: dict[str, float]  # a migration's: times it gave way to table locks, seconds it waited in all


def step_status(step: Obj, container_status: Obj | None) -> StepStatus:
    """One entry of status.steps from the init container's status."""
    out: StepStatus = {"name": step["name"], "kind": step_kind(step), "state": "Waiting", "restartCount": 0}
    if not container_status:
        return out
    out["restartCount"] = int(container_status.get("restartCount", 0))
    state = container_status.get("state") or {}
    last = (container_status.get("lastState") or {}).get("terminated")
    if "running" in state:
        out["state"] = "Running"
        out["startedAt"] = state["running"].get("startedAt")
    elif "terminated" in state:
        _fill_terminated(out, state["terminated"])
    elif "waiting" in state:
        waiting = state["waiting"] or {}
        reason = waiting.get("reason")
        if reason == "CrashLoopBackOff":
            if last:
                _fill_terminated(out, last)
            out["state"] = "Failed"
            out["reason"] = "CrashLoopBackOff"
        elif reason in STUCK_REASONS:
            out["reason"] = reason
            out["message"] = trim(waiting.get("message"))
        elif last and last.get("exitCode", 0) != 0:
            # Between a failed attempt and the next start: keep showing why it failed.
            _fill_terminated(out, last)
            out["state"] = "Failed"
    return cast(StepStatus, {k: v for k, v in out.items() if v is not None})


def _fill_terminated(out: StepStatus, term: Obj) -> None:
    code = int(term.get("exitCode", 0))
    out["state"] = "Succeeded" if code == 0 else "Failed"
    out["exitCode"] = code
    out["startedAt"] = term.get("startedAt")
    out["finishedAt"] = term.get("finishedAt")
    if code != 0:
        out["reason"] = term.get("reason") or "Error"
        out["message"] = trim(term.get("message"))
    waits = parse_lock_waits(term.get("message"))
    if waits is not None:
        out["lockWaits"] = {"times": waits.times, "seconds": round(waits.seconds, 1)}


class Condition(NamedTuple):
    """A condition's value: whether it holds, why (a CamelCase reason) and a message."""

    holds: bool
    reason: str
    message: str


NOT_SO = Condition(False, "AsExpected", "")


@dataclass
class Derived:
    phase: str
    message: str
    current_step: str | None
    steps: list[StepStatus]
    initialized: Condition
    ready: Condition
    degraded: Condition
    failed: Condition
    troubled_step: str | None = None  # a sidecar that degrades the pipeline without being its current step


def _describe(step: StepStatus, index: int, total: int) -> str:
    where = f"step {index + 1}/{total} {step['name']}"
    state, reason = step["state"], step.get("reason")
    if state == "Failed":
        detail = f"exit code {step['exitCode']}" if "exitCode" in step else reason or "failed"
        if reason == "CrashLoopBackOff":
            text = f"{where} is crash-looping ({detail}, {step['restartCount']} restarts)"
        else:
            text = f"{where} failed ({detail}{', ' + reason if reason and reason != 'Error' else ''})"
        return f"{text}: {step['message']}" if step.get("message") else text
    if reason:
        return f"{where} is stuck: {reason}" + (f": {step['message']}" if step.get("message") else "")
    return f"{where} is {state.lower()}"


def is_sidecar(step: Obj) -> bool:
    """A native sidecar (a container step with restartPolicy Always): it keeps running beside the
    later steps and the app, and the kubelet moves on once it has started."""
    return bool((step.get("container") or {}).get("restartPolicy") == "Always")


@dataclass
class _Look:
    """A Pod's steps as derive() sees them: their entries, which one is current, and a troubled sidecar."""

    steps: list[StepStatus]
    current_index: int | None
    trouble: Condition  # a sidecar that failed or is stuck after it had done its part (NOT_SO: none)
    troubled_step: str | None

    @property
    def current(self) -> StepStatus | None:
        return self.steps[self.current_index] if self.current_index is not None else None


def derive(steps_spec: list[Obj], pod: Obj | None) -> Derived:
    """Phase, message, current step, step states and condition values for a Pod."""
    total = len(steps_spec)
    if pod is None:
        steps = [step_status(s, None) for s in steps_spec]
        msg = "waiting for the Pod to be created"
        pending = Condition(False, "PodPending", msg)
        return Derived("Pending", msg, None, steps, pending, pending, NOT_SO, NOT_SO)
    status = pod.get("status") or {}
    look = _look(steps_spec, pod)
    current = look.current
    pod_phase = status.get("phase") or "Pending"
    if pod_phase == "Failed" and current is not None and current["state"] != "Failed":
        _killed(current, status)
    describe = _describe(current, look.current_index, total) if current and look.current_index is not None else ""
    if pod_phase == "Failed":
        return _pod_failed(look, status, total, describe)
    if pod_phase == "Succeeded":
        msg = f"all {total} steps succeeded and the app completed"
        return Derived("Succeeded", msg, None, look.steps, Condition(True, "AllStepsSucceeded", msg),
                       Condition(False, "PodCompleted", msg), NOT_SO, NOT_SO)
    scheduled = condition(pod.get("status"), "PodScheduled")
    if pod_phase == "Pending" and scheduled.get("status") == "False":
        return _unschedulable(look, scheduled)
    if current is not None:
        return _stepping(look, current, describe)
    return _steps_done(look, pod, pod_phase, total)


def _killed(current: StepStatus, status: Obj) -> None:
    """The kubelet killed the Pod (deadline, eviction) while this step ran or waited."""
    current["state"] = "Failed"
    current["reason"] = status.get("reason") or "PodFailed"
    if status.get("message"):
        current["message"] = trim(status["message"])


def _unschedulable(look: _Look, scheduled: Obj) -> Derived:
    msg = f"the Pod cannot be scheduled: {scheduled.get('message') or scheduled.get('reason')}"
    reason = scheduled.get("reason") or "Unschedulable"
    unscheduled = Condition(False, reason, msg)
    current = look.current
    return Derived("Pending", msg, current["name"] if current else None, look.steps, unscheduled, unscheduled,
                   Condition(True, reason, msg), NOT_SO)


def _stepping(look: _Look, current: StepStatus, describe: str) -> Derived:
    """A step runs, waits, failed or is stuck."""
    problem = current["state"] == "Failed" or current.get("reason") in STUCK_REASONS
    reason = current.get("reason") or ("StepFailed" if current["state"] == "Failed" else "StepInProgress")
    degraded = Condition(True, reason, describe) if problem else look.trouble
    return Derived("Initializing", describe if problem else _and(describe, look.trouble), current["name"],
                   look.steps, Condition(False, reason, describe), Condition(False, "Initializing", describe),
                   degraded, NOT_SO, None if problem else look.troubled_step)


def _look(steps_spec: list[Obj], pod: Obj) -> _Look:
    status = pod.get("status") or {}
    by_name = {cs.get("name"): cs for cs in status.get("initContainerStatuses") or []}
    steps = [step_status(s, by_name.get(s["name"])) for s in steps_spec]
    if (pod.get("spec") or {}).get("restartPolicy") != "Never" and status.get("phase") not in ("Failed", "Succeeded"):
        for step in steps:
            # From Kubernetes 1.36 the kubelet shows an init container that it backs off before restarting as
            # terminated (its last exit), where 1.35 and earlier show it waiting in CrashLoopBackOff: failed
            # again after a restart, it is crash-looping either way.
            if step["state"] == "Failed" and step["restartCount"] >= 1 and step.get("reason") != "CrashLoopBackOff":
                step["reason"] = "CrashLoopBackOff"
    initialized = condition(pod.get("status"), "Initialized").get("status") == "True"

    def done(index: int) -> bool:
        if steps[index]["state"] == "Succeeded":
            return True
        if not is_sidecar(steps_spec[index]):
            return False
        # A sidecar has done its part once it started: the kubelet went on to the later steps (or the app),
        # and restarts it there if it stops. Its failures then degrade the pipeline without holding it up.
        started = (by_name.get(steps[index]["name"]) or {}).get("started")
        return (steps[index]["state"] == "Running" and started is True) or initialized or any(
            later["state"] != "Waiting" or later.get("reason") for later in steps[index + 1:])

    current_index = next((i for i in range(len(steps)) if not done(i)), None)
    troubled = next(((i, step) for i, step in enumerate(steps[:current_index])
                     if is_sidecar(steps_spec[i]) and (step["state"] == "Failed" or step.get("reason"))), None)
    if troubled is None:
        return _Look(steps, current_index, NOT_SO, None)
    trouble = Condition(True, troubled[1].get("reason") or "StepFailed",
                        _describe(troubled[1], troubled[0], len(steps)))
    return _Look(steps, current_index, trouble, troubled[1]["name"])


def _pod_failed(look: _Look, status: Obj, total: int, describe: str) -> Derived:
    current = look.current
    reason = "DeadlineExceeded" if status.get("reason") == "DeadlineExceeded" else (
        current.get("reason", "PodFailed") if current else "PodFailed")
    if current is None:
        why = status.get("message") or status.get("reason") or "an app container exited with an error"
        msg = f"all {total} steps succeeded, then the Pod failed: {why}"
        reason = status.get("reason") or "AppFailed"
    else:
        msg = describe
    return Derived("Failed", msg, current["name"] if current else None, look.steps,
                   Condition(current is None, "StepFailed" if current else "AllStepsSucceeded", msg),
                   Condition(False, reason, msg), Condition(True, reason, msg), Condition(True, reason, msg))


def _steps_done(look: _Look, pod: Obj, pod_phase: str, total: int) -> Derived:
    """Every step has done its part: the app runs (ready or not) or its containers start."""
    all_done = Condition(True, "AllStepsSucceeded", f"all {total} steps succeeded")
    if pod_phase == "Running":
        pod_ready = condition(pod.get("status"), "Ready")
        if pod_ready.get("status") == "True":
            msg = f"all {total} steps succeeded; the app is running and ready"
            ready = Condition(True, "PodReady", msg)
        else:
            msg = f"all {total} steps succeeded; the app is running but not ready"
            ready = Condition(False, "PodNotReady", pod_ready.get("message") or msg)
        return Derived("Running", _and(msg, look.trouble), None, look.steps, all_done,
                       ready, look.trouble, NOT_SO, look.troubled_step)
    msg = f"all {total} steps succeeded; starting the app containers"
    return Derived("Initializing", _and(msg, look.trouble), None, look.steps, all_done,
                   Condition(False, "ContainersStarting", msg), look.trouble, NOT_SO, look.troubled_step)


def _and(message: str, trouble: Condition) -> str:
    return f"{message}; but {trouble.message}" if trouble.holds else message


def merge_conditions(previous: list[Obj] | None, values: dict[str, Condition],
                     generation: int, now: str) -> list[Obj]:
    """Standard conditions (and any other that values has); lastTransitionTime moves only when status flips."""
    old = {c.get("type"): c for c in previous or []}
    out: list[Obj] = []
    for ctype in (*CONDITION_TYPES, *(t for t in values if t not in CONDITION_TYPES)):
        ok, reason, message = values[ctype]
        status = "True" if ok else "False"
        before = old.get(ctype)
        since = before.get("lastTransitionTime") if before and before.get("status") == status else now
        out.append({"type": ctype, "status": status, "reason": reason, "message": message or "",
                    "lastTransitionTime": since or now, "observedGeneration": generation})
    return out


def build_status(pipeline: Obj, pod: Obj | None, now: str, extra: Obj | None = None) -> Obj:
    """The full status block for a pipeline and its current Pod (or None)."""
    meta, spec = pipeline["metadata"], pipeline["spec"]
    generation = int(meta.get("generation", 1))
    previous = pipeline.get("status") or {}
    d = derive(spec["steps"], pod)
    status: Obj = {
        "phase": d.phase,
        "message": d.message,
        "currentStep": d.current_step,
        "podName": (pod or {}).get("metadata", {}).get("name"),
        "observedGeneration": generation,
        "steps": d.steps,
        "conditions": merge_conditions(previous.get("conditions"), {
            "Initialized": d.initialized, "Ready": d.ready, "Degraded": d.degraded, "Failed": d.failed,
        }, generation, now),
        "podRecreations": int(previous.get("podRecreations", 0)),
    }
    # what the scale subresource and the READY column read, as for a workload of one replica
    ready = 1 if d.ready.holds else 0
    status.update(replicas=0 if pod is None else 1, readyReplicas=ready, ready=f"{ready}/1",
                  selector=f"{LABEL_UID}={meta['uid']}" if meta.get("uid") else f"{LABEL_PIPELINE}={meta['name']}")
    status.update(extra or {})
    return status


def invalid_status(pipeline: Obj, errors: list[str], now: str, reason: str = "InvalidSpec") -> Obj:
    """Status for a spec the operator cannot run (InvalidSpec) or whose Pod the API server refused
    (PodRejected, WorkloadRejected, JobRejected): reported; a Pod or workload is not retried until the spec
    changes."""
    generation = int(pipeline["metadata"].get("generation", 1))
    previous = pipeline.get("status") or {}
    head = {"InvalidSpec": "invalid spec: ", "WorkloadRejected": "the API server refused the workload: ",
            "JobRejected": "the API server refused the once-steps Job: "}.get(
        reason, "the API server refused the Pod: ")
    msg = head + "; ".join(errors)
    return {
        "phase": "Failed", "message": msg, "currentStep": None, "podName": None,
        "observedGeneration": generation, "steps": [],
        "conditions": merge_conditions(previous.get("conditions"), {
            "Initialized": Condition(False, reason, msg), "Ready": Condition(False, reason, msg),
            "Degraded": Condition(True, reason, msg), "Failed": Condition(True, reason, msg),
        }, generation, now),
        "podRecreations": int(previous.get("podRecreations", 0)),
    }


def same_status(a: Obj | None, b: Obj | None) -> bool:
    """Equal but for keys the caller does not own (e.g. kopf's own bookkeeping)."""
    def strip(s: Obj | None) -> dict[str, Any]:
        return {k: v for k, v in (s or {}).items() if k != "kopf"}
    return strip(a) == strip(b)


def _ended(step: Obj, prev: Obj) -> bool:
    """Whether this look at the step shows a run that had not ended at the previous look."""
    state, was = step["state"], prev.get("state")
    if state not in ("Succeeded", "Failed"):
        return False
    if state != was:
        return True
    # another failed attempt: a new finish time (a crash-looping step keeps its last attempt's),
    # or, without times, a new restart count
    if step.get("finishedAt") or prev.get("finishedAt"):
        return bool(step.get("finishedAt") != prev.get("finishedAt"))
    return bool(state == "Failed" and step.get("restartCount", 0) != prev.get("restartCount", 0))


def finished_steps(old_steps: list[Obj] | None, new_steps: list[Obj]) -> list[Obj]:
    """The steps whose run ended since old_steps: each run once, whatever the number of looks."""
    before = {s.get("name"): s for s in old_steps or []}
    return [step for step in new_steps if _ended(step, before.get(step["name"], {}))]


def step_events(old_steps: list[Obj] | None, new_steps: list[Obj]) -> list[tuple[str, str, str]]:
    """(type, reason, message) for each step that started, succeeded or failed since old_steps."""
    before = {s.get("name"): s for s in old_steps or []}
    events: list[tuple[str, str, str]] = []
    for step in new_steps:
        prev = before.get(step["name"], {})
        state, was = step["state"], prev.get("state")
        name = step["name"]
        if state == "Running" and was != "Running":
            events.append(("Normal", "StepStarted", f"step {name} started"))
        if not _ended(step, prev):
            continue
        if was in (None, "Waiting"):
            # a short step may start and finish between two looks at the Pod
            events.append(("Normal", "StepStarted", f"step {name} started"))
        if state == "Succeeded":
            waits = step.get("lockWaits")
            gave_way = f"; {LockWaits(waits['times'], waits['seconds']).phrase()}" if waits else ""
            events.append(("Normal", "StepSucceeded", f"step {name} succeeded{gave_way}"))
        else:
            detail = step.get("reason", "Error")
            if "exitCode" in step:
                detail += f", exit code {step['exitCode']}"
            text = f"step {name} failed ({detail})"
            if step.get("message"):
                text += f": {trim(step['message'], 300)}"
            events.append(("Warning", "StepFailed", text))
    return events
