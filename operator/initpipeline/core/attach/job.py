"""The once-steps Job of an attached workload's revision, made with what a gated Pod of it runs with."""

from __future__ import annotations

import copy

from ...spec.names import Obj
from ..build import INHERITED_FIELDS, JOB_POD_FIELDS, STEP_VOLUME_PREFIX, build_once_job

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
