"""Brings one InitPipeline's children and status in line with its spec: the operator's only writer.

Every pass reads the same way for both kinds of pipeline: a view of the caches, a pure plan (core/),
the writes the plan asks for, the status to publish.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from ..core.attach import attach_status, attached_job, other_gates, plan_attached
from ..core.build import build_once_job, build_pod, build_workload
from ..core.children import Children, owned_by, stale_children
from ..core.hold import write_hold
from ..core.objects import object_waits, plan_objects
from ..core.pod_plan import plan_pod, refused_for_now, rejected
from ..core.pod_status import build_status, finished_steps, invalid_status, same_status, step_events
from ..core.policy import injection, refused_injection
from ..core.workload_plan import ANNOTATION_SPEC_HASH, plan, spec_hash
from ..core.workload_status import workload_status
from ..spec import names, views
from ..spec.names import Obj
from ..spec.validation import validate_pipeline
from .alarms import Alarms
from .client import KubeClient
from .errors import TryAgain
from .kubeapi import ApiError
from .memory import PipelineMemory
from .metrics import Metrics
from .objectwatch import ObjectWatches
from .settings import OperatorConfig
from .workqueue import WorkQueue

TERMINATING_MEMORY = 120  # seconds: a namespace's deletion has finished (or failed) by then
# A pipeline's alarms, keyed by purpose + uid: its steps' deadline (no prefix), a held status write,
# and a retry. Each wakes the pipeline on the work queue.
WRITE_KEY = "write/"
RETRY_KEY = "retry/"
EventPoster = Callable[[Obj, str, str, str], None]
Logger = logging.Logger | logging.LoggerAdapter[Any]
View = Callable[[], tuple[Obj | None, Children]]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def rfc3339(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def prune_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: prune_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_none(v) for v in value]
    return value


@dataclass
class Controller:
    """The operator's context, split by what each part is: the frozen configuration, the client that
    writes, what it remembers of each pipeline, and the queue and alarms that run passes. One object,
    shared by reference through kopf's memo, so that a new login (client.connect) reaches every pass."""

    config: OperatorConfig
    post_event: EventPoster
    metrics: Metrics
    client: KubeClient = field(default_factory=KubeClient)
    clock: Callable[[], float] = time.monotonic  # seconds; the status-write hold is measured on it
    alarms: Alarms = field(default_factory=Alarms)
    queue: WorkQueue = field(default_factory=WorkQueue)
    memory: dict[str, PipelineMemory] = field(default_factory=dict)  # by pipeline uid
    # Namespaces seen being deleted (when): the deletions of their Pods recreate nothing.
    terminating: dict[str, dt.datetime] = field(default_factory=dict)
    objects: ObjectWatches = field(init=False)  # of waitForObject steps

    def __post_init__(self) -> None:
        self.objects = ObjectWatches(self.client, self.queue.wake)

    def remember(self, uid: str) -> PipelineMemory:
        return self.memory.setdefault(uid, PipelineMemory())

    def forget(self, uid: str, namespace: str, name: str) -> None:
        """A deleted pipeline: nothing of it stays in memory or in the metrics, and none of its alarms fires."""
        self.memory.pop(uid, None)
        self.objects.forget(uid)
        for purpose in ("", WRITE_KEY, RETRY_KEY):
            self.alarms.cancel(purpose + uid)
        self.metrics.forget(namespace, name)

    def wake_at(self, moment: dt.datetime, uid: str, purpose: str = "") -> None:
        """Reconcile the pipeline again at that moment (one alarm per purpose; setting it again moves it)."""
        self.alarms.at(moment, purpose + uid, functools.partial(self.queue.wake, uid))


def reconcile(ctl: Controller, uid: str, view: View, log: Logger) -> Obj:
    """Create, replace or recreate the Pod or workload as needed and refresh the status; returns the status.

    `view` gives the pipeline and its children as the watches' caches hold them now. The work queue
    never runs two passes of one pipeline at once, and each pass looks at the caches when it starts,
    so it never acts on an older spec than the pass before it."""
    pipeline, children = view()
    if pipeline is None or pipeline["metadata"].get("deletionTimestamp"):
        return {}  # gone or being deleted: garbage collection removes the Pod
    namespace = pipeline["metadata"]["namespace"]
    if _in_terminating_namespace(ctl, pipeline):
        return {}  # the namespace is going away, and the pipeline with it
    generation = int(pipeline["metadata"].get("generation", 1))
    memory = ctl.remember(uid)
    if generation < memory.handled:
        return {}  # the cache has not caught up with a spec already handled; its event will come
    memory.handled = generation
    # the status the operator last wrote is newer than a cache that is behind; build_status carries it over
    previous: Obj = memory.written or pipeline.get("status") or {}
    pipeline = {**pipeline, "status": previous}
    try:
        errors = validate_pipeline(pipeline)
        if errors:
            ctl.objects.forget(uid)
            status = invalid_status(pipeline, [str(e) for e in errors], rfc3339(utcnow()))
            if views.attached(pipeline["spec"]):
                status["injection"] = refused_injection(pipeline, str(errors[0]))
            return publish(ctl, pipeline, previous, status)
        objects = _objects_status(ctl, pipeline, previous, children, log)
        if views.attached(pipeline["spec"]):
            return _reconcile_attached(ctl, pipeline, previous, children, log, objects)
        if views.workload_kind(pipeline["spec"]) == "Pod":
            return _reconcile_pod(ctl, pipeline, previous, children, log, objects)
        return _reconcile_workload(ctl, pipeline, previous, children, log, objects)
    except ApiError as exc:
        if _terminating(exc):
            ctl.terminating[namespace] = utcnow()
            return {}  # the namespace is going away, and the pipeline with it
        if exc.status == 404 and names.PLURAL in str(exc.body):
            return {}  # deleted since the cache saw it; its DELETED event forgets it
        raise TryAgain(f"Kubernetes API error {exc.status} {exc.reason}: {exc.message}", delay=5) from None


def _terminating(exc: ApiError) -> bool:
    """The API server refused a create because the namespace is being deleted."""
    return exc.status == 403 and "being terminated" in str(exc.body)


def _in_terminating_namespace(ctl: Controller, pipeline: Obj) -> bool:
    """Whether the API server recently refused a create in this pipeline's namespace because it is being
    deleted. A pipeline created after that lives in a new namespace of the same name."""
    seen = ctl.terminating.get(pipeline["metadata"]["namespace"])
    if seen is None:
        return False
    created = views.parse_time(pipeline["metadata"].get("creationTimestamp"))
    if utcnow() - seen > dt.timedelta(seconds=TERMINATING_MEMORY) or (created is not None and created > seen):
        ctl.terminating.pop(pipeline["metadata"]["namespace"], None)
        return False
    return True


def _objects_status(ctl: Controller, pipeline: Obj, previous: Obj, children: Children, log: Logger) -> Obj:
    """waitForObject: watch what the steps still wait for, tell the Pods which steps may pass, and return
    status.objects (a null clears the entries of steps that are gone: the status is a merge patch)."""
    uid, namespace = pipeline["metadata"]["uid"], pipeline["metadata"]["namespace"]
    waits = object_waits(pipeline)
    plan = plan_objects(waits, previous.get("objects"), {w.ref: ctl.objects.seen(w.ref) for w in waits},
                        children.pods, rfc3339(utcnow()))
    ctl.objects.want(uid, plan.watch)
    for name in plan.annotate:
        log.info("objects waited for are there: steps %s of Pod %s may pass", plan.met_value, name)
        try:
            ctl.client.set_pod_annotation(namespace, name, names.ANNOTATION_OBJECTS_MET, plan.met_value)
        except ApiError as exc:
            if exc.status != 404:  # a Pod gone meanwhile needs nothing
                raise
    return {"objects": plan.entries or None}


def _reconcile_pod(ctl: Controller, pipeline: Obj, previous: Obj, children: Children, log: Logger,
                   objects: Obj) -> Obj:
    """A pipeline of kind Pod: its Pod of this generation, recreated when deleted, stopped at its deadline."""
    meta = pipeline["metadata"]
    namespace, generation, now = meta["namespace"], int(meta.get("generation", 1)), utcnow()
    step = plan_pod(pipeline, children, previous, now)
    _delete_stale(ctl, namespace, step.stale, log, f"the pipeline now runs the Pod of generation {generation}")
    if step.wait_for_new_spec:
        return previous  # the same spec would be refused again; wait for a new generation
    current, extra, created = step.current, {}, False
    if step.create:
        pod = build_pod(pipeline, ctl.config.runner_image)
        kopf.adopt(pod, owner=cast(kopf.Body, pipeline))  # kopf reads a plain dict the same way
        try:
            current, created = ctl.client.create_pod(pod)
        except ApiError as exc:
            return _refused(ctl, pipeline, previous, exc, "PodRejected")
        if not created and not owned_by(current, meta["uid"]):
            # the name is taken: most often by the Pod of a deleted pipeline of the same name that
            # the garbage collector has not removed yet; its deletion brings us back too
            raise TryAgain(f"Pod {step.wanted} exists but belongs to something else; waiting for it to go", delay=5)
        if created:
            log.info("created Pod %s", step.wanted)
            if previous.get("podName") == step.wanted and previous.get("observedGeneration") == generation:
                extra["podRecreations"] = int(previous.get("podRecreations", 0)) + 1
                ctl.post_event(pipeline, "Warning", "PodRecreated",
                               f"Pod {step.wanted} was deleted and has been recreated")
    if step.stop_steps is not None:
        log.info("steps exceeded activeDeadlineSeconds=%s; stopping Pod %s", step.stop_steps, step.wanted)
        ctl.client.set_pod_deadline(namespace, step.wanted, step.stop_steps)
    elif step.wake_at is not None:
        ctl.wake_at(step.wake_at, meta["uid"])
    status = {**build_status(pipeline, current, rfc3339(now), extra), **objects}
    if current is None:
        # keep the name: it is how the next pass knows that the Pod it creates is a recreation
        status["podName"] = step.wanted
        status["message"] = f"Pod {step.wanted} is being deleted; it will be recreated"
    # a recreation is news at once; a first Pod's status comes with its ADDED event
    return publish(ctl, pipeline, previous, status, created_child=created and "podRecreations" not in extra)


def _reconcile_workload(ctl: Controller, pipeline: Obj, previous: Obj, children: Children, log: Logger,
                        objects: Obj) -> Obj:
    """A Deployment or StatefulSet: the once-steps' Job first, then the workload at this revision."""
    meta = pipeline["metadata"]
    namespace, uid, now = meta["namespace"], meta["uid"], utcnow()
    if rejected(previous, int(meta.get("generation", 1)), "WorkloadRejected"):
        return previous  # the same spec would be refused again; wait for a new generation
    owner = cast(kopf.Body, pipeline)
    desired = build_workload(pipeline, ctl.config.runner_image)
    desired["metadata"].setdefault("annotations", {})[ANNOTATION_SPEC_HASH] = spec_hash(desired)
    kopf.adopt(desired, owner=owner)
    job = build_once_job(pipeline, ctl.config.runner_image)
    mine = [w for w in children.workloads if owned_by(w, uid)]
    workload = next((w for w in mine if w.get("kind") == desired["kind"] and w["metadata"]["name"] == meta["name"]),
                    None)
    step = plan(pipeline["spec"], desired, job is not None, workload, [j for j in children.jobs if owned_by(j, uid)],
                previous)
    try:
        _delete_stale(ctl, namespace, stale_children(uid, children.pods, lambda _: False)
                      + stale_children(uid, mine, lambda w: w is workload), log,
                      f"the pipeline now runs a {desired['kind']}")
        if step.create_job and job is not None:
            kopf.adopt(job, owner=owner)
            if ctl.client.create_job(job):
                log.info("created Job %s for the once-steps of revision %s", job["metadata"]["name"], step.revision)
        if step.write_workload == "create":
            if ctl.client.create_child(desired):
                log.info("created %s %s at revision %s", desired["kind"], meta["name"], step.revision)
            else:
                raise TryAgain(f"{desired['kind']} {meta['name']} exists but is not ours (yet); waiting for it to go",
                               delay=5)
        elif step.write_workload == "replace" and workload is not None:
            desired["metadata"]["resourceVersion"] = workload["metadata"]["resourceVersion"]
            ctl.client.replace_workload(desired)
            log.info("updated %s %s to revision %s", desired["kind"], meta["name"], step.revision)
        for name in step.delete_jobs:
            log.info("deleting Job %s of an earlier revision", name)
            ctl.client.delete_child("Job", namespace, name)
    except ApiError as exc:
        if exc.status == 409 and not _terminating(exc):  # the workload changed since the cache saw it
            raise TryAgain("the workload changed meanwhile; trying again", delay=1) from None
        return _refused(ctl, pipeline, previous, exc, "WorkloadRejected")
    status = {**workload_status(pipeline, step, workload, children.pods, rfc3339(now)), **objects}
    # as for a Pod: a new child's ADDED event brings the status
    return publish(ctl, pipeline, previous, status, created_child=step.create_job or step.write_workload == "create")


def _reconcile_attached(ctl: Controller, pipeline: Obj, previous: Obj, children: Children, log: Logger,
                        objects: Obj) -> Obj:
    """A user's Deployment or StatefulSet, never written: each revision's once-steps in one Job, then the
    gates of that revision's Pods lifted."""
    meta = pipeline["metadata"]
    namespace, uid = meta["namespace"], meta["uid"]
    jobs = [j for j in children.jobs if owned_by(j, uid)]
    step = plan_attached(pipeline["spec"], children.pods, jobs, children.revisions, previous)
    created = False
    try:
        _delete_stale(ctl, namespace, stale_children(uid, children.pods + children.workloads, lambda _: False), log,
                      "the pipeline now attaches to a workload of yours")
        if step.run_job is not None and step.job_pod is not None:
            job = attached_job(pipeline, step.job_pod, step.run_job, ctl.config.runner_image)
            if job is not None:
                kopf.adopt(job, owner=cast(kopf.Body, pipeline))
                created = ctl.client.create_job(job)
                if created:
                    log.info("created Job %s for the once-steps of revision %s", job["metadata"]["name"],
                             step.run_job)
        by_name = {p["metadata"]["name"]: p for p in children.pods}
        for name in step.ungate:
            log.info("once-steps succeeded: letting Pod %s start", name)
            ctl.client.set_pod_gates(namespace, name, other_gates(by_name[name]["spec"]))
        for name in step.delete_jobs:
            log.info("deleting Job %s of an earlier revision", name)
            ctl.client.delete_child("Job", namespace, name)
    except ApiError as exc:
        if exc.status == 404:  # a Pod went meanwhile: its event brings the next pass
            raise TryAgain("a Pod went while its gate was lifted; looking again", delay=1) from None
        if exc.status == 422 and step.ungate:  # another gate went meanwhile: the cache is behind
            raise TryAgain("a Pod's gates changed meanwhile; trying again", delay=1) from None
        return _refused(ctl, pipeline, previous, exc, "JobRejected")
    status = {**attach_status(pipeline, step, children.pods, rfc3339(utcnow())), **objects,
              "injection": injection(pipeline, ctl.config.runner_image)}
    return publish(ctl, pipeline, previous, status, created_child=created)


def _delete_stale(ctl: Controller, namespace: str, stale: list[Obj], log: Logger, why: str) -> None:
    """Delete what an older generation or a spec of another kind left behind."""
    for child in stale:
        kind, name = str(child.get("kind") or "Pod"), child["metadata"]["name"]  # cached Pods are slimmed kindless
        log.info("deleting %s %s: %s", kind, name, why)
        if kind == "Pod":
            ctl.client.delete_pod(namespace, name)
        else:
            ctl.client.delete_child(kind, namespace, name)


def _refused(ctl: Controller, pipeline: Obj, previous: Obj, exc: ApiError, reason: str) -> Obj:
    """The API server refused a child: invalid (400, 422) or denied by admission such as PodSecurity (403),
    so the spec must change. Anything else, or a namespace being deleted, is not the spec's fault."""
    if exc.status not in (400, 403, 422) or _terminating(exc):
        raise exc
    if refused_for_now(exc.message):
        raise TryAgain(f"the API server refused the child for now ({exc.message}); trying again", delay=5) from None
    return publish(ctl, pipeline, previous, invalid_status(pipeline, [exc.message], rfc3339(utcnow()), reason))


def publish(ctl: Controller, pipeline: Obj, previous: Obj, status: Obj, created_child: bool = False) -> Obj:
    """Write the status when it says something new, unless a hold lets it wait; returns it.

    After creating a child the pass writes nothing: the child's ADDED event follows at once and brings
    the first status of this generation, one write fewer per pipeline for a state nobody can see."""
    meta = pipeline["metadata"]
    if created_child:
        return status
    # in memory, so also after a restart, when the stored status is already right
    ctl.metrics.phase(meta["namespace"], meta["name"], status["phase"])
    stored = prune_none(status)  # as the API server keeps it: a null in a merge patch deletes the key
    memory = ctl.remember(meta["uid"])
    if same_status(stored, previous):
        memory.held_since = None
        return status
    hold = write_hold(views.workload_kind(pipeline["spec"]) == "Pod", previous, stored, ctl.clock(),
                      memory.last_write, memory.held_since)
    memory.held_since = hold.held_since
    if hold.wait > 0:
        # held: the pass that this alarm wakes writes the newest status then, unless an event did first
        ctl.wake_at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=hold.wait), meta["uid"], WRITE_KEY)
        return status
    ctl.client.write_status(meta["namespace"], meta["name"], status)
    memory.held_since, memory.written, memory.last_write = None, stored, ctl.clock()
    # counted after the write, so that a failed write is counted by the retry that succeeds
    ctl.metrics.step_runs(meta["namespace"], meta["name"],
                          finished_steps(previous.get("steps"), status.get("steps") or []))
    for etype, reason, message in step_events(previous.get("steps"), status.get("steps") or []):
        ctl.post_event(pipeline, etype, reason, message)
    if status["phase"] != previous.get("phase"):
        etype = "Warning" if status["phase"] == "Failed" else "Normal"
        ctl.post_event(pipeline, etype, f"Pipeline{status['phase']}", status["message"])
    return status
