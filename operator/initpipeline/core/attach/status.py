"""The status of an attached pipeline."""

from __future__ import annotations

from ...spec import names, views
from ...spec.names import Obj
from ..build import ROLE_ONCE, job_steps, selector_text
from ..pod_status import NOT_SO, Condition, merge_conditions
from ..workload_plan import Plan
from ..workload_status import Replicas, rollout_status
from .plan import AttachPlan
from .revision import labels_of


def _ready(pod: Obj) -> bool:
    return views.condition(pod.get("status"), "Ready").get("status") == "True"


def attach_status(pipeline: Obj, step: AttachPlan, pods: list[Obj], now: str) -> Obj:
    """The status of an attached pipeline: a workload pipeline's (replicas, the steps over the current
    revision's Pods, the once-steps' run, conditions), counted from the Pods and the workload's revisions
    (the operator never reads the workload itself); and the revisions whose once-steps succeeded, which
    the webhook reads."""
    spec, meta = pipeline["spec"], pipeline["metadata"]
    attach = spec["attach"]
    app = [p for p in pods if labels_of(p).get(names.LABEL_ROLE) != ROLE_ONCE
           and not p["metadata"].get("deletionTimestamp")]
    extra: Obj = {"workload": {"kind": attach["kind"], "name": attach["name"]},
                  "attached": {"succeededRevisions": step.succeeded}}
    if step.revision is None:
        msg = (f"waiting for {attach['kind']} {attach['name']} with the label {names.LABEL_INJECT}={meta['name']} "
               "on its Pod template: none seen in this namespace yet")
        pending = Condition(False, "WorkloadPending", msg)
        return {"phase": "Pending", "message": msg, "observedGeneration": int(meta.get("generation", 1)),
                "workload": extra["workload"], "attached": extra["attached"], "replicas": 0, "readyReplicas": 0,
                "updatedReplicas": 0, "ready": "0/0",
                "selector": selector_text(pipeline),
                "conditions": merge_conditions((pipeline.get("status") or {}).get("conditions"), {
                    "Initialized": pending, "Ready": pending, "Degraded": NOT_SO, "Failed": NOT_SO},
                    int(meta.get("generation", 1)), now)}
    current = [p for p in app if labels_of(p).get(names.LABEL_REVISION) == step.revision]
    rolled = step.revision in step.succeeded or not job_steps(spec)
    plan_ = Plan(step.revision, job=step.job, rolled=rolled, waiting_for_job=step.waiting_for_job)
    # the workload as its Pods show it (a StatefulSet's replicas: as many as its current revision has Pods)
    replicas = Replicas(ready=sum(1 for p in app if _ready(p)), updated=len(current), total=len(app), synced=True)
    desired = step.desired if step.desired is not None else len(current)
    return rollout_status(pipeline, plan_, replicas, desired, attach["kind"], pods, now, extra)
