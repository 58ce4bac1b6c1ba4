"""Deployment pipelines' test objects: app Pods and Jobs labelled as the operator labels them, a workload as
its controller reports it, and the workload a pipeline wants."""

from __future__ import annotations

import copy
from typing import Any

from initpipeline.core.build import build_workload
from initpipeline.core.workload_plan import spec_hash
from initpipeline.spec import names

Obj = dict[str, Any]


def named(p: Obj, name: str, rev: str, role: str = "app") -> Obj:
    p["metadata"].update(name=name, labels={names.LABEL_REVISION: rev, names.LABEL_ROLE: role, names.LABEL_UID: "u1"})
    return p


def job(name: str, rev: str, state: str | None = None) -> Obj:
    conditions = [{"type": state, "status": "True"}] if state else []
    return {"metadata": {"name": name, "labels": {names.LABEL_REVISION: rev}}, "status": {"conditions": conditions}}


def as_observed(desired: Obj, generation: int = 1, ready: int = 0, updated: int = 0, total: int = 0) -> Obj:
    observed = copy.deepcopy(desired)
    observed["metadata"].update(generation=generation, resourceVersion="7")
    observed["metadata"]["annotations"] = {"initpipeline.dev/spec-hash": spec_hash(desired)}
    observed["status"] = {"observedGeneration": generation, "readyReplicas": ready, "updatedReplicas": updated,
                          "replicas": total}
    return observed


def desired_of(doc: Obj) -> Obj:
    desired = build_workload(doc, "runner:1")
    desired["metadata"]["annotations"] = {"initpipeline.dev/spec-hash": spec_hash(desired)}
    return desired
