"""What one reconcile pass does for an attached pipeline: which revision's Job to run, which Pods to let
start, which Jobs to remove."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...spec import names
from ...spec.names import Obj
from ..build import ROLE_ONCE, job_steps
from ..pod_status import STUCK_REASONS
from ..workload_plan import job_state
from .revision import attach_revision, current_revision, gates_of, labels_of, succeeded_revisions


@dataclass
class AttachPlan:
    """What one reconcile pass does for an attached pipeline."""

    revision: str | None  # the workload's current revision (with the steps); None: no workload seen yet
    desired: int | None = None  # the workload's replicas, where its revisions say
    succeeded: list[str] = field(default_factory=list)  # revisions whose once-steps succeeded, oldest first
    run_job: str | None = None  # the revision whose Job to create
    job_pod: Obj | None = None  # a gated Pod of that revision, whose images and volumes the Job takes
    job: Obj | None = None  # the current revision's Job, as observed
    waiting_for_job: str | None = None  # another revision's Job that still runs
    ungate: list[str] = field(default_factory=list)  # Pods whose once-steps succeeded
    delete_jobs: list[str] = field(default_factory=list)


def plan_attached(spec: Obj, pods: list[Obj], jobs: list[Obj], revisions: list[Obj], previous: Obj) -> AttachPlan:
    """Decide from what the watches show (the attached Pods, the workload's revisions, the pipeline's Jobs)
    and the revisions the status records as succeeded (a Job may be gone since). Only the workload's
    current revision runs its once-steps: an older one's Pods are on their way out."""
    succeeded = _succeeded(previous, jobs)
    current = current_revision(spec["attach"], revisions)
    label = names.WORKLOAD_REVISION_LABELS[spec["attach"]["kind"]]
    out = AttachPlan(revision=attach_revision(spec, {label: current.pod_hash}) if current else None,
                     desired=current.desired if current else None,
                     succeeded=succeeded[-names.MAX_SUCCEEDED_REVISIONS:])
    by_rev = {_revision(j): j for j in jobs}
    out.job = by_rev.get(out.revision)
    needs_once = bool(job_steps(spec))
    gated = [p for p in _app_pods(pods) if names.ONCE_GATE in gates_of(p)]
    out.ungate = [p["metadata"]["name"] for p in gated if not needs_once or _revision(p) in succeeded]
    stuck = _stuck_jobs(pods, jobs, out.revision)
    if needs_once and out.revision not in by_rev and out.revision not in succeeded:
        _next_run(out, [p for p in gated if _revision(p) == out.revision], jobs, stuck)
    out.delete_jobs = sorted(_name(j) for j in jobs if _revision(j) != out.revision
                             and (job_state(j) != "Active" or _name(j) in stuck))
    return out


def _next_run(out: AttachPlan, waiting: list[Obj], jobs: list[Obj], stuck: set[str]) -> None:
    """One run at a time, of the current revision once a Pod of it waits (its images are the Job's)."""
    if not waiting:
        return
    running = sorted(_name(j) for j in jobs if job_state(j) == "Active" and _name(j) not in stuck)
    if running:
        out.waiting_for_job = running[0]
    else:
        out.run_job, out.job_pod = out.revision, waiting[-1]


def _revision(obj: Obj) -> str | None:
    return labels_of(obj).get(names.LABEL_REVISION)


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _app_pods(pods: list[Obj]) -> list[Obj]:
    """The workload's Pods with a revision that are not going away, oldest first (not the Jobs' Pods)."""
    return sorted((p for p in pods if labels_of(p).get(names.LABEL_ROLE) != ROLE_ONCE
                   and not p["metadata"].get("deletionTimestamp") and _revision(p)),
                  key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))


def _succeeded(previous: Obj, jobs: list[Obj]) -> list[str]:
    """The revisions whose once-steps succeeded: as the status records them, and the Jobs that completed since."""
    succeeded = succeeded_revisions(previous)
    for job in jobs:
        rev = _revision(job)
        if rev and rev not in succeeded and job_state(job) == "Complete":
            succeeded.append(rev)
    return succeeded


def _stuck_jobs(pods: list[Obj], jobs: list[Obj], current: str | None) -> set[str]:
    """An earlier revision's Jobs that are stuck before they could run anything (an image that cannot be
    pulled, a missing Secret): they would hold the current revision back for good, so they go."""
    once_pods = {_revision(p): p for p in pods if labels_of(p).get(names.LABEL_ROLE) == ROLE_ONCE}
    return {_name(j) for j in jobs if job_state(j) == "Active" and _revision(j) != current
            and _stuck(once_pods.get(_revision(j)))}


def _stuck(job_pod: Obj | None) -> bool:
    """Whether a Job's Pod waits on something that will not come by itself (init containers run one at a
    time, so nothing runs in it then: deleting it interrupts no step)."""
    statuses = ((job_pod or {}).get("status") or {}).get("initContainerStatuses") or []
    return any(((s.get("state") or {}).get("waiting") or {}).get("reason") in STUCK_REASONS for s in statuses)
