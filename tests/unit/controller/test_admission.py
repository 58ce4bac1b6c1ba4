"""The Pod webhook's decision (admission.admit_pod): the pipeline that a Pod names, read once, and the
patch or the refusal with what to do."""

from __future__ import annotations

from typing import Any

import pytest

from initpipeline.controller.admission import admit_pod
from initpipeline.controller.kubeapi import ApiError
from initpipeline.core.attach.inject import Refusal
from initpipeline.spec import names
from tests.unit.attached import new_pod, pipeline
from tests.unit.controller.fakes import Recording, RecordingClient

Obj = dict[str, Any]


class OnePipeline(RecordingClient):
    def __init__(self, found: Obj | ApiError) -> None:
        super().__init__()
        self.found = found

    def get_pipeline(self, namespace: str, name: str) -> Obj:
        self.writes.append(("get", f"{namespace}/{name}"))
        if isinstance(self.found, ApiError):
            raise self.found
        return self.found


def test_a_pod_gets_its_pipelines_steps_and_gate() -> None:
    cluster = Recording(OnePipeline(pipeline()))
    patch = admit_pod(cluster, new_pod())
    assert cluster.writes == [("get", "ns/shop")]
    assert patch["metadata"]["labels"][names.LABEL_PIPELINE] == "shop"
    assert [g["name"] for g in patch["spec"]["schedulingGates"]] == [names.ONCE_GATE]
    assert [c["name"] for c in patch["spec"]["initContainers"]][:1] == ["wait-deps"]


def test_a_missing_pipeline_refuses_the_pod_with_what_to_do() -> None:
    cluster = Recording(OnePipeline(ApiError(404, "Not Found", '{"message": "not found"}')))
    with pytest.raises(Refusal, match="InitPipeline shop does not exist in namespace ns: apply it"):
        admit_pod(cluster, new_pod())


def test_a_pipeline_being_deleted_refuses_the_pod() -> None:
    doc = pipeline()
    doc["metadata"]["deletionTimestamp"] = "2026-11-30T10:00:00Z"
    with pytest.raises(Refusal, match="InitPipeline shop is being deleted: remove the label"):
        admit_pod(Recording(OnePipeline(doc)), new_pod())


def test_other_api_failures_are_not_refusals() -> None:
    """kopf answers them as errors: the webhook's failurePolicy decides, not a refusal that blames the Pod."""
    with pytest.raises(ApiError):
        admit_pod(Recording(OnePipeline(ApiError(500, "Internal", '{"message": "etcd"}'))), new_pod())
