"""What the API server's MutatingAdmissionPolicy reads to inject an attached pipeline (pure: no I/O).

With `injection: policy` the API server itself adds the every-Pod steps and the gate to a labelled Pod
(deploy/initpipeline/templates/policy.yaml), with the InitPipeline as the policy's parameter. CEL can
neither build containers from a spec nor hash, so the operator renders them into `status.injection`
ahead of time; the CEL only places them in the Pod, computes the revision from its parts, checks that
the Pod fits the steps and refuses it with the message rendered here when the pipeline is invalid.
What the webhook computes per Pod (core.attach.inject) is the same, and the e2e tests compare the two.
"""

from __future__ import annotations

from ..spec import names, views
from ..spec.names import Obj
from .attach.inject import invalid_refusal, pod_references
from .attach.revision import steps_hash
from .build import init_pod_spec, job_steps, pod_steps

# Stands in for the image of an imageFrom step's app container, which the policy fills in per Pod.
IMAGE_FROM_PLACEHOLDER = "initpipeline.invalid/image-from-app-container"


RENDERED_KEYS = ("stepsHash", "revisionLabel", "kind", "placement", "initContainers", "volumes", "gated", "stepNames",
                 "needsContainers", "needsVolumes", "imageFrom")


def refused_injection(pipeline: Obj, error: str) -> Obj:
    """status.injection of an attached pipeline whose spec is invalid: why the policy refuses its Pods.
    Written as a merge patch, so the keys of a valid rendering go (None), lest the policy read them."""
    meta = pipeline["metadata"]
    return {**dict.fromkeys(RENDERED_KEYS), "generation": int(meta.get("generation", 1)),
            "refusal": invalid_refusal(meta["name"], error)}


def injection(pipeline: Obj, runner_image: str) -> Obj:
    """status.injection of a validated attached pipeline: the init containers and volumes ready to add, what
    a Pod must have for them (containers that imageFrom names, volumes the steps mount), and where they go."""
    meta, spec = pipeline["metadata"], pipeline["spec"]
    attach = spec["attach"]
    steps = pod_steps(spec)
    image_from = [s for s in steps if "imageFrom" in (s.get(views.step_kind(s)) or {})]
    # an imageFrom step is rendered with its own settings only, and a stand-in for the app container's image:
    # the policy completes it from the Pod
    stand_ins = [{"name": s[views.step_kind(s)]["imageFrom"], "image": IMAGE_FROM_PLACEHOLDER} for s in image_from]
    rendered = [{**s, views.step_kind(s): {**s[views.step_kind(s)], "inheritSettings": False}} if s in image_from
                else s for s in steps]
    built = init_pod_spec({"containers": stand_ins}, rendered, runner_image)
    needs_containers, needs_volumes = [], []
    for step in spec["steps"]:
        container, wanted = pod_references(step)
        if container:
            needs_containers.append({"step": step["name"], "container": container})
        needs_volumes += [{"step": step["name"], "volume": v} for v in wanted]
    return {
        "generation": int(meta.get("generation", 1)),
        "refusal": None,
        "stepsHash": steps_hash(spec),
        "revisionLabel": names.WORKLOAD_REVISION_LABELS[attach["kind"]],
        "kind": attach["kind"],
        "placement": attach.get("placement") or "First",
        "initContainers": built["initContainers"],
        "volumes": built.get("volumes") or [],
        "gated": bool(job_steps(spec)),
        "stepNames": [s["name"] for s in spec["steps"]],
        "needsContainers": needs_containers,
        "needsVolumes": needs_volumes,
        "imageFrom": [_image_from(s) for s in image_from],
    }


def _image_from(step: Obj) -> Obj:
    """How the policy completes an every-Pod step that runs an app container's image: the container whose
    image (and, unless inheritSettings is false, whose settings under the step's own) it takes."""
    body = step[views.step_kind(step)]
    return {"step": step["name"], "container": body["imageFrom"], "inherit": bool(body.get("inheritSettings", True))}
