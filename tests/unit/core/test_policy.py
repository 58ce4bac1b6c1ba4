"""What the operator renders into status.injection for the API server's admission policy: the same
init containers and volumes the webhook adds, and what a Pod must have for them."""

from __future__ import annotations

import copy
from typing import Any

from initpipeline.core.attach.inject import inject
from initpipeline.core.attach.revision import steps_hash
from initpipeline.core.policy import IMAGE_FROM_PLACEHOLDER, RENDERED_KEYS, injection, refused_injection
from initpipeline.spec.validation import validate_pipeline
from tests.unit.attached import new_pod, pipeline

Obj = dict[str, Any]


def test_the_rendered_steps_are_those_the_webhook_adds() -> None:
    doc, pod = pipeline(), new_pod()
    rendered = injection(doc, "runner:1")
    patch = inject(doc, pod, "runner:1")
    assert rendered["initContainers"] == patch["spec"]["initContainers"]
    own = [v["name"] for v in pod["spec"]["volumes"]]
    assert [v for v in patch["spec"]["volumes"] if v["name"] not in own] == rendered["volumes"]
    assert rendered["stepsHash"] == steps_hash(doc["spec"]) and rendered["generation"] == 1
    assert rendered["gated"] is True and rendered["refusal"] is None  # the migration is a once-step
    assert rendered["revisionLabel"] == "pod-template-hash" and rendered["placement"] == "First"
    assert rendered["stepNames"] == ["wait-deps", "migrate", "fetch-secrets"]
    assert rendered["needsContainers"] == [{"step": "migrate", "container": "app"}]
    assert rendered["needsVolumes"] == [{"step": "fetch-secrets", "volume": "secrets"}]
    assert rendered["imageFrom"] == []  # the migration runs in the Job, not in the Pods


def test_an_invalid_pipeline_renders_only_its_refusal() -> None:
    doc = pipeline()
    doc["spec"]["steps"][0]["waitForService"]["timeoutSeconds"] = -1
    [error] = validate_pipeline(doc)
    rendered = refused_injection(doc, str(error))
    assert "InitPipeline shop is invalid (spec.steps[0].waitForService.timeoutSeconds" in rendered["refusal"]
    # written as a merge patch over a valid rendering: its keys must go
    assert all(rendered[key] is None for key in RENDERED_KEYS)


def test_an_every_pod_step_with_image_from_is_left_for_the_policy_to_complete() -> None:
    doc = pipeline()
    doc["spec"]["steps"].append({"name": "collect", "container": {
        "imageFrom": "app", "command": ["manage.py", "collectstatic"], "env": [{"name": "STATIC", "value": "1"}]}})
    doc["spec"]["steps"].append({"name": "check", "container": {
        "imageFrom": "app", "inheritSettings": False, "command": ["true"]}})
    rendered = injection(doc, "runner:1")
    by_name = {c["name"]: c for c in rendered["initContainers"]}
    # its own settings only, and a stand-in image: the Pod's app container gives the rest
    assert by_name["collect"]["image"] == IMAGE_FROM_PLACEHOLDER
    assert by_name["collect"]["env"] == [{"name": "STATIC", "value": "1"}]
    assert rendered["imageFrom"] == [{"step": "collect", "container": "app", "inherit": True},
                                     {"step": "check", "container": "app", "inherit": False}]
    # what the webhook gives the same Pod: the app's image and, for collect, its settings under the step's
    patch = inject(doc, new_pod(image="shop:2.0"), "runner:1")
    webhook = {c["name"]: c for c in patch["spec"]["initContainers"]}
    assert webhook["collect"]["image"] == webhook["check"]["image"] == "shop:2.0"
    assert {k: v for k, v in webhook["check"].items() if k != "image"} == \
        {k: v for k, v in by_name["check"].items() if k != "image"}


def test_a_new_generation_renders_anew() -> None:
    doc = copy.deepcopy(pipeline())
    doc["metadata"]["generation"] = 4
    assert injection(doc, "runner:1")["generation"] == 4
