"""Deployment and StatefulSet pipelines: what to create or replace, and their status (pure: no I/O).

A revision's once-steps run in one Job before the workload's template moves to that revision. The
planner decides from what the watches show (the workload, the pipeline's Jobs) and from what the
status already records (a revision whose once-steps succeeded never runs them again, even when its
Job is gone).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ..spec import names, views
from ..spec.names import Obj
from .build import once_job_name, revision

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


def plan(spec: Obj, desired: Obj, job_needed: bool, workload: Obj | None, jobs: list[Obj],
         previous: Obj) -> Plan:
    rev = revision(spec)
    name = desired["metadata"]["name"]
    out = Plan(rev, job=next((j for j in jobs if j["metadata"]["name"] == once_job_name(name, rev)), None))
    once = previous.get("once") or {}
    done_before = once.get("revision") == rev and once.get("state") == "Succeeded"
    at_rev = workload_revision(workload) == rev
    job_done = out.job is not None and job_state(out.job) == "Complete"
    if job_needed and not (at_rev or done_before or job_done):
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
    return out


def _workload_write(desired: Obj, workload: Obj | None) -> str | None:
    """Create the workload, replace it, or leave it (None)."""
    if workload is None:
        return "create"
    hashed = (workload.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_SPEC_HASH)
    if hashed != spec_hash(desired) or (workload.get("spec") or {}).get("replicas") != desired["spec"]["replicas"]:
        return "replace"  # a new spec, or someone scaled or edited the workload itself: the pipeline's spec wins
    return None
