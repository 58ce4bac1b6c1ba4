"""Pod states in the shape the kubelet reports them (modelled on real `kubectl get pod -o yaml`)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
T0, T1, T2, T3 = "2026-11-22T10:00:00Z", "2026-11-22T10:00:05Z", "2026-11-22T10:00:09Z", "2026-11-22T10:00:12Z"
STEPS = ["wait-deps", "migrate", "fetch-config", "fix-permissions"]


def done(name: str, started: str = T0, finished: str = T1) -> Obj:
    return {"name": name, "ready": True, "restartCount": 0, "started": False, "image": "x", "imageID": "x",
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started,
                                     "finishedAt": finished, "containerID": "containerd://a"}}}


def running(name: str, started: str = T1, restarts: int = 0) -> Obj:
    return {"name": name, "ready": False, "restartCount": restarts, "started": True, "image": "x",
            "state": {"running": {"startedAt": started}}}


def pending(name: str) -> Obj:
    return {"name": name, "ready": False, "restartCount": 0, "started": False, "image": "x",
            "state": {"waiting": {"reason": "PodInitializing"}}}


def failed(name: str, code: int = 1, reason: str = "Error", message: str = "boom", restarts: int = 0) -> Obj:
    return {"name": name, "ready": False, "restartCount": restarts, "started": False, "image": "x",
            "state": {"terminated": {"exitCode": code, "reason": reason, "message": message,
                                     "startedAt": T1, "finishedAt": T2}}}


def crash_looping(name: str, code: int = 20, message: str = "migration 002 failed", restarts: int = 3,
                  finished: str = T2) -> Obj:
    return {"name": name, "ready": False, "restartCount": restarts, "started": False, "image": "x",
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                                  "message": f"back-off 40s restarting failed container={name}"}},
            "lastState": {"terminated": {"exitCode": code, "reason": "Error", "message": message,
                                         "startedAt": T1, "finishedAt": finished}}}


def image_pull_backoff(name: str) -> Obj:
    return {"name": name, "ready": False, "restartCount": 0, "started": False, "image": "nope:1",
            "state": {"waiting": {"reason": "ImagePullBackOff",
                                  "message": 'Back-off pulling image "nope:1"'}}}


def pod(phase: str, init: list[Obj], *, ready: bool = False, initialized: bool = False,
        restart_policy: str = "Always", reason: str | None = None, message: str | None = None,
        scheduled: bool = True, containers: list[Obj] | None = None) -> Obj:
    conditions = [
        {"type": "PodScheduled", "status": "True" if scheduled else "False", "lastTransitionTime": T0,
         **({} if scheduled else {"reason": "Unschedulable",
                                  "message": "0/1 nodes are available: 1 Insufficient memory."})},
    ]
    if scheduled:
        conditions += [
            {"type": "Initialized", "status": "True" if initialized else "False", "lastTransitionTime": T0},
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": T0},
            {"type": "ContainersReady", "status": "True" if ready else "False", "lastTransitionTime": T0},
        ]
    status: Obj = {"phase": phase, "conditions": conditions, "qosClass": "Burstable"}
    if scheduled:
        status.update(startTime=T0, initContainerStatuses=init, hostIP="198.18.0.1", podIP="198.18.0.5")
        status["containerStatuses"] = containers or [
            {"name": "app", "ready": ready, "restartCount": 0, "started": ready, "image": "shop:1.0",
             "state": {"running": {"startedAt": T3}} if phase == "Running"
             else {"waiting": {"reason": "PodInitializing"}}}]
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "shop-1", "namespace": "default", "uid": "p1"},
            "spec": {"restartPolicy": restart_policy}, "status": status}


NOW = "2026-11-22T10:01:00Z"


def status_of(p: Obj | None, previous: Obj | None = None) -> Obj:
    """The status of the reference pipeline (generation 2) with this Pod, after `previous`."""
    from initpipeline.core.pod_status import build_status
    from tests.cases import shop

    doc = shop()
    doc["metadata"]["generation"] = 2
    if previous:
        doc["status"] = previous
    return build_status(doc, p, NOW)
