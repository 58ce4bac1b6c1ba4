"""An attached workload's revisions: what its Pods carry of the pipeline and of the workload, and which
revision is current (from its ReplicaSets or ControllerRevisions, as the cache keeps them)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ...spec import names, views
from ...spec.names import Obj
from ..build import REVISION_LENGTH


def labels_of(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def gates_of(pod: Obj) -> list[str]:
    return [str(g.get("name")) for g in (pod.get("spec") or {}).get("schedulingGates") or []]


def other_gates(pod_spec: Obj) -> list[Obj]:
    """A Pod's scheduling gates but ours: what it keeps when ours is lifted (or before it is added)."""
    return [g for g in pod_spec.get("schedulingGates") or [] if g.get("name") != names.ONCE_GATE]


def steps_hash(spec: Obj) -> str:
    """What the Pods of an attached workload run of the pipeline: its steps and their deadline."""
    basis = {"steps": spec.get("steps"), "activeDeadlineSeconds": spec.get("activeDeadlineSeconds")}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:REVISION_LENGTH]


def attach_revision(spec: Obj, pod_labels: dict[str, str]) -> str | None:
    """A Pod's revision, `<steps hash>-<workload hash>`: the pipeline's steps with its workload's own revision
    (pod-template-hash, or the hash that ends a StatefulSet's controller-revision-hash), so that a rollout or
    a change of the steps is a new one and a scale-up or a rollback to a revision that ran is not. Made of
    parts so that the API server's admission policy, which has no hash function, can write it too (see
    deploy/initpipeline/templates/policy.yaml). None: the Pod has no such label."""
    workload_hash = pod_labels.get(names.WORKLOAD_REVISION_LABELS[views.workload_kind(spec)])
    if not workload_hash:
        return None
    return f"{steps_hash(spec)}-{workload_hash.rsplit('-', 1)[-1]}"


def succeeded_revisions(status: Obj) -> list[str]:
    """The revisions whose once-steps succeeded, oldest first, as the status records them."""
    return [str(r) for r in (status.get("attached") or {}).get("succeededRevisions") or []]


DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"


def revision_entry(obj: Obj) -> Obj:
    """What the cache keeps of a ReplicaSet or ControllerRevision: its name, owner, revision number,
    the Pods' revision label value and the desired replicas."""
    meta = obj["metadata"]
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    if obj.get("kind") == "ControllerRevision":
        number, pod_hash = obj.get("revision"), meta["name"]  # its Pods' controller-revision-hash is its name
    else:
        number, pod_hash = annotations.get(DEPLOYMENT_REVISION), labels.get("pod-template-hash")
    owners = [(ref.get("kind"), ref.get("name")) for ref in meta.get("ownerReferences") or [] if ref.get("controller")]
    return {"kind": obj.get("kind"), "name": meta["name"], "owners": owners, "number": int(number or 0),
            "podHash": pod_hash,
            "desired": annotations.get(DESIRED_REPLICAS), "deleting": bool(meta.get("deletionTimestamp"))}


@dataclass(frozen=True)
class Current:
    """The attached workload's current revision, as its ReplicaSets or ControllerRevisions show it."""

    pod_hash: str  # the value of its Pods' pod-template-hash or controller-revision-hash label
    desired: int | None  # a Deployment's replicas (from its newest ReplicaSet); None for a StatefulSet


def current_revision(attach: Obj, revisions: list[Obj]) -> Current | None:
    """The newest revision of the attached workload (a rollback renumbers the one it goes back to);
    None while no such workload with the label on its template is seen."""
    mine = [r for r in revisions if (attach["kind"], attach["name"]) in r["owners"] and not r["deleting"]
            and r["podHash"]]
    if not mine:
        return None
    newest = max(mine, key=lambda r: r["number"])
    desired = newest.get("desired")
    return Current(str(newest["podHash"]), int(desired) if desired is not None else None)
