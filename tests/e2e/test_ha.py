"""Two operator replicas (the chart's default): one active, one on standby through kopf peering."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.kube import Kube, cluster_control, eventually, needs_cluster_control, status_of
from tests.e2e.manifests import BUSYBOX, pipeline

pytestmark = pytest.mark.e2e


def operator_pods(operator: Kube) -> list[str]:
    items = operator.get("pods", selector="app.kubernetes.io/name=initpipeline")["items"]
    return sorted(p["metadata"]["name"] for p in items
                  if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"))


def peers(operator: Kube) -> dict[str, Any]:
    found: dict[str, Any] = operator.get("clusterkopfpeering", "initpipeline").get("status") or {}
    return found


def active_and_standby(operator: Kube) -> tuple[str, str]:
    """The two replicas, once both are in the peering object: the higher priority (the older one) is active."""
    operator.run("rollout", "status", "deployment/initpipeline", "--timeout=120s")
    pods = operator_pods(operator)
    assert len(pods) == 2, pods
    recorded = eventually("both replicas to peer", lambda: (lambda p: p if set(pods) <= set(p) else None)(
        peers(operator)), timeout=60)
    active = max(pods, key=lambda name: recorded[name]["priority"])
    return active, next(name for name in pods if name != active)


def test_the_standby_takes_over_when_the_active_operator_goes(kube: Kube, operator: Kube) -> None:
    active, standby = active_and_standby(operator)
    kube.apply(pipeline("before", [{"name": "x", "container": {"image": BUSYBOX, "command": ["true"]}}]))
    eventually("the active replica to run it", lambda: status_of(kube, "before").get("phase") == "Running")
    # only the active replica acted
    assert "created Pod before-1" in operator.run("logs", active).stdout
    assert "created Pod before-1" not in operator.run("logs", standby).stdout
    # kopf wrote nothing of its own on the pipeline (event handlers only): no annotations, no finalizer;
    # the operator's only write to it is the status
    meta = kube.pipeline("before")["metadata"]
    assert not [k for k in meta.get("annotations") or {} if k.startswith("initpipeline.dev/")
                or "kopf" in k], meta.get("annotations")
    assert not meta.get("finalizers")
    fields = json.loads(kube.run("get", "initpipeline", "before", "-o", "json", "--show-managed-fields").stdout)
    writers = {(f["manager"], f.get("subresource", "")) for f in fields["metadata"]["managedFields"]}
    assert {w for w in writers if not w[0].startswith("kubectl")} == {("initpipeline", "status")}, writers

    operator.run("delete", "pod", active, "--wait=false")
    gone = time.monotonic()
    kube.apply(pipeline("after", [{"name": "x", "container": {"image": BUSYBOX, "command": ["true"]}}]))
    eventually("the standby to take over", lambda: kube.maybe("pod", "after-1"), timeout=120, interval=0.2)
    takeover = time.monotonic() - gone
    print(f"\ntakeover: the standby created the new pipeline's Pod {takeover:.1f}s after the active one was "
          "deleted")
    eventually("Running under the new active replica", lambda: status_of(kube, "after").get("phase") == "Running")
    assert "created Pod after-1" in operator.run("logs", standby).stdout
    # nothing duplicated: one Pod each
    names = sorted(p["metadata"]["name"] for p in kube.get("pods")["items"])
    assert names == ["after-1", "before-1"]
    operator.run("rollout", "status", "deployment/initpipeline", "--timeout=120s")


@needs_cluster_control
def test_the_standby_takes_over_within_seconds_when_the_active_operator_crashes(kube: Kube, operator: Kube) -> None:
    """A crash (SIGKILL, as an OOM kill) says no goodbye. The kubelet starts the container again in the same
    Pod; the new process has the same peering identity (the Pod's name) and, being younger, a lower
    priority, so the standby takes over then, without waiting out the dead process's peering lifetime."""
    active, standby = active_and_standby(operator)
    container = operator.get("pod", active)["status"]["containerStatuses"][0]["containerID"]
    cluster_control("kill-container", container, timeout=60)
    crashed = time.monotonic()
    kube.apply(pipeline("after-crash", [{"name": "x", "container": {"image": BUSYBOX, "command": ["true"]}}]))
    eventually("the standby to take over", lambda: kube.maybe("pod", "after-crash-1"), timeout=60, interval=0.2)
    takeover = time.monotonic() - crashed
    print(f"\ntakeover: the standby created the new pipeline's Pod {takeover:.1f}s after the active one crashed")
    assert "created Pod after-crash-1" in operator.run("logs", standby).stdout
    eventually("the crashed container to start again", lambda: operator.get("pod", active)["status"][
        "containerStatuses"][0]["restartCount"] >= 1, timeout=60)
    # the crashed replica, started again, stands by: nothing was done twice
    assert "created Pod after-crash-1" not in operator.run("logs", active).stdout
    eventually("Running under the new active replica",
               lambda: status_of(kube, "after-crash").get("phase") == "Running")
    operator.run("rollout", "status", "deployment/initpipeline", "--timeout=120s")
