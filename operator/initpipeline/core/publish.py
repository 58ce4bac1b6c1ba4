"""Whether a pass writes the status it derived, holds it, or has nothing new to say; and the Events and
metrics that a write brings (pure: the time comes in as an argument)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..spec.names import Obj
from .hold import write_hold
from .pod_status import finished_steps, same_status, step_events

Event = tuple[str, str, str]  # type, reason, message


def prune_none(value: Any) -> Any:
    """As the API server keeps a status: a null in a merge patch deletes the key."""
    if isinstance(value, dict):
        return {k: prune_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_none(v) for v in value]
    return value


@dataclass
class Publication:
    """The status of one pass and what becomes of it."""

    status: Obj  # as derived (nulls included: they clear keys in the merge patch)
    stored: Obj  # as the API server will keep it
    write: bool = False  # write it now
    hold: float = 0.0  # seconds it waits before it may be written (an alarm wakes the pipeline then)
    held_since: float | None = None  # when the handover being held began, for the next pass
    events: list[Event] = field(default_factory=list)  # posted once the write succeeded
    finished: list[Obj] = field(default_factory=list)  # step runs that ended, counted once the write succeeded


def publication(pod_pipeline: bool, previous: Obj, status: Obj, now: float, last_write: float | None,
                held_since: float | None) -> Publication:
    """What to do with a pass's status, given the status last written and when (seconds on the one clock).

    Unchanged: nothing. Changed: written now, or held (hold.py says when a change may wait)."""
    out = Publication(status, prune_none(status))
    if same_status(out.stored, previous):
        return out
    hold = write_hold(pod_pipeline, previous, out.stored, now, last_write, held_since)
    out.held_since = hold.held_since
    if hold.wait > 0:
        out.hold = hold.wait
        return out
    out.write, out.held_since = True, None
    new_steps = status.get("steps") or []
    out.finished = finished_steps(previous.get("steps"), new_steps)
    out.events = step_events(previous.get("steps"), new_steps)
    if status["phase"] != previous.get("phase"):
        etype = "Warning" if status["phase"] == "Failed" else "Normal"
        out.events.append((etype, f"Pipeline{status['phase']}", status["message"]))
    out.events += after_rollout_events(previous.get("afterRollout"), status.get("afterRollout"))
    return out


def after_rollout_events(before: Obj | None, after: Obj | None) -> list[Event]:
    """The Events of the after-rollout run's phases: the rollout over and the Job started, then its end."""
    if not after:
        return []
    was = (before or {}).get("state") if (before or {}).get("revision") == after.get("revision") else None
    state = after.get("state")
    events: list[Event] = []
    if state in ("Running", "Succeeded", "Failed") and was in (None, "Waiting"):
        events.append(("Normal", "AfterRolloutStarted", f"revision {after.get('revision')} is rolled out: "
                                                        f"after-rollout steps started in Job {after.get('job')}"))
    if state != was and state == "Succeeded":
        events.append(("Normal", "AfterRolloutSucceeded", str(after.get("message"))))
    elif state != was and state == "Failed":
        events.append(("Warning", "AfterRolloutFailed", str(after.get("message"))))
    return events
