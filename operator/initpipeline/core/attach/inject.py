"""The webhook's patch of a new Pod of an attached workload (the admission policy writes the same in CEL)."""

from __future__ import annotations

from ...spec import names, views
from ...spec.names import Obj
from ...spec.validation import validate_pipeline
from ..build import ROLE_APP, init_pod_spec, job_steps, pod_steps
from .revision import attach_revision, labels_of, other_gates, succeeded_revisions


class Refusal(Exception):
    """Why the webhook refuses a Pod: the message the user sees from `kubectl describe replicaset`."""


def invalid_refusal(pipeline_name: str, error: str) -> str:
    return f"InitPipeline {pipeline_name} is invalid ({error}); fix it, and the Pods are created again"


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
