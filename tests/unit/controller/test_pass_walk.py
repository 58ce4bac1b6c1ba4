"""A pass, walked as a maintainer walks it (every call into the package, in order): it goes down into core/
for its decisions and comes back up into controller/ for its writes, not back and forth."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from initpipeline.controller.passes import INDEXES, Caches, run_pass
from tests.unit.attached import admitted, job, new_pod, replicaset, rev_of
from tests.unit.attached import pipeline as attached_pipeline
from tests.unit.controller.fakes import OWNER, Recording, owned, pipeline
from tests.unit.pods import STEPS, pending, pod, running

PACKAGE = Path(__file__).resolve().parents[3] / "operator" / "initpipeline"
MAX_CLIMBS = 3  # from core/ back into controller/, in one pass
Obj = dict[str, Any]


def walk(cluster: Recording, indexes: dict[str, Any]) -> list[str]:
    """The layers of the package's functions that one pass calls, in order, repeats folded."""
    layers: list[str] = []

    def profile(frame: FrameType, event: str, _: Any) -> None:
        if event != "call":
            return
        path = Path(frame.f_code.co_filename)
        if PACKAGE in path.parents and (not layers or layers[-1] != path.relative_to(PACKAGE).parts[0]):
            layers.append(path.relative_to(PACKAGE).parts[0])

    sys.setprofile(profile)
    try:
        run_pass(cluster, Caches(indexes), "u1")
    finally:
        sys.setprofile(None)
    return layers


def climbs(layers: list[str]) -> int:
    return sum(1 for here, there in itertools.pairwise(layers) if here == "core" and there == "controller")


def caches(doc: Obj, **children: list[Obj]) -> dict[str, Any]:
    indexes: dict[str, Any] = {name: {} for name in INDEXES}
    indexes["pipelines_by_uid"] = {"u1": [doc]}
    for index, items in children.items():
        indexes[index] = {"u1": items}
    return indexes


def pod_mode() -> dict[str, Any]:
    return caches(pipeline(1), pods_by_owner=[owned(pod("Pending", [running(STEPS[0], "2026-11-22T10:00:00Z")]
                                                        + [pending(s) for s in STEPS[1:]]), "shop-1")])


def workload_mode() -> dict[str, Any]:
    doc = pipeline(1)
    doc["spec"]["workload"] = {"kind": "Deployment", "replicas": 2}
    return caches(doc)


def attach_mode() -> dict[str, Any]:
    doc = attached_pipeline()
    pods = [admitted(doc, new_pod(), f"shop-a-{i}") for i in range(2)]
    done = {**job(rev_of(pods[0]), "Complete"), "metadata": {**job(rev_of(pods[0]))["metadata"],
                                                              "ownerReferences": OWNER}}
    indexes = caches(doc, pods_by_owner=pods, jobs_by_owner=[done])
    indexes["replicasets_by_pipeline"] = {("ns", "shop"): [replicaset("6d4f8b9c7", 1)]}
    return indexes


@pytest.mark.parametrize("mode", [pod_mode, workload_mode, attach_mode], ids=lambda m: m.__name__)
def test_a_pass_goes_down_for_its_decisions_and_up_for_its_writes(mode: Any) -> None:
    cluster = Recording()
    layers = walk(cluster, mode())
    assert cluster.writes, "the pass wrote something"
    assert "core" in layers and climbs(layers) <= MAX_CLIMBS, layers


def test_the_walk_counts_a_pass_that_goes_back_and_forth() -> None:
    assert climbs(["controller", "core", "controller", "core", "controller", "core", "controller"]) == 3
    assert climbs(["controller", "core", "spec", "core", "controller"]) == 1

