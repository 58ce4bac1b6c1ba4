"""One reconcile pass, decided at once (pure): from the view of the caches and the clock to the writes to
make, the status to publish, the Events, the metrics and the next wake-up.

controller/reconciler.py gathers the `View` and applies the `Plan`; it decides nothing. A write whose
result matters (a child the API server refuses) is remembered and read by the next pass (`Refused`),
not acted on in this one. The same Plan serves the three modes: a Pod, a workload the pipeline owns, and
a workload of the user's that it attaches to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..spec import names, views
from ..spec.names import Obj
from ..spec.validation import validate_pipeline
from .attach.job import attached_job
from .attach.plan import plan_attached
from .attach.revision import other_gates
from .attach.status import attach_status
from .build import after_steps, build_after_job, build_once_job, build_pod, build_workload
from .children import Children, owned_by, stale_children
from .objects import ObjectRef, Observation, object_waits, plan_objects
from .pod_plan import plan_pod, rejected
from .pod_status import build_status, invalid_status
from .policy import injection, refused_injection
from .publish import Event, Publication, publication
from .workload_plan import ANNOTATION_SPEC_HASH, plan, spec_hash
from .workload_status import workload_status

TERMINATING_MEMORY = 120  # seconds: a namespace's deletion has finished (or failed) by then
RETRY_REFUSED = 5.0  # seconds before a child refused "for now" is created again
Action = Literal["create", "replace", "delete", "annotate", "ungate", "stop"]


@dataclass(frozen=True)
class Refused:
    """The API server refused a child of this generation (in the pass before): for good, or for now (a
    refusal that passes by itself, pod_plan.refused_for_now), in which case it is created again later."""

    generation: int
    reason: str  # PodRejected, WorkloadRejected or JobRejected
    message: str
    at: dt.datetime | None = None  # for now: when (None: for good)


@dataclass(frozen=True)
class Remembered:
    """What the operator remembers of the pipeline between passes (controller/memory.py)."""

    written: Obj | None = None  # the status last written: newer than a cache that is behind
    handled: int = 0  # the newest generation reconciled
    last_write: float | None = None  # seconds on the clock
    held_since: float | None = None
    refused: Refused | None = None


@dataclass(frozen=True)
class View:
    """All that one pass reads, gathered once from the caches and the operator's memory."""

    pipeline: Obj | None
    children: Children
    remembered: Remembered
    seen: Callable[[ObjectRef], Observation | None]  # what the object watches saw last
    terminating_since: dt.datetime | None  # when a create in the namespace was refused as it goes away
    runner_image: str


@dataclass(frozen=True)
class Write:
    """One write to the API server, and what the controller does with its outcome."""

    action: Action
    kind: str
    namespace: str
    name: str
    log: str  # said once it is done
    body: Obj | None = None  # create, replace (owner references are added when applied)
    value: Any = None  # annotate: (key, value); ungate: the gates kept; stop: activeDeadlineSeconds
    refused: str | None = None  # create: the Failed reason when the API server refuses it for good
    brings_status: bool = False  # create: the child's ADDED event brings the status, so none is written now


@dataclass
class Plan:
    writes: list[Write] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)  # posted once the writes are done
    publish: Publication | None = None  # the status, unless there is nothing to say
    wake_at: dt.datetime | None = None  # the steps' deadline
    watch: set[ObjectRef] | None = None  # the objects to watch for waitForObject (None: as they are)
    handled: int | None = None  # the generation this pass handles
    forget_terminating: bool = False  # the namespace seen going away is not this pipeline's any more
    hold_refused: bool = False  # a child refused for now is not due again yet: keep remembering it

    @property
    def status(self) -> Obj:
        return self.publish.status if self.publish else {}


def decide(view: View, now: dt.datetime) -> Plan:
    """The plan of one pass. `now` is the one clock's time: status times, holds and deadlines all read it."""
    pipeline = view.pipeline
    if pipeline is None or pipeline["metadata"].get("deletionTimestamp"):
        return Plan()  # gone or being deleted: garbage collection removes the children
    out = Plan()
    if view.terminating_since is not None:
        if _still_terminating(pipeline, view.terminating_since, now):
            return out  # the namespace is going away, and the pipeline with it
        out.forget_terminating = True
    generation = int(pipeline["metadata"].get("generation", 1))
    if generation < view.remembered.handled:
        return out  # the cache has not caught up with a spec already handled; its event will come
    out.handled = generation
    # the status the operator last wrote is newer than a cache that is behind; the status builders carry it over
    previous: Obj = view.remembered.written or pipeline.get("status") or {}
    pipeline = {**pipeline, "status": previous}
    return _plan_spec(out, view, pipeline, previous, now, generation)


def _plan_spec(out: Plan, view: View, pipeline: Obj, previous: Obj, now: dt.datetime, generation: int) -> Plan:
    """The pass of a generation that is the cache's newest: the spec's refusal, or its mode's plan."""
    stamp = views.rfc3339(now)
    errors = validate_pipeline(pipeline)
    if errors:
        out.watch = set()
        invalid = invalid_status(pipeline, [str(e) for e in errors], stamp)
        if views.attached(pipeline["spec"]):
            invalid["injection"] = refused_injection(pipeline, str(errors[0]))
        return _publish(out, view, pipeline, previous, invalid, now)
    refused = view.remembered.refused if view.remembered.refused and \
        view.remembered.refused.generation == generation else None
    if refused is not None and refused.at is None and not rejected(previous, generation, refused.reason):
        return _publish(out, view, pipeline, previous, invalid_status(pipeline, [refused.message], stamp,
                                                                      refused.reason), now)
    objects = _objects(out, view, pipeline, previous, stamp)
    due = _due_again(refused, now)
    status: Obj | None
    if views.attached(pipeline["spec"]):
        status = _attached(out, view, pipeline, previous, stamp)
    elif views.workload_kind(pipeline["spec"]) == "Pod":
        status = _pod(out, view, pipeline, previous, now, hold_create=due is not None)
    else:
        status = _workload(out, view, pipeline, previous, stamp)
    if status is None:
        return out
    if refused is not None and due is not None:
        status = _refused_for_now(out, status, refused, due)
    return _publish(out, view, pipeline, previous, {**status, **objects}, now)


def _still_terminating(pipeline: Obj, seen: dt.datetime, now: dt.datetime) -> bool:
    """Whether the namespace that refused a create as being deleted is still this pipeline's: one made
    after that refusal is a new namespace of the same name."""
    created = views.parse_time(pipeline["metadata"].get("creationTimestamp"))
    return now - seen <= dt.timedelta(seconds=TERMINATING_MEMORY) and (created is None or created <= seen)


def _due_again(refused: Refused | None, now: dt.datetime) -> dt.datetime | None:
    """When a child refused for now is to be created again, while that is still to come (else None)."""
    if refused is None or refused.at is None:
        return None
    due = refused.at + dt.timedelta(seconds=RETRY_REFUSED)
    return due if now < due else None


def _refused_for_now(out: Plan, status: Obj, refused: Refused, due: dt.datetime) -> Obj:
    """A child refused for now, not due again yet: the status says why, and nothing is created until then."""
    out.writes = [w for w in out.writes if w.action != "create"]
    out.hold_refused = True
    out.wake_at = due if out.wake_at is None else min(out.wake_at, due)
    return {**status, "message": f"the API server refused the {refused.reason.removesuffix('Rejected')} for now "
                                 f"({refused.message}); trying again every {RETRY_REFUSED:g} s"}


def _publish(out: Plan, view: View, pipeline: Obj, previous: Obj, status: Obj, now: dt.datetime) -> Plan:
    memory = view.remembered
    out.publish = publication(views.workload_kind(pipeline["spec"]) == "Pod", previous, status, now.timestamp(),
                              memory.last_write, memory.held_since)
    return out


def _objects(out: Plan, view: View, pipeline: Obj, previous: Obj, stamp: str) -> Obj:
    """waitForObject: the objects to watch, the Pods to tell which steps may pass, and status.objects
    (a null clears the entries of steps that are gone: the status is a merge patch)."""
    namespace = pipeline["metadata"]["namespace"]
    waits = object_waits(pipeline)
    step = plan_objects(waits, previous.get("objects"), {w.ref: view.seen(w.ref) for w in waits},
                        view.children.pods, stamp)
    out.watch = step.watch
    out.writes += [Write("annotate", "Pod", namespace, pod, f"objects waited for are there: steps {step.met_value} "
                         f"of Pod {pod} may pass", value=(names.ANNOTATION_OBJECTS_MET, step.met_value))
                   for pod in step.annotate]
    return {"objects": step.entries or None}


def _deletes(namespace: str, stale: list[Obj], why: str) -> list[Write]:
    """Delete what an older generation or a spec of another kind left behind."""
    out = []
    for child in stale:
        kind, name = str(child.get("kind") or "Pod"), child["metadata"]["name"]  # cached Pods are slimmed kindless
        out.append(Write("delete", kind, namespace, name, f"deleted {kind} {name}: {why}"))
    return out


def _old_jobs(namespace: str, jobs: list[str]) -> list[Write]:
    return [Write("delete", "Job", namespace, name, f"deleted Job {name} of an earlier revision") for name in jobs]


def _pod(out: Plan, view: View, pipeline: Obj, previous: Obj, now: dt.datetime, hold_create: bool) -> Obj | None:
    """A pipeline of kind Pod: its Pod of this generation, recreated when deleted, stopped at its deadline."""
    meta = pipeline["metadata"]
    namespace, generation = meta["namespace"], int(meta.get("generation", 1))
    step = plan_pod(pipeline, view.children, previous, now)
    out.writes += _deletes(namespace, step.stale,
                           f"the pipeline now runs the Pod of generation {generation}")
    if step.wait_for_new_spec:
        return None  # the same spec would be refused again; wait for a new generation
    current, extra = step.current, {}
    if step.create and not hold_create:
        current = build_pod(pipeline, view.runner_image)
        recreation = previous.get("podName") == step.wanted and previous.get("observedGeneration") == generation
        if recreation:
            extra["podRecreations"] = int(previous.get("podRecreations", 0)) + 1
            out.events.append(("Warning", "PodRecreated", f"Pod {step.wanted} was deleted and has been recreated"))
        # a recreation is news at once; a first Pod's status comes with its ADDED event
        out.writes.append(Write("create", "Pod", namespace, step.wanted, f"created Pod {step.wanted}", body=current,
                                refused="PodRejected", brings_status=not recreation))
    if step.stop_steps is not None:
        out.writes.append(Write("stop", "Pod", namespace, step.wanted,
                                f"steps exceeded activeDeadlineSeconds={step.stop_steps}; stopping Pod {step.wanted}",
                                value=step.stop_steps))
    else:
        out.wake_at = step.wake_at
    status = build_status(pipeline, current, views.rfc3339(now), extra)
    if current is None:
        # keep the name: it is how the next pass knows that the Pod it creates is a recreation
        status["podName"] = step.wanted
        status["message"] = f"Pod {step.wanted} is being deleted; it will be recreated"
    return status


def ours(pipeline: Obj, desired: Obj, workloads: list[Obj]) -> tuple[Obj | None, list[Obj]]:
    """The workload that is the pipeline's (its kind and name), and every workload it owns."""
    uid, name = pipeline["metadata"]["uid"], pipeline["metadata"]["name"]
    mine = [w for w in workloads if owned_by(w, uid)]
    return next((w for w in mine if w.get("kind") == desired["kind"] and w["metadata"]["name"] == name), None), mine


def _workload(out: Plan, view: View, pipeline: Obj, previous: Obj, stamp: str) -> Obj | None:
    """A Deployment or StatefulSet: the once-steps' Job first, then the workload at this revision."""
    meta = pipeline["metadata"]
    namespace, uid, name = meta["namespace"], meta["uid"], meta["name"]
    if rejected(previous, int(meta.get("generation", 1)), "WorkloadRejected"):
        return None  # the same spec would be refused again; wait for a new generation
    desired = build_workload(pipeline, view.runner_image)
    desired["metadata"].setdefault("annotations", {})[ANNOTATION_SPEC_HASH] = spec_hash(desired)
    kind = desired["kind"]
    job = build_once_job(pipeline, view.runner_image)
    workload, mine = ours(pipeline, desired, view.children.workloads)
    step = plan(pipeline["spec"], desired, job is not None, workload,
                [j for j in view.children.jobs if owned_by(j, uid)], previous,
                view.children.pods, bool(after_steps(pipeline["spec"])))
    out.writes += _deletes(namespace, stale_children(uid, view.children.pods, lambda _: False)
                           + stale_children(uid, mine, lambda w: w is workload), f"the pipeline now runs a {kind}")
    if step.create_job and job is not None:
        out.writes.append(Write("create", "Job", namespace, job["metadata"]["name"],
                                f"created Job {job['metadata']['name']} for the once-steps of revision {step.revision}",
                                body=job, refused="WorkloadRejected", brings_status=True))
    if step.write_workload == "create":
        out.writes.append(Write("create", kind, namespace, name, f"created {kind} {name} at revision {step.revision}",
                                body=desired, refused="WorkloadRejected", brings_status=True))
    elif step.write_workload == "replace" and workload is not None:
        desired["metadata"]["resourceVersion"] = workload["metadata"]["resourceVersion"]
        out.writes.append(Write("replace", kind, namespace, name, f"updated {kind} {name} to revision {step.revision}",
                                body=desired, refused="WorkloadRejected"))
    after = build_after_job(pipeline, view.runner_image) if step.create_after_job else None  # only when due
    if after is not None:
        out.writes.append(Write("create", "Job", namespace, after["metadata"]["name"],
                                f"created Job {after['metadata']['name']} for the after-rollout steps of revision "
                                f"{step.revision}", body=after, refused="WorkloadRejected", brings_status=True))
    out.writes += _old_jobs(namespace, step.delete_jobs)
    return workload_status(pipeline, step, workload, view.children.pods, stamp)


def _attached(out: Plan, view: View, pipeline: Obj, previous: Obj, stamp: str) -> Obj:
    """A user's Deployment or StatefulSet, never written: each revision's once-steps in one Job, then the
    gates of that revision's Pods lifted."""
    meta = pipeline["metadata"]
    namespace, uid = meta["namespace"], meta["uid"]
    children = view.children
    step = plan_attached(pipeline["spec"], children.pods, [j for j in children.jobs if owned_by(j, uid)],
                         children.revisions, previous)
    out.writes += _deletes(namespace, stale_children(uid, children.pods + children.workloads, lambda _: False),
                           "the pipeline now attaches to a workload of yours")
    if step.run_job is not None and step.job_pod is not None:
        job = attached_job(pipeline, step.job_pod, step.run_job, view.runner_image)
        if job is not None:
            out.writes.append(Write("create", "Job", namespace, job["metadata"]["name"],
                                    f"created Job {job['metadata']['name']} for the once-steps of revision "
                                    f"{step.run_job}", body=job, refused="JobRejected", brings_status=True))
    by_name = {p["metadata"]["name"]: p for p in children.pods}
    out.writes += [Write("ungate", "Pod", namespace, pod, f"once-steps succeeded: let Pod {pod} start",
                         value=other_gates(by_name[pod]["spec"])) for pod in step.ungate]
    out.writes += _old_jobs(namespace, step.delete_jobs)
    return {**attach_status(pipeline, step, children.pods, stamp), "injection": injection(pipeline, view.runner_image)}
