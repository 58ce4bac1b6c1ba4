"""A pipeline's children as the watches' caches hold them, and which of them an earlier spec left behind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..spec.names import Obj


@dataclass
class Children:
    """Its Pods (its own, its workload's and its Jobs'), its Deployment or StatefulSet, and its
    once-steps Jobs."""

    pods: list[Obj] = field(default_factory=list)
    workloads: list[Obj] = field(default_factory=list)
    jobs: list[Obj] = field(default_factory=list)
    # an attached workload's ReplicaSets or ControllerRevisions (slim: see core.attach.revision.revision_entry)
    revisions: list[Obj] = field(default_factory=list)


def owned_by(child: Obj, uid: str) -> bool:
    """Whether the pipeline of this uid owns the child directly (a workload's Pods are the ReplicaSet's)."""
    return any(ref.get("uid") == uid for ref in child["metadata"].get("ownerReferences") or [])


def stale_children(uid: str, candidates: list[Obj], keep: Callable[[Obj], bool]) -> list[Obj]:
    """The pipeline's own children among candidates that are not being deleted already and that it does
    not keep: what an older generation, or a spec of another kind, left behind."""
    return [child for child in candidates
            if owned_by(child, uid) and not child["metadata"].get("deletionTimestamp") and not keep(child)]
