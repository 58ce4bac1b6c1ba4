"""Attach mode's test objects: the example pipeline, the user's Pods as the webhook sees and leaves them,
their ReplicaSets and the once-steps Jobs, as the caches keep them."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from initpipeline.core.attach.inject import inject
from initpipeline.core.attach.revision import revision_entry
from initpipeline.spec import names
from tests.cases import ROOT

Obj = dict[str, Any]
EXAMPLE = ROOT / "examples" / "attach"


def pipeline(status: Obj | None = None) -> Obj:
    doc: Obj = yaml.safe_load((EXAMPLE / "pipeline.yaml").read_text())
    doc["metadata"].update(namespace="ns", uid="u1", generation=1)
    doc["status"] = status or {}
    return doc


def new_pod(template_hash: str = "6d4f8b9c7", image: str = "shop:1.0") -> Obj:
    """A Pod as the ReplicaSet controller sends it to the webhook: from the Deployment's template."""
    deployment: Obj = yaml.safe_load((EXAMPLE / "deployment.yaml").read_text())
    template = copy.deepcopy(deployment["spec"]["template"])
    template["metadata"]["labels"]["pod-template-hash"] = template_hash
    template["spec"]["containers"][0]["image"] = image
    return {"metadata": {"generateName": f"shop-{template_hash}-", "namespace": "ns",
                         "labels": template["metadata"]["labels"]}, "spec": template["spec"]}


def admitted(doc: Obj, p: Obj, name: str, created: str = "2026-11-30T09:00:00Z") -> Obj:
    """The Pod as the API server stores it after the webhook's patch (merge semantics, as kopf applies it)."""
    patch = inject(doc, p, "runner:1")
    out = copy.deepcopy(p)
    out["metadata"]["labels"].update(patch["metadata"]["labels"])
    out["metadata"].update(name=name, creationTimestamp=created)
    out["spec"].update(patch["spec"])
    return out


def replicaset(template_hash: str, number: int, desired: int = 3, owner: str = "shop") -> Obj:
    """A ReplicaSet of the Deployment as the cache keeps it (the Deployment controller's annotations)."""
    return revision_entry({"kind": "ReplicaSet", "metadata": {
        "name": f"{owner}-{template_hash}", "labels": {"pod-template-hash": template_hash, names.LABEL_INJECT: "shop"},
        "annotations": {"deployment.kubernetes.io/revision": str(number),
                        "deployment.kubernetes.io/desired-replicas": str(desired)},
        "ownerReferences": [{"kind": "Deployment", "name": owner, "controller": True, "uid": "d1"}]}})


def job(rev: str, state: str | None = None, name: str | None = None) -> Obj:
    conditions = [{"type": state, "status": "True"}] if state else []
    return {"metadata": {"name": name or f"shop-once-{rev}", "labels": {names.LABEL_REVISION: rev}},
            "status": {"conditions": conditions}}


def rev_of(p: Obj) -> str:
    return str(p["metadata"]["labels"][names.LABEL_REVISION])
