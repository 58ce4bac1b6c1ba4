"""The operator's writes (client.py) against a recorded API: each at its path, creates and deletes
idempotent, a Job's Pod judged by admission first (no API server: the e2e tests prove the paths are real)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from initpipeline.controller.client import FIELD_MANAGER, KubeClient
from initpipeline.controller.errors import TryAgain
from initpipeline.controller.kubeapi import ApiError

Obj = dict[str, Any]


class RecordedApi:
    """Answers each request with the next of `answers` (an ApiError is raised) and records it."""

    def __init__(self, *answers: Obj | ApiError) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, Obj | None, dict[str, str] | None]] = []

    def request(self, method: str, path: str, body: Obj | None, params: dict[str, str] | None) -> Obj:
        self.requests.append((method, path, body, params))
        answer = self.answers.pop(0) if self.answers else {}
        if isinstance(answer, ApiError):
            raise answer
        return answer


def client(*answers: Obj | ApiError) -> tuple[KubeClient, RecordedApi]:
    api = RecordedApi(*answers)
    out = KubeClient()
    out.connect(api)  # type: ignore[arg-type]  # the one method it calls
    return out, api


def error(status: int, message: str = "no") -> ApiError:
    return ApiError(status, "Reason", json.dumps({"message": message}))


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shop-1", "namespace": "ns"}, "spec": {}}
JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "shop-once-abc", "namespace": "ns"},
       "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}}


def test_before_the_login_every_call_is_tried_again_later() -> None:
    with pytest.raises(TryAgain, match="not logged in"):
        KubeClient().write_status("ns", "shop", {})


def test_a_pod_is_created_or_the_existing_one_is_read() -> None:
    kube, api = client({"metadata": {"name": "shop-1"}})
    assert kube.create_pod(POD) == ({"metadata": {"name": "shop-1"}}, True)
    assert api.requests == [("POST", "/api/v1/namespaces/ns/pods", POD, {"fieldManager": FIELD_MANAGER})]
    kube, api = client(error(409), {"metadata": {"name": "shop-1", "uid": "old"}})
    assert kube.create_pod(POD) == ({"metadata": {"name": "shop-1", "uid": "old"}}, False)
    assert api.requests[1][:2] == ("GET", "/api/v1/namespaces/ns/pods/shop-1")


def test_a_jobs_pod_is_judged_by_admission_before_the_job_is_created() -> None:
    kube, api = client({}, {})
    assert kube.create_job(JOB)
    dry, real = api.requests
    assert dry[:2] == ("POST", "/api/v1/namespaces/ns/pods") and dry[3] == {"dryRun": "All",
                                                                            "fieldManager": FIELD_MANAGER}
    assert dry[2] is not None and dry[2]["metadata"] == {"generateName": "shop-once-abc-", "namespace": "ns",
                                                         "labels": {"a": "b"}}
    assert real[:3] == ("POST", "/apis/batch/v1/namespaces/ns/jobs", JOB)
    kube, api = client(error(403, 'pods "x" is forbidden: violates PodSecurity "restricted"'))
    with pytest.raises(ApiError) as refused:
        kube.create_job(JOB)
    assert refused.value.status == 403 and refused.value.message.startswith("its Pod would not be admitted: pods")
    assert len(api.requests) == 1  # no Job without a Pod
    kube, api = client({}, error(409))
    assert kube.create_job(JOB) is False  # one of this revision exists: the same run


def test_deletes_are_idempotent_and_other_failures_are_raised() -> None:
    kube, api = client(error(404))
    kube.delete_child("Deployment", "ns", "shop")
    assert api.requests == [("DELETE", "/apis/apps/v1/namespaces/ns/deployments/shop",
                             {"propagationPolicy": "Background"}, None)]
    kube, _ = client(error(500))
    with pytest.raises(ApiError):
        kube.delete_pod("ns", "shop-1")


def test_patches_and_the_status_go_to_their_subresources() -> None:
    kube, api = client()
    kube.set_pod_deadline("ns", "p", 60)
    kube.set_pod_gates("ns", "p", [{"name": "other"}])
    kube.set_pod_annotation("ns", "p", "k", "v")
    kube.write_status("ns", "shop", {"phase": "Running"})
    kube.get_pipeline("ns", "shop")
    assert [(m, path, body) for m, path, body, _ in api.requests] == [
        ("PATCH", "/api/v1/namespaces/ns/pods/p", {"spec": {"activeDeadlineSeconds": 60}}),
        ("PATCH", "/api/v1/namespaces/ns/pods/p", {"spec": {"schedulingGates": [{"name": "other"}]}}),
        ("PATCH", "/api/v1/namespaces/ns/pods/p", {"metadata": {"annotations": {"k": "v"}}}),
        ("PATCH", "/apis/initpipeline.dev/v1alpha1/namespaces/ns/initpipelines/shop/status",
         {"status": {"phase": "Running"}}),
        ("GET", "/apis/initpipeline.dev/v1alpha1/namespaces/ns/initpipelines/shop", None)]
