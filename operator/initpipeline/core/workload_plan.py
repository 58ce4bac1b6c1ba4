"""Deployment and StatefulSet pipelines: what to create or replace, and their status (pure: no I/O).

A revision's once-steps run in one Job before the workload's template moves to that revision, and its
after-rollout steps in another once that revision is rolled out: every Pod of it ready and none of an
older one left. The planner decides from what the watches show (the workload, its Pods, the pipeline's
Jobs) and from what the status already records (a revision whose steps succeeded never runs them again,
even when its Job is gone).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ..spec import names, views
from ..spec.names import Obj
from .build import ROLE_APP, after_job_name, once_job_name, revision

ANNOTATION_SPEC_HASH = f"{names.GROUP}/spec-hash"


def spec_hash(workload: Obj) -> str:
    """A hash of the workload's spec as the operator built it: a change means it must be rewritten."""
    return hashlib.sha256(json.dumps(workload["spec"], sort_keys=True).encode()).hexdigest()[:16]


def job_state(job: Obj) -> str:
    """Complete, Failed or Active, from the Job's terminal conditions (set once its Pod is gone)."""
    for terminal in ("Complete", "Failed"):
        if views.condition(job.get("status"), terminal).get("status") == "True":
            return terminal
    return "Active"


def workload_revision(workload: Obj | None) -> str | None:
    if workload is None:
        return None
    labels = (((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(names.LABEL_REVISION)


def _job_revision(job: Obj) -> str | None:
    return ((job.get("metadata") or {}).get("labels") or {}).get(names.LABEL_REVISION)


@dataclass
class Plan:
    """What one reconcile pass does for a workload pipeline."""

    revision: str
    create_job: bool = False
    write_workload: str | None = None  # "create" or "replace"
    delete_jobs: list[str] = field(default_factory=list)
    waiting_for_job: str | None = None  # a Job of an earlier revision that still runs
    job: Obj | None = None  # this revision's Job, as observed
    rolled: bool = False  # the workload runs (or is being set to) this revision
    rolled_out: bool = False  # every Pod of this revision is ready, and no Pod of an older one is left
    after_job: Obj | None = None  # this revision's after-rollout Job, as observed
    create_after_job: bool = False


def plan(spec: Obj, desired: Obj, job_needed: bool, workload: Obj | None, jobs: list[Obj],
         previous: Obj, pods: list[Obj] | None = None, after_needed: bool = False) -> Plan:
    rev = revision(spec)
    name = desired["metadata"]["name"]
    out = Plan(rev, job=next((j for j in jobs if j["metadata"]["name"] == once_job_name(name, rev)), None),
               after_job=next((j for j in jobs if j["metadata"]["name"] == after_job_name(name, rev)), None))
    at_rev = workload_revision(workload) == rev
    if job_needed and not (at_rev or _once_done(out, previous)):
        if out.job is None:
            # never two once-step runs at a time: an earlier revision's Job is left to finish first
            running = [j["metadata"]["name"] for j in jobs if job_state(j) == "Active"]
            out.waiting_for_job = running[0] if running else None
            out.create_job = not running
        return out
    out.rolled = True
    out.write_workload = _workload_write(desired, workload)
    if at_rev or out.write_workload:
        out.delete_jobs = [j["metadata"]["name"] for j in jobs
                           if _job_revision(j) != rev and job_state(j) != "Active"]
    out.rolled_out = out.write_workload is None and rolled_out(workload, pods or [], rev)
    out.create_after_job = after_needed and _after_due(out, jobs, previous)
    return out


def _once_done(out: Plan, previous: Obj) -> bool:
    """Whether the revision's once-steps succeeded: its Job completed, or the status says so (the Job may be gone)."""
    once = previous.get("once") or {}
    if once.get("revision") == out.revision and once.get("state") == "Succeeded":
        return True
    return out.job is not None and job_state(out.job) == "Complete"


def _after_due(out: Plan, jobs: list[Obj], previous: Obj) -> bool:
    """Whether this pass starts the revision's after-rollout Job: rolled out, not run yet (a deleted failed
    Job runs again), and no Job still running (never two step runs at a time)."""
    if not out.rolled_out or out.after_job is not None:
        return False
    after = previous.get("afterRollout") or {}
    ran = after.get("revision") == out.revision and after.get("state") == "Succeeded"
    return not ran and not any(job_state(j) == "Active" for j in jobs)


def rolled_out(workload: Obj | None, pods: list[Obj], rev: str) -> bool:
    """Whether the workload's rollout to rev is over: its controller saw the spec, every desired Pod is of
    rev and available, and no app Pod of another revision is left (not even one that terminates)."""
    if workload is None or workload_revision(workload) != rev:
        return False
    meta, wstatus = workload["metadata"], workload.get("status") or {}
    desired = int((workload.get("spec") or {}).get("replicas", 1))
    if int(wstatus.get("observedGeneration") or 0) < int(meta.get("generation") or 1):
        return False
    counts = [int(wstatus.get(key) or 0) for key in ("replicas", "updatedReplicas", "readyReplicas")]
    available = int(wstatus.get("availableReplicas", wstatus.get("readyReplicas")) or 0)
    if counts != [desired] * 3 or available < desired:
        return False
    if workload.get("kind") == "StatefulSet" and wstatus.get("currentRevision") != wstatus.get("updateRevision"):
        return False
    app = [p for p in pods if (p["metadata"].get("labels") or {}).get(names.LABEL_ROLE) == ROLE_APP]
    return all((p["metadata"].get("labels") or {}).get(names.LABEL_REVISION) == rev for p in app)


def _workload_write(desired: Obj, workload: Obj | None) -> str | None:
    """Create the workload, replace it, or leave it (None)."""
    if workload is None:
        return "create"
    hashed = (workload.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_SPEC_HASH)
    if hashed != spec_hash(desired) or (workload.get("spec") or {}).get("replicas") != desired["spec"]["replicas"]:
        return "replace"  # a new spec, or someone scaled or edited the workload itself: the pipeline's spec wins
    return None
