"""When a status change may wait before it is written: one rule for both kinds of pipeline (pure: the
time comes in as an argument, in seconds of a monotonic clock).

- A workload's change that is progress only (how many Pods are where) is written at most once every
  PROGRESS_WRITE_INTERVAL per pipeline: a 100-replica rollout would otherwise be hundreds of writes.
- A Pod pipeline's step handover (a step done, the next not started yet; or a new Pod before its
  first step) waits up to HANDOVER_HOLD for the next step's start, so that one write tells both.
- Anything else is written at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..spec.names import Obj

PROGRESS_WRITE_INTERVAL = 1.0
# the kubelet took 0.4 to 2 s to start the next container on the 2-core test node
HANDOVER_HOLD = 2.0


@dataclass(frozen=True)
class Hold:
    wait: float  # seconds before this change may be written; 0 or less: now
    held_since: float | None  # when the handover being held began (kept until the next pass)


def write_hold(pod_pipeline: bool, previous: Obj, status: Obj, now: float, last_write: float | None,
               held_since: float | None) -> Hold:
    """How long this status change waits, given when the last write was and since when a handover is held."""
    if not pod_pipeline:
        if not progress_only(previous, status):
            return Hold(0, held_since)
        return Hold((-math.inf if last_write is None else last_write) + PROGRESS_WRITE_INTERVAL - now, held_since)
    if not handover_only(previous, status):
        return Hold(0, None)
    since = now if held_since is None else held_since
    return Hold(since + HANDOVER_HOLD - now, since)


# What changes with every Pod of a workload that moves on: counts, the earliest start and latest finish
# of a step, the stuck Pods, and the words that say them.
_PROGRESS_KEYS = frozenset({"replicas", "readyReplicas", "updatedReplicas", "ready", "stuckPods", "stuckPodCount",
                            "message"})
_STEP_PROGRESS_KEYS = frozenset({"pods", "startedAt", "finishedAt"})


def progress_only(previous: Obj, status: Obj) -> bool:
    """Whether a workload's new status differs from the previous one in progress only (how many Pods are
    where), not in a phase, a condition, a step's state, the current step or the generation. The
    operator writes such a change at most once a second per pipeline: a 100-replica rollout would
    otherwise be hundreds of status writes, each a watch event for every client."""
    def milestones(s: Obj) -> Obj:
        kept = {k: v for k, v in s.items() if k not in _PROGRESS_KEYS}
        kept["steps"] = [{k: v for k, v in step.items() if k not in _STEP_PROGRESS_KEYS}
                         for step in s.get("steps") or []]
        kept["conditions"] = [{k: v for k, v in c.items() if k != "message"} for c in s.get("conditions") or []]
        return kept
    return bool(previous) and milestones(previous) == milestones(status)


def handover_only(previous: Obj, status: Obj) -> bool:
    """Whether a Pod pipeline's new status says no more than that the current step has not started
    yet: the steps before it have succeeded (or, in a pipeline's first status, the Pod is new). The
    kubelet reports a finished step and the start of the next one in two updates, a second or so
    apart on a small node; the operator holds such a handover briefly, so that one write tells both.
    A stuck or failed step, a phase or a condition that changes, and any step going back to an
    earlier state are never a handover."""
    current = next((s for s in status.get("steps") or [] if s.get("name") == status.get("currentStep")), None)
    if status.get("phase") != "Initializing" or current is None \
            or current.get("state") != "Waiting" or current.get("reason"):
        return False
    if not previous.get("phase"):
        return True  # the first status: the Pod was just created
    return _same_but_steps(previous, status) and _steps_only_succeeded(previous.get("steps") or [],
                                                                        status.get("steps") or [])


def _same_but_steps(previous: Obj, status: Obj) -> bool:
    """Equal but for the steps, the current step and the words, with the same conditions (times aside)."""
    others = ("steps", "conditions", "message", "currentStep")
    if {k: v for k, v in previous.items() if k not in others} != {k: v for k, v in status.items() if k not in others}:
        return False
    def conditions(s: Obj) -> list[tuple[Any, Any, Any]]:
        return [(c.get("type"), c.get("status"), c.get("reason")) for c in s.get("conditions") or []]
    return conditions(previous) == conditions(status)


def _steps_only_succeeded(old_steps: list[Obj], new_steps: list[Obj]) -> bool:
    """Each step as before, or gone from waiting or running to succeeded."""
    return len(old_steps) == len(new_steps) and all(
        new == old or (new.get("name") == old.get("name") and new.get("state") == "Succeeded"
                       and old.get("state") in ("Waiting", "Running"))
        for old, new in zip(old_steps, new_steps, strict=True))
