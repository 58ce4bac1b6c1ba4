"""What one reconcile pass does for a pipeline of kind Pod (pure: the time comes in as an argument)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..spec.names import Obj
from ..spec.views import condition, parse_time
from .build import pod_name
from .children import Children, owned_by, stale_children


@dataclass
class PodPlan:
    wanted: str  # this generation's Pod
    current: Obj | None = None  # that Pod as the cache shows it; None: there is none, or it is going away
    stale: list[Obj] = field(default_factory=list)  # to delete: older generations' Pods, a workload, its Jobs
    create: bool = False  # create the Pod of this generation
    going_away: bool = False  # the Pod was deleted by someone else and still terminates; its event brings us back
    wait_for_new_spec: bool = False  # the API server refused this spec's Pod: nothing until the spec changes
    stop_steps: int | None = None  # the steps overran: set this activeDeadlineSeconds on the Pod now
    wake_at: dt.datetime | None = None  # the steps' deadline, while it can still fall due


def plan_pod(pipeline: Obj, children: Children, previous: Obj, now: dt.datetime) -> PodPlan:
    meta = pipeline["metadata"]
    uid, generation = meta["uid"], int(meta.get("generation", 1))
    out = PodPlan(pod_name(meta["name"], generation))
    out.stale = (stale_children(uid, children.workloads + children.jobs, lambda _: False)
                 + stale_children(uid, children.pods, lambda pod: pod["metadata"]["name"] == out.wanted))
    current = next((p for p in children.pods if owned_by(p, uid) and p["metadata"]["name"] == out.wanted), None)
    if current is not None and current["metadata"].get("deletionTimestamp"):
        out.going_away = True
    elif current is None:
        if rejected(previous, generation, "PodRejected"):
            out.wait_for_new_spec = True
        else:
            out.create = True
    else:
        out.current = current
        due = steps_deadline(pipeline, current)
        if due is not None and due <= now:
            out.stop_steps = int(pipeline["spec"]["activeDeadlineSeconds"])
        else:
            out.wake_at = due
    return out


def rejected(previous: Obj, generation: int, reason: str) -> bool:
    """Whether the API server refused this generation's child already (the same spec would be refused again)."""
    return (condition(previous, "Failed").get("reason") == reason
            and previous.get("observedGeneration") == generation)


# The ServiceAccount admission plugin refuses a Pod whose ServiceAccount does not exist yet: a namespace just
# made (its controller adds "default" a moment later) or a chart that creates it after the pipeline.
NOT_THERE_YET = ("error looking up service account",)


def refused_for_now(message: str) -> bool:
    """Whether the API server's refusal of a child passes by itself, so that creating it again later (as the
    ReplicaSet controller does) succeeds; other refusals stand until the spec changes."""
    return any(words in message for words in NOT_THERE_YET)


def steps_deadline(pipeline: Obj, pod: Obj) -> dt.datetime | None:
    """When the steps overrun activeDeadlineSeconds, while that can still happen; else None.

    The deadline bounds the steps only, so the app is never killed by it: once it falls due,
    the operator sets the same deadline on the Pod (allowed on a live Pod) and the kubelet stops
    the Pod with DeadlineExceeded.
    """
    deadline = pipeline["spec"].get("activeDeadlineSeconds")
    status = pod.get("status") or {}
    if not deadline or pod["spec"].get("activeDeadlineSeconds") or status.get("phase") != "Pending":
        return None
    initialized = condition(status, "Initialized").get("status") == "True"
    started = parse_time(status.get("startTime"))
    if initialized or started is None:
        return None
    return started + dt.timedelta(seconds=int(deadline))
