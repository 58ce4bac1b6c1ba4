"""Attach mode (pure: no I/O). A pipeline with spec.attach lends its steps to the Pods of a user's
Deployment or StatefulSet, whose Pod template carries the label initpipeline.dev/inject=<pipeline>:

- the admission webhook adds the every-Pod steps to each such Pod as it is created (`inject`), and a
  scheduling gate while its revision's once-steps have not succeeded;
- the operator runs those once-steps in one Job per revision and then lifts the gates (`plan_attached`).

The user's workload is never written: its Pods are the only thing the operator touches.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field

from ..spec import names, views
from ..spec.names import Obj
from ..spec.validation import validate_pipeline
from .build import (
    INHERITED_FIELDS,
    JOB_POD_FIELDS,
    REVISION_LENGTH,
    ROLE_APP,
    ROLE_ONCE,
    STEP_VOLUME_PREFIX,
    build_once_job,
    init_pod_spec,
    job_steps,
    pod_steps,
    selector_text,
)
from .pod_status import NOT_SO, STUCK_REASONS, Condition, merge_conditions
from .workload_plan import Plan, job_state
from .workload_status import workload_status


class Refusal(Exception):
    """Why the webhook refuses a Pod: the message the user sees from `kubectl describe replicaset`."""


def labels_of(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def gates_of(pod: Obj) -> list[str]:
    return [str(g.get("name")) for g in (pod.get("spec") or {}).get("schedulingGates") or []]


def other_gates(pod_spec: Obj) -> list[Obj]:
    """A Pod's scheduling gates but ours: what it keeps when ours is lifted (or before it is added)."""
    return [g for g in pod_spec.get("schedulingGates") or [] if g.get("name") != names.ONCE_GATE]


def steps_hash(spec: Obj) -> str:
    """What the Pods of an attached workload run of the pipeline: its steps and their deadline."""
    basis = {"steps": spec.get("steps"), "activeDeadlineSeconds": spec.get("activeDeadlineSeconds")}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:REVISION_LENGTH]


def attach_revision(spec: Obj, pod_labels: dict[str, str]) -> str | None:
    """A Pod's revision, `<steps hash>-<workload hash>`: the pipeline's steps with its workload's own revision
    (pod-template-hash, or the hash that ends a StatefulSet's controller-revision-hash), so that a rollout or
    a change of the steps is a new one and a scale-up or a rollback to a revision that ran is not. Made of
    parts so that the API server's admission policy, which has no hash function, can write it too (see
    deploy/initpipeline/templates/policy.yaml). None: the Pod has no such label."""
    workload_hash = pod_labels.get(names.WORKLOAD_REVISION_LABELS[views.workload_kind(spec)])
    if not workload_hash:
        return None
    return f"{steps_hash(spec)}-{workload_hash.rsplit('-', 1)[-1]}"


def invalid_refusal(pipeline_name: str, error: str) -> str:
    return f"InitPipeline {pipeline_name} is invalid ({error}); fix it, and the Pods are created again"


def succeeded_revisions(status: Obj) -> list[str]:
    """The revisions whose once-steps succeeded, oldest first, as the status records them."""
    return [str(r) for r in (status.get("attached") or {}).get("succeededRevisions") or []]


def inject(pipeline: Obj, pod: Obj, runner_image: str) -> Obj:
    """What the webhook adds to a new Pod of the attached workload: a JSON-merge-like patch of its
    labels and spec. Raises Refusal when the Pod cannot run the steps (with what to do)."""
    meta, spec = pipeline["metadata"], pipeline["spec"]
    attach = views.attached(spec)
    if attach is None:
        raise Refusal(f"InitPipeline {meta['name']} has no spec.attach: it runs its own workload, and "
                      f"{names.LABEL_INJECT} only attaches one of yours; remove the label or set spec.attach")
    errors = validate_pipeline(pipeline)
    if errors:
        raise Refusal(invalid_refusal(meta["name"], str(errors[0])))
    kind = attach["kind"]
    rev = attach_revision(spec, labels_of(pod))
    if rev is None:
        raise Refusal(f"this Pod has no {names.WORKLOAD_REVISION_LABELS[kind]} label: InitPipeline {meta['name']} "
                      f"attaches to a {kind}, so put {names.LABEL_INJECT} on that {kind}'s Pod template only")
    pod_spec: Obj = pod.get("spec") or {}
    containers = list(pod_spec.get("containers") or [])
    _check_references(meta["name"], spec, pod_spec)
    built = init_pod_spec({"containers": containers, "volumes": list(pod_spec.get("volumes") or [])},
                          pod_steps(spec), runner_image)
    theirs = list(pod_spec.get("initContainers") or [])
    ours = built["initContainers"]
    out_spec: Obj = {"initContainers": theirs + ours if attach.get("placement") == "Last" else ours + theirs}
    if built.get("volumes"):
        out_spec["volumes"] = built["volumes"]
    if job_steps(spec) and rev not in succeeded_revisions(pipeline.get("status") or {}):
        out_spec["schedulingGates"] = [*other_gates(pod_spec), {"name": names.ONCE_GATE}]
    labels = {names.LABEL_PIPELINE: meta["name"], names.LABEL_UID: meta["uid"], names.LABEL_REVISION: rev,
              names.LABEL_ROLE: ROLE_APP, names.LABEL_MANAGED_BY: names.MANAGED_BY}
    return {"metadata": {"labels": labels}, "spec": out_spec}


def pod_references(step: Obj) -> tuple[str | None, list[str]]:
    """What of an attached Pod a step names: the app container whose image it runs (imageFrom), and the
    Pod's volumes it mounts."""
    kind = views.step_kind(step)
    body = step[kind]
    wanted = [body["volume"]] if kind == "configDownload" else \
        [m.get("name") for m in body.get("volumeMounts") or []] if kind == "container" else []
    return body.get("imageFrom") or None, [str(v) for v in wanted]


def _check_references(pipeline_name: str, spec: Obj, pod_spec: Obj) -> None:
    """What validation could not check before a Pod existed: the containers and volumes that the steps
    name, and step names that its own containers already use."""
    containers = {c.get("name") for c in pod_spec.get("containers") or []}
    taken = containers | {c.get("name") for c in pod_spec.get("initContainers") or []}
    volumes = {v.get("name") for v in pod_spec.get("volumes") or []}
    # grouped by kind of problem, as the admission policy lists them (templates/policy.yaml)
    names_taken, images, mounts = [], [], []
    for step in spec["steps"]:
        name = step["name"]
        image_from, wanted = pod_references(step)
        if name in taken:
            names_taken.append(f"step {name}: the Pod already has a container of that name")
        if image_from and image_from not in containers:
            images.append(f"step {name}: imageFrom {image_from!r} is not a container of this Pod "
                          f"({', '.join(sorted(str(c) for c in containers))})")
        mounts += [f"step {name}: volume {v!r} is not a volume of this Pod" for v in wanted if v not in volumes]
    problems = names_taken + images + mounts
    if problems:
        raise Refusal(f"InitPipeline {pipeline_name} does not fit this Pod: {'; '.join(problems)}")


# The volume that the ServiceAccount admission plugin adds to every Pod for its token (kube-api-access-<5>):
# the Job's Pod gets its own, so neither it nor the app's mount of it is copied.
SERVICE_ACCOUNT_VOLUME_PREFIX = "kube-api-access-"


def job_template(pod: Obj) -> Obj:
    """The part of an attached Pod that its revision's once-steps Job runs with: its containers (for
    imageFrom, with the settings that a step inherits), its volumes, and where and as whom it runs. The
    Pod cache keeps it for gated Pods. Volumes that cannot follow into a Job are left out: the steps'
    own (they come anew), the token volume, and a StatefulSet replica's claim (another Pod's disk)."""
    pod_spec: Obj = pod.get("spec") or {}
    kept: Obj = {key: copy.deepcopy(pod_spec[key]) for key in JOB_POD_FIELDS if key in pod_spec}
    kept["containers"] = [{k: copy.deepcopy(c[k]) for k in ("name", "image", "imagePullPolicy", *INHERITED_FIELDS)
                           if k in c} for c in pod_spec.get("containers") or []]
    left_out = claim_template_volumes(pod)
    kept["volumes"] = [copy.deepcopy(v) for v in pod_spec.get("volumes") or []
                       if not str(v.get("name", "")).startswith((STEP_VOLUME_PREFIX, SERVICE_ACCOUNT_VOLUME_PREFIX))
                       and v.get("name") not in left_out]
    return {"metadata": {}, "spec": kept}


def claim_template_volumes(pod: Obj) -> set[str]:
    """The volumes of a StatefulSet's Pod that come from its volumeClaimTemplates: the controller names
    each claim <template>-<pod name> (a Deployment's Pod has no name yet when it is admitted), and a Job
    must not mount a replica's disk."""
    pod_name = (pod.get("metadata") or {}).get("name")
    if not pod_name:
        return set()
    return {str(v["name"]) for v in (pod.get("spec") or {}).get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("claimName") == f"{v.get('name')}-{pod_name}"}


def attached_job(pipeline: Obj, pod: Obj, rev: str, runner_image: str) -> Obj | None:
    """The once-steps Job of a revision, with the images and volumes of a Pod of it (None: no once-steps)."""
    return build_once_job({**pipeline, "spec": {**pipeline["spec"], "template": job_template(pod)}}, runner_image,
                          rev)


DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"


def revision_entry(obj: Obj) -> Obj:
    """What the cache keeps of a ReplicaSet or ControllerRevision: its name, owner, revision number,
    the Pods' revision label value and the desired replicas."""
    meta = obj["metadata"]
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    if obj.get("kind") == "ControllerRevision":
        number, pod_hash = obj.get("revision"), meta["name"]  # its Pods' controller-revision-hash is its name
    else:
        number, pod_hash = annotations.get(DEPLOYMENT_REVISION), labels.get("pod-template-hash")
    owners = [(ref.get("kind"), ref.get("name")) for ref in meta.get("ownerReferences") or [] if ref.get("controller")]
    return {"kind": obj.get("kind"), "name": meta["name"], "owners": owners, "number": int(number or 0),
            "podHash": pod_hash,
            "desired": annotations.get(DESIRED_REPLICAS), "deleting": bool(meta.get("deletionTimestamp"))}


@dataclass(frozen=True)
class Current:
    """The attached workload's current revision, as its ReplicaSets or ControllerRevisions show it."""

    pod_hash: str  # the value of its Pods' pod-template-hash or controller-revision-hash label
    desired: int | None  # a Deployment's replicas (from its newest ReplicaSet); None for a StatefulSet


def current_revision(attach: Obj, revisions: list[Obj]) -> Current | None:
    """The newest revision of the attached workload (a rollback renumbers the one it goes back to);
    None while no such workload with the label on its template is seen."""
    mine = [r for r in revisions if (attach["kind"], attach["name"]) in r["owners"] and not r["deleting"]
            and r["podHash"]]
    if not mine:
        return None
    newest = max(mine, key=lambda r: r["number"])
    desired = newest.get("desired")
    return Current(str(newest["podHash"]), int(desired) if desired is not None else None)


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
    app = sorted((p for p in pods if labels_of(p).get(names.LABEL_ROLE) != ROLE_ONCE
                  and not p["metadata"].get("deletionTimestamp") and labels_of(p).get(names.LABEL_REVISION)),
                 key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
    succeeded = succeeded_revisions(previous)
    for job in jobs:
        rev = labels_of(job).get(names.LABEL_REVISION)
        if rev and rev not in succeeded and job_state(job) == "Complete":
            succeeded.append(rev)
    current = current_revision(spec["attach"], revisions)
    label = names.WORKLOAD_REVISION_LABELS[spec["attach"]["kind"]]
    out = AttachPlan(revision=attach_revision(spec, {label: current.pod_hash}) if current else None,
                     desired=current.desired if current else None,
                     succeeded=succeeded[-names.MAX_SUCCEEDED_REVISIONS:])
    by_rev = {labels_of(j).get(names.LABEL_REVISION): j for j in jobs}
    out.job = by_rev.get(out.revision)
    needs_once = bool(job_steps(spec))
    gated = [p for p in app if names.ONCE_GATE in gates_of(p)]
    out.ungate = [p["metadata"]["name"] for p in gated
                  if not needs_once or labels_of(p)[names.LABEL_REVISION] in succeeded]
    # an earlier revision's Job that is stuck before it could run anything (its image cannot be pulled,
    # a Secret is missing) would hold the current revision back for good: it goes
    once_pods = {labels_of(p).get(names.LABEL_REVISION): p for p in pods
                 if labels_of(p).get(names.LABEL_ROLE) == ROLE_ONCE}
    stuck = {str(j["metadata"]["name"]) for j in jobs if job_state(j) == "Active"
             and labels_of(j).get(names.LABEL_REVISION) != out.revision
             and _stuck(once_pods.get(labels_of(j).get(names.LABEL_REVISION)))}
    # one run at a time, of the current revision once a Pod of it waits (its images are the Job's)
    waiting = [p for p in gated if labels_of(p)[names.LABEL_REVISION] == out.revision and out.revision not in succeeded]
    if needs_once and waiting and out.revision not in by_rev:
        running = sorted(str(j["metadata"]["name"]) for j in jobs
                         if job_state(j) == "Active" and j["metadata"]["name"] not in stuck)
        if running:
            out.waiting_for_job = running[0]
        else:
            out.run_job, out.job_pod = out.revision, waiting[-1]
    out.delete_jobs = sorted(str(j["metadata"]["name"]) for j in jobs if labels_of(j).get(names.LABEL_REVISION)
                             != out.revision and (job_state(j) != "Active" or j["metadata"]["name"] in stuck))
    return out


def _stuck(job_pod: Obj | None) -> bool:
    """Whether a Job's Pod waits on something that will not come by itself (init containers run one at a
    time, so nothing runs in it then: deleting it interrupts no step)."""
    statuses = ((job_pod or {}).get("status") or {}).get("initContainerStatuses") or []
    return any(((s.get("state") or {}).get("waiting") or {}).get("reason") in STUCK_REASONS for s in statuses)


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
    seen: Obj = {"metadata": {"generation": 1, "name": attach["name"]},
                 "spec": {"template": {"metadata": {"labels": {names.LABEL_REVISION: step.revision}}}},
                 "status": {"observedGeneration": 1, "readyReplicas": sum(1 for p in app if _ready(p)),
                            "updatedReplicas": len(current), "replicas": len(app)}}
    desired = step.desired if step.desired is not None else len(current)
    as_workload = {**pipeline, "spec": {**spec, "workload": {"kind": attach["kind"], "replicas": desired}}}
    return workload_status(as_workload, plan_, seen, pods, now, extra)


RENDERED_UID = "00000000-0000-0000-0000-000000000000"  # stands in for the pipeline's uid, a valid label value


def render_attached(pipeline: Obj, workload: Obj, runner_image: str) -> list[Obj]:
    """What an attached pipeline makes of a workload of yours, without a cluster: one of its Pods as the
    webhook leaves it (gated, as a new revision's Pods are), and the once-steps Job of that revision.
    The workload's revision label stands in as `template`, since its controller computes the real one; a
    StatefulSet's Pod is its first replica, with the claims of its volumeClaimTemplates as its controller
    adds them."""
    kind = pipeline["spec"]["attach"]["kind"]
    name = workload["metadata"]["name"]
    template = copy.deepcopy((workload.get("spec") or {}).get("template") or {})
    meta = template.get("metadata") or {}
    labels = {**(meta.get("labels") or {}), names.WORKLOAD_REVISION_LABELS[kind]: "template"}
    pod_spec: Obj = template.get("spec") or {}
    pod_meta: Obj = {**meta, "generateName": f"{name}-", "labels": labels}
    if kind == "StatefulSet":
        pod_meta = {**meta, "name": f"{name}-0", "labels": labels}
        claims = [{"name": c["metadata"]["name"],
                   "persistentVolumeClaim": {"claimName": f"{c['metadata']['name']}-{name}-0"}}
                  for c in (workload.get("spec") or {}).get("volumeClaimTemplates") or []
                  if isinstance(c, dict) and isinstance(c.get("metadata"), dict) and c["metadata"].get("name")]
        if claims:
            pod_spec = {**pod_spec, "volumes": [*(pod_spec.get("volumes") or []), *claims]}
    pod: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}
    patch = inject({**pipeline, "metadata": {"uid": RENDERED_UID, **pipeline["metadata"]}, "status": {}}, pod,
                   runner_image)
    pod["metadata"]["labels"].update(patch["metadata"]["labels"])
    pod["spec"] = {**pod["spec"], **patch["spec"]}
    job = attached_job(pipeline, pod, patch["metadata"]["labels"][names.LABEL_REVISION], runner_image)
    return [pod, *([job] if job else [])]
