"""Typed views of an InitPipeline resource: what kind a step is, what a spec runs, when a time was."""

from __future__ import annotations

import datetime as dt

from . import names
from .names import STEP_KINDS, Obj


def step_kind(step: Obj) -> str:
    """The kind of a validated step (exactly one of STEP_KINDS is set)."""
    for kind in STEP_KINDS:
        if kind in step:
            return kind
    raise ValueError(f"step {step.get('name')!r} has no kind")


def workload_kind(spec: Obj) -> str:
    """Pod, Deployment or StatefulSet: the pipeline's own workload, or the kind of the one it attaches to."""
    if spec.get("attach"):
        return str(spec["attach"].get("kind") or "Deployment")
    return str((spec.get("workload") or {}).get("kind") or "Pod")


def attached(spec: Obj) -> Obj | None:
    """spec.attach ({kind, name}) of a pipeline that attaches to a workload of the user's, else None."""
    return spec.get("attach") or None


def is_once(step: Obj, kind: str) -> bool:
    """Whether a step runs once per revision (in a Job) rather than in every Pod: `once` when set,
    else true for migrations of a Deployment or StatefulSet, and for every step that runs after the rollout."""
    if kind == "Pod":
        return False
    if after_rollout(step):
        return True
    if "once" in step:
        return bool(step["once"])
    return "migration" in step


def after_rollout(step: Obj) -> bool:
    """Whether a step runs once its revision is rolled out (`when: AfterRollout`), in a Job of its own."""
    return step.get("when") == names.AFTER_ROLLOUT


def parse_time(value: str | None) -> dt.datetime | None:
    """A Kubernetes timestamp ("2026-11-22T10:00:00Z") as an aware datetime; None stays None."""
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def rfc3339(moment: dt.datetime) -> str:
    """A moment as the API server writes times: to the second, in UTC."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(status: Obj | None, ctype: str) -> Obj:
    """The condition of that type in a status (a resource's, a Pod's, a Job's), or {} when it has none."""
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return {}
