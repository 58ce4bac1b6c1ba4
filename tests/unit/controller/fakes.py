"""Fakes for the controller's tests: a client that records every write, and a clock the test moves."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prometheus_client import CollectorRegistry

from initpipeline.controller.client import KubeClient
from initpipeline.controller.context import Controller
from initpipeline.controller.metrics import Metrics
from initpipeline.controller.settings import OperatorConfig
from tests.cases import shop

Obj = dict[str, Any]
OWNER = [{"kind": "InitPipeline", "uid": "u1", "name": "shop", "apiVersion": "initpipeline.dev/v1alpha1"}]


class RecordingClient(KubeClient):
    """Every write is recorded; a read would fail the test (the caches must be enough)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, Any]] = []

    def create_pod(self, pod: Obj) -> tuple[Obj, bool]:
        self.writes.append(("create", pod["metadata"]["name"]))
        return pod, True

    def delete_pod(self, namespace: str, name: str) -> None:
        self.writes.append(("delete", name))

    def create_child(self, body: Obj) -> bool:
        self.writes.append(("create", f"{body['kind']}/{body['metadata']['name']}"))
        return True

    def create_job(self, job: Obj) -> bool:
        return self.create_child(job)

    def replace_workload(self, body: Obj) -> None:
        self.writes.append(("replace", f"{body['kind']}/{body['metadata']['name']}"))

    def delete_child(self, kind: str, namespace: str, name: str) -> None:
        self.writes.append(("delete", f"{kind}/{name}"))

    def set_pod_annotation(self, namespace: str, name: str, key: str, value: str) -> None:
        self.writes.append(("annotate", f"{name} {key}={value}"))

    def set_pod_gates(self, namespace: str, name: str, gates: list[Obj]) -> None:
        self.writes.append(("ungate", name))

    def set_pod_deadline(self, namespace: str, name: str, seconds: int) -> None:
        self.writes.append(("deadline", f"{name} {seconds}"))

    def write_status(self, namespace: str, name: str, status: Obj) -> None:
        self.writes.append(("status", status["phase"]))

    def request(self, method: str, path: str, body: Obj | None = None, **params: str) -> Obj:
        raise AssertionError(f"reconcile called the API beyond the recorded writes: {method} {path}")


class FakeClock:
    """The controller's one clock, frozen when made: time passes only when the test says so."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class Recording(Controller):
    """A Controller with a recording client, a fake clock, and Events recorded among the writes."""

    client: RecordingClient
    clock: FakeClock

    def __init__(self, client: RecordingClient | None = None, reconcile_threads: int = 4) -> None:
        recorder = client or RecordingClient()
        super().__init__(OperatorConfig(runner_image="runner:1", reconcile_threads=reconcile_threads),
                         lambda body, etype, reason, message: recorder.writes.append(("event", reason)),
                         Metrics(CollectorRegistry()), client=recorder, clock=FakeClock())

    @property
    def writes(self) -> list[tuple[str, Any]]:
        return self.client.writes

    def written(self, uid: str = "u1") -> Obj:
        written = self.memory[uid].written
        assert written is not None
        return written


def pipeline(generation: int) -> Obj:
    doc = shop()
    doc["metadata"].update(namespace="ns", uid="u1", generation=generation)
    return doc


def owned(p: Obj, name: str) -> Obj:
    p["metadata"].update(name=name, ownerReferences=OWNER)
    return p
