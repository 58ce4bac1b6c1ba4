"""One InitPipeline's pass, the operator's only writer: gather the view (the caches, once), let core
decide the plan (core/passplan.py), apply it. Nothing here decides what the pipeline needs; this module
knows how each write is made and what its failure means."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import kopf

from ..core.children import Children, owned_by
from ..core.passplan import Plan, Refused, Remembered, View, Write, decide
from ..core.pod_plan import refused_for_now
from ..core.pod_status import same_status
from ..spec import names
from ..spec.names import Obj
from .context import WRITE_KEY, Controller
from .errors import TryAgain
from .kubeapi import ApiError

Logger = logging.Logger | logging.LoggerAdapter[Any]
CacheView = Callable[[], tuple[Obj | None, Children]]


class _Stop(Exception):
    """The rest of this pass's plan waits for the next pass (which an event or an alarm brings)."""


def gather(ctl: Controller, uid: str, caches: CacheView) -> View:
    pipeline, children = caches()
    memory = ctl.memory.get(uid)
    if memory is not None and memory.written is not None and pipeline is not None \
            and same_status(memory.written, pipeline.get("status")):
        memory.written = None  # the cache has caught up: one copy of the status is enough
    remembered = Remembered() if memory is None else Remembered(
        memory.written, memory.handled, memory.last_write, memory.held_since, memory.refused)
    namespace = pipeline["metadata"]["namespace"] if pipeline else None
    return View(pipeline, children, remembered, ctl.objects.seen,
                ctl.terminating.get(namespace) if namespace else None, ctl.config.runner_image)


def reconcile(ctl: Controller, uid: str, caches: CacheView, log: Logger) -> Obj:
    """One pass; returns the status it published (or would have, when held). `caches` gives the pipeline
    and its children as the watches' caches hold them now. The work queue never runs two passes of one
    pipeline at once, and each pass looks at the caches when it starts, so it never acts on an older spec
    than the pass before it."""
    view = gather(ctl, uid, caches)
    now = ctl.clock()
    plan = decide(view, now)
    if view.pipeline is None:
        return {}
    namespace = view.pipeline["metadata"]["namespace"]
    if plan.forget_terminating:
        ctl.terminating.pop(namespace, None)
    if plan.handled is None:
        return {}
    memory = ctl.remember(uid)
    memory.handled = plan.handled
    if plan.watch is not None:
        ctl.objects.want(uid, plan.watch)
    try:
        if not apply_writes(ctl, view.pipeline, plan, log):
            return plan.status  # a new child's ADDED event brings the first status of this generation
        if plan.wake_at is not None:
            ctl.wake_at(plan.wake_at, uid)
        for event in plan.events:
            ctl.post_event(view.pipeline, *event)
        publish(ctl, view.pipeline, plan)
    except _Stop:
        return {}
    except ApiError as exc:
        if _terminating(exc):
            ctl.terminating[namespace] = now
            return {}  # the namespace is going away, and the pipeline with it
        if exc.status == 404 and names.PLURAL in str(exc.body):
            return {}  # deleted since the cache saw it; its DELETED event forgets it
        raise TryAgain(f"Kubernetes API error {exc.status} {exc.reason}: {exc.message}", delay=5) from None
    if not plan.hold_refused:
        memory.refused = None  # said by this pass's status, or tried again in this pass
    return plan.status


def apply_writes(ctl: Controller, pipeline: Obj, plan: Plan, log: Logger) -> bool:
    """Make the plan's writes in order; False when a child it created brings the status by its event."""
    status_now = True
    for write in plan.writes:
        created = _write(ctl, pipeline, write)
        if created and write.brings_status:
            status_now = False
        if created or write.action != "create":  # a create that found its child made earlier did nothing
            log.info("%s", write.log)
    return status_now


def _write(ctl: Controller, pipeline: Obj, write: Write) -> bool:
    """One write; True when it created a child. Raises TryAgain or _Stop when the rest must wait."""
    client, ns, name = ctl.client, write.namespace, write.name
    try:
        if write.action == "create":
            return _create(ctl, pipeline, write)
        if write.action == "replace":
            client.replace_workload(_adopted(pipeline, write))
        elif write.action == "delete":
            if write.kind == "Pod":
                client.delete_pod(ns, name)
            else:
                client.delete_child(write.kind, ns, name)
        elif write.action == "annotate":
            key, value = write.value
            client.set_pod_annotation(ns, name, key, value)
        elif write.action == "ungate":
            client.set_pod_gates(ns, name, write.value)
        elif write.action == "stop":
            client.set_pod_deadline(ns, name, write.value)
    except ApiError as exc:
        if _terminating(exc):
            raise
        if write.action == "annotate" and exc.status == 404:
            return False  # a Pod gone meanwhile needs nothing
        if write.action == "ungate" and exc.status in (404, 422):  # the Pod or its gates changed: the cache is behind
            raise TryAgain(f"Pod {name} changed while its gate was lifted; looking again", delay=1) from None
        if write.action == "replace" and exc.status == 409:
            raise TryAgain(f"{write.kind} {name} changed meanwhile; trying again", delay=1) from None
        if write.action == "replace":
            _refuse(ctl, pipeline, write, exc)
        raise
    return False


def _create(ctl: Controller, pipeline: Obj, write: Write) -> bool:
    body = _adopted(pipeline, write)
    uid = pipeline["metadata"]["uid"]
    try:
        if write.kind == "Pod":
            current, created = ctl.client.create_pod(body)
        elif write.kind == "Job":
            return ctl.client.create_job(body)  # one of this revision exists already: the same run
        else:
            current, created = None, ctl.client.create_child(body)
    except ApiError as exc:
        _refuse(ctl, pipeline, write, exc)
        raise
    if created:
        return True
    if current is not None and owned_by(current, uid):
        raise _Stop()  # the cache has not seen our own child yet: its ADDED event brings the next pass
    # the name is taken: most often by the child of a deleted pipeline of the same name that the
    # garbage collector has not removed yet; its deletion brings us back too
    raise TryAgain(f"{write.kind} {write.name} exists but is not ours (yet); waiting for it to go", delay=5)


def _adopted(pipeline: Obj, write: Write) -> Obj:
    assert write.body is not None  # a create or replace carries its object
    kopf.adopt(write.body, owner=cast(kopf.Body, pipeline))  # kopf reads a plain dict the same way
    return write.body


def _refuse(ctl: Controller, pipeline: Obj, write: Write, exc: ApiError) -> None:
    """The API server refused a child: invalid (400, 422) or denied by admission such as PodSecurity (403),
    so the spec must change: remembered, and the pass that follows at once says so. Anything else, or a
    namespace being deleted, is not the spec's fault (the caller raises it)."""
    if write.refused is None or exc.status not in (400, 403, 422) or _terminating(exc):
        return
    meta = pipeline["metadata"]
    # for now (it passes by itself): the next pass says why, and creates it again once it is due
    at = ctl.clock() if refused_for_now(exc.message) else None
    ctl.remember(meta["uid"]).refused = Refused(int(meta.get("generation", 1)), write.refused, exc.message, at)
    ctl.queue.wake(meta["uid"])
    raise _Stop()


def _terminating(exc: ApiError) -> bool:
    """The API server refused a create because the namespace is being deleted."""
    return exc.status == 403 and "being terminated" in str(exc.body)


def publish(ctl: Controller, pipeline: Obj, plan: Plan) -> None:
    """Write the plan's status, or hold it (an alarm wakes the pass that writes it), then count and say
    what the write brought."""
    pub = plan.publish
    if pub is None:
        return
    meta = pipeline["metadata"]
    # in memory, so also after a restart, when the stored status is already right
    ctl.metrics.phase(meta["namespace"], meta["name"], pub.status["phase"])
    memory = ctl.remember(meta["uid"])
    memory.held_since = pub.held_since
    if pub.hold > 0:
        # held: the pass that this alarm wakes writes the newest status then, unless an event did first
        ctl.wake_in(pub.hold, meta["uid"], WRITE_KEY)
        return
    if not pub.write:
        return
    ctl.client.write_status(meta["namespace"], meta["name"], pub.status)
    memory.written, memory.last_write = pub.stored, ctl.clock().timestamp()
    # counted after the write, so that a failed write is counted by the retry that succeeds
    ctl.metrics.step_runs(meta["namespace"], meta["name"], pub.finished)
    for event in pub.events:
        ctl.post_event(pipeline, *event)

