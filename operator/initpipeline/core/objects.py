"""waitForObject: which objects a pipeline waits for, whether their conditions hold, and what follows.

The operator watches each object that a step still waits for (controller/objectwatch.py) and hands
what it saw last to `plan_objects`. A condition that held once stays met for the pipeline, recorded in
`status.objects`, so a Job that its TTL removed later does not hold back later Pods. The met steps are
named in an annotation of the pipeline's Pods, which the steps read through a downward API file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ..spec import names, views
from ..spec.names import Obj
from .build import object_condition

MAX_SEEN_TEXT = 256  # characters of a condition's reason and message kept in status


@dataclass(frozen=True, order=True)
class ObjectRef:
    """One object in one namespace, as a step names it."""

    namespace: str
    api_version: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class ObjectWait:
    step: str
    ref: ObjectRef
    condition_type: str
    condition_status: str

    @property
    def condition(self) -> str:
        return f"{self.condition_type}={self.condition_status}"

    @property
    def key(self) -> str:
        """What the step waits for, as a short hash: a changed target is a new wait, met or not."""
        basis = "/".join((self.ref.api_version, self.ref.kind, self.ref.name, self.condition))
        return hashlib.sha256(basis.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Observation:
    """What the operator's watch saw last: the object (None: there is none), or why it cannot see it."""

    obj: Obj | None = None
    problem: str | None = None


@dataclass
class ObjectPlan:
    entries: list[Obj] = field(default_factory=list)  # status.objects, in step order
    watch: set[ObjectRef] = field(default_factory=set)  # the objects whose condition has not held yet
    met_value: str = ""  # the annotation's value: the met steps, comma-separated
    annotate: list[str] = field(default_factory=list)  # Pods whose annotation is behind


def object_waits(pipeline: Obj) -> list[ObjectWait]:
    """The waitForObject steps of a validated pipeline, in order."""
    namespace = pipeline["metadata"].get("namespace") or "default"
    waits = []
    for step in pipeline["spec"]["steps"]:
        body = step.get("waitForObject")
        if body is None:
            continue
        ctype, cstatus = object_condition(body)
        waits.append(ObjectWait(step["name"], ObjectRef(namespace, body["apiVersion"], body["kind"], body["name"]),
                                ctype, cstatus))
    return waits


def evaluate(wait: ObjectWait, seen: Observation | None) -> tuple[bool, str]:
    """(met, what was seen, in words)."""
    if seen is None:
        return False, "not seen yet"
    if seen.problem:
        return False, seen.problem
    if seen.obj is None:
        return False, "not found"
    status = seen.obj.get("status") or {}
    generation, observed = seen.obj.get("metadata", {}).get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and int(observed) < int(generation):
        # its conditions describe an older spec (a Deployment in the middle of a rollout)
        return False, f"its controller has not observed generation {generation} yet (at {observed})"
    condition = views.condition(status, wait.condition_type)
    if not condition:
        failed = views.condition(status, "Failed")  # a Job that failed never completes
        if failed.get("status") == "True":
            return False, _seen_text(failed)
        return False, f"no {wait.condition_type} condition yet"
    return str(condition.get("status")) == wait.condition_status, _seen_text(condition)


def _seen_text(condition: Obj) -> str:
    text = f"{condition.get('type')}={condition.get('status')}"
    why = ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k))
    if why:
        text += f" ({why})"
    return text if len(text) <= MAX_SEEN_TEXT else text[:MAX_SEEN_TEXT - 3] + "..."


def plan_objects(waits: list[ObjectWait], previous: list[Obj] | None,
                 observations: dict[ObjectRef, Observation | None], pods: list[Obj], now: str) -> ObjectPlan:
    """The status entries, the objects to keep watching, and the Pods to tell which steps may pass."""
    plan = ObjectPlan()
    before = {(e.get("step"), e.get("key")): e for e in previous or [] if isinstance(e, dict)}
    met_steps = []
    for wait in waits:
        entry = before.get((wait.step, wait.key))
        if entry is not None and entry.get("met"):
            plan.entries.append(entry)  # held once: stays met, whatever becomes of the object
            met_steps.append(wait.step)
            continue
        met, seen = evaluate(wait, observations.get(wait.ref))
        new: Obj = {"step": wait.step, "apiVersion": wait.ref.api_version, "kind": wait.ref.kind,
                    "name": wait.ref.name, "condition": wait.condition, "key": wait.key, "met": met,
                    "lastSeen": seen}
        if met:
            new["metAt"] = now
            met_steps.append(wait.step)
        else:
            plan.watch.add(wait.ref)
        plan.entries.append(new)
    plan.met_value = ",".join(sorted(met_steps))
    if plan.met_value:
        plan.annotate = [p["metadata"]["name"] for p in pods if _behind(p, plan.met_value)]
    return plan


def _behind(pod: Obj, value: str) -> bool:
    """A Pod whose steps may still run (phase Pending) and whose annotation does not say this yet."""
    meta = pod["metadata"]
    if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase", "Pending") != "Pending":
        return False
    return (meta.get("annotations") or {}).get(names.ANNOTATION_OBJECTS_MET) != value
