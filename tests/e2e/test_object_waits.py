"""waitForObject on the real cluster: the operator watches the objects, the Pods read its verdict through a
downward API file, and the test writes no RBAC for the Pods. A Job that its TTL removed after it completed
holds back no later Pod; a custom resource's kind is watched once the operator may read it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.kube import Kube, app_pods, eventually, phase_is, ready, status_of
from tests.e2e.manifests import BUSYBOX, pipeline, users_deployment

pytestmark = pytest.mark.e2e


def job(name: str, seconds: int, ttl: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "seed", "image": BUSYBOX, "command": ["sleep", str(seconds)]}]}}}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "api", "image": BUSYBOX, "command": ["sleep", "3600"]}]}}}}


def objects_of(kube: Kube, name: str) -> dict[str, Any]:
    return {e["step"]: e for e in status_of(kube, name).get("objects") or []}


def seen(kube: Kube, name: str, step: str, text: str) -> Any:
    def probe() -> Any:
        entry = objects_of(kube, name).get(step) or {}
        return entry if text in str(entry.get("lastSeen", "")) else None
    return probe


def test_waits_for_a_job_and_a_deployment_and_survives_the_jobs_ttl(kube: Kube) -> None:
    steps = [{"name": "wait-seed", "waitForObject": {"apiVersion": "batch/v1", "kind": "Job", "name": "seed"}},
             {"name": "wait-api", "waitForObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api",
                                                    "timeoutSeconds": 600}}]
    kube.apply(pipeline("shop", steps))
    eventually("the Job reported missing", seen(kube, "shop", "wait-seed", "not found"), timeout=60)
    status = status_of(kube, "shop")
    assert status["phase"] == "Initializing" and status["currentStep"] == "wait-seed", status
    assert objects_of(kube, "shop")["wait-seed"]["met"] is False

    kube.apply(job("seed", 6, ttl=5))
    eventually("the running Job seen", seen(kube, "shop", "wait-seed", "no Complete condition yet"), timeout=60)
    assert status_of(kube, "shop")["currentStep"] == "wait-seed"  # the Job runs: the step still waits

    kube.apply(deployment("api"))
    ready = eventually("Ready", phase_is(kube, "shop", "Running"), timeout=180)
    entries = {e["step"]: e for e in ready["objects"]}
    assert entries["wait-seed"]["met"] and entries["wait-seed"]["lastSeen"].startswith("Complete=True"), entries
    assert entries["wait-api"]["met"] and entries["wait-api"]["lastSeen"].startswith("Available=True"), entries
    pod = kube.get("pod", ready["podName"])
    assert pod["metadata"]["annotations"]["initpipeline.dev/objects-met"] == "wait-api,wait-seed"
    assert pod["spec"].get("serviceAccountName", "default") == "default"
    assert kube.get("rolebindings")["items"] == []  # nothing was granted to the Pod

    eventually("the Job removed by its TTL", lambda: kube.maybe("job", "seed") is None, timeout=90)
    kube.run("delete", "pod", ready["podName"], "--wait=false")
    eventually("the recreated Pod Running without the Job",
               lambda: (lambda s: s if s.get("phase") == "Running" and s.get("podRecreations") else None)(
                   status_of(kube, "shop")), timeout=120)
    assert objects_of(kube, "shop")["wait-seed"]["met"] is True


def test_a_wait_that_times_out_fails_its_step_and_says_why(kube: Kube) -> None:
    steps = [{"name": "wait-seed", "waitForObject": {"apiVersion": "batch/v1", "kind": "Job", "name": "seed",
                                                     "timeoutSeconds": 5}}]
    kube.apply(pipeline("late", steps, restartPolicy="Never"))
    failed = eventually("Failed", phase_is(kube, "late", "Failed"), timeout=120)
    step = failed["steps"][0]
    assert step["state"] == "Failed" and step["exitCode"] == 3, step
    assert "Job seed was not Complete=True after 5.0s" in step["message"], step
    assert failed["objects"][0]["lastSeen"] == "not found"


WIDGETS = "widgets.e2e.initpipeline.dev"


@pytest.fixture
def widget_kind(kube: Kube) -> Iterator[str]:
    """A custom resource kind of the test's own, removed afterwards with the grant the test makes."""
    admin = Kube(kube.kubeconfig)
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": WIDGETS},
           "spec": {"group": "e2e.initpipeline.dev", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}}}]}}
    admin.apply(crd)
    admin.run("wait", "--for=condition=Established", f"crd/{WIDGETS}", "--timeout=60s")
    grant = f"initpipeline-e2e-widgets-{uuid.uuid4().hex[:6]}"
    try:
        yield grant
    finally:
        admin.run("delete", "clusterrolebinding,clusterrole", grant, "--ignore-not-found", check=False)
        admin.run("delete", "crd", WIDGETS, "--ignore-not-found", "--wait=false", check=False)


def test_a_custom_resource_condition_once_the_operator_may_read_it(kube: Kube, widget_kind: str) -> None:
    steps = [{"name": "wait-widget", "waitForObject": {
        "apiVersion": "e2e.initpipeline.dev/v1", "kind": "Widget", "name": "w1",
        "condition": {"type": "Ready"}, "timeoutSeconds": 600}}]
    kube.apply(pipeline("gadget", steps))
    eventually("the missing permission reported", seen(kube, "gadget", "wait-widget", "may not watch Widget"),
               timeout=60)

    # what the chart's objectWaits.rules grants
    admin = Kube(kube.kubeconfig)
    rbac = "rbac.authorization.k8s.io"
    admin.apply([{"apiVersion": f"{rbac}/v1", "kind": "ClusterRole", "metadata": {"name": widget_kind},
                  "rules": [{"apiGroups": ["e2e.initpipeline.dev"], "resources": ["widgets"],
                             "verbs": ["get", "list", "watch"]}]},
                 {"apiVersion": f"{rbac}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": widget_kind},
                  "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": widget_kind},
                  "subjects": [{"kind": "ServiceAccount", "name": "initpipeline",
                                "namespace": "initpipeline-system"}]}])
    eventually("the Widget reported missing", seen(kube, "gadget", "wait-widget", "not found"), timeout=90)

    kube.apply({"apiVersion": "e2e.initpipeline.dev/v1", "kind": "Widget", "metadata": {"name": "w1"}})
    patch = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Provisioning"}]}}
    kube.run("patch", "widget", "w1", "--subresource=status", "--type=merge", "-p", json.dumps(patch))
    eventually("Ready=False seen", seen(kube, "gadget", "wait-widget", "Ready=False (Provisioning)"), timeout=60)
    assert status_of(kube, "gadget")["phase"] == "Initializing"

    patch["status"]["conditions"][0].update(status="True", reason="Done")
    started = time.monotonic()
    kube.run("patch", "widget", "w1", "--subresource=status", "--type=merge", "-p", json.dumps(patch))
    eventually("Running", phase_is(kube, "gadget", "Running"), timeout=120)
    print(f"\nWidget Ready -> pipeline Running in {time.monotonic() - started:.1f}s (kubectl polls every 1s)")


def test_a_deployments_pods_each_pass_and_a_scale_up_waits_for_nothing(kube: Kube) -> None:
    steps = [{"name": "wait-seed", "waitForObject": {"apiVersion": "batch/v1", "kind": "Job", "name": "seed"}}]
    kube.apply(pipeline("web", steps, workload={"kind": "Deployment", "replicas": 2}))
    eventually("the Job reported missing", seen(kube, "web", "wait-seed", "not found"), timeout=60)
    kube.apply(job("seed", 1))
    kube.run("wait", "--for=condition=Ready", "initpipeline/web", "--timeout=180s", timeout=200)
    pods = kube.get("pods", selector="app.kubernetes.io/managed-by=initpipeline")["items"]
    assert len(pods) == 2
    assert all(p["metadata"]["annotations"]["initpipeline.dev/objects-met"] == "wait-seed" for p in pods)

    kube.run("delete", "job", "seed", "--wait=true")
    kube.run("scale", "initpipeline/web", "--replicas=3")
    eventually("3/3 ready without the Job", lambda: status_of(kube, "web").get("ready") == "3/3", timeout=120)
    assert objects_of(kube, "web")["wait-seed"]["met"] is True


def test_an_attached_deployments_pods_wait_for_the_object_too(kube: Kube) -> None:
    """Attach mode: the webhook adds the step to the Pods of the user's own Deployment, the operator tells them."""
    kube.apply({"apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": "shop"},
                "spec": {"attach": {"kind": "Deployment", "name": "shop"}, "steps": [
                    {"name": "wait-seed", "waitForObject": {"apiVersion": "batch/v1", "kind": "Job",
                                                            "name": "seed"}}]}})
    kube.apply(users_deployment("shop", replicas=2))
    eventually("the Job reported missing", seen(kube, "shop", "wait-seed", "not found"), timeout=60)
    pods = app_pods(kube, "shop")
    assert len(pods) == 2 and all(p["spec"]["initContainers"][0]["name"] == "wait-seed" for p in pods)
    kube.apply(job("seed", 1))
    eventually("2/2 ready", ready(kube, "shop", 2), timeout=180)
    assert objects_of(kube, "shop")["wait-seed"]["met"] is True
