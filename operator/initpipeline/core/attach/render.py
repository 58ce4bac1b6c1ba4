"""`initpipeline render` of an attached pipeline: what it makes of a workload of yours, without a cluster."""

from __future__ import annotations

import copy

from ...spec import names
from ...spec.names import Obj
from .inject import inject
from .job import attached_job

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
