"""Validation of workload pipelines: once, workload fields, reserved labels."""

from __future__ import annotations

from typing import Any

from initpipeline.spec import names
from initpipeline.spec.validation import validate_pipeline
from tests.cases import deployment

Obj = dict[str, Any]


def shop() -> Obj:
    return deployment()


def errors(doc: Obj) -> list[str]:
    return [str(e) for e in validate_pipeline(doc)]


def test_once_is_refused_where_it_cannot_work() -> None:
    doc = shop()
    doc["spec"]["steps"][0]["once"] = True
    assert errors(doc) == ["spec.steps[0].once: only migration and container steps can run once; "
                           "waiting and downloads are needed in every Pod"]
    doc = shop()
    del doc["spec"]["workload"]
    doc["spec"]["steps"][1]["once"] = True
    assert errors(doc)[0].startswith("spec.steps[1].once: only applies to Deployment and StatefulSet")


def test_workload_fields_of_the_other_kind_and_bad_replicas_are_named() -> None:
    doc = shop()
    doc["spec"]["workload"]["serviceName"] = "shop"
    assert errors(doc) == ["spec.workload.serviceName: only applies to kind StatefulSet, not Deployment"]
    doc = shop()
    doc["spec"]["workload"] = {"kind": "Pod", "replicas": 3}
    assert errors(doc)[0].startswith("spec.workload.replicas: a Pod workload runs exactly one Pod")
    doc = shop()
    doc["spec"]["restartPolicy"] = "Never"
    assert errors(doc) == ["spec.restartPolicy: must be Always for a Deployment, whose controller restarts "
                           "Pods itself"]


def test_reserved_labels_are_refused() -> None:
    doc = shop()
    doc["spec"]["template"]["metadata"]["labels"][names.LABEL_UID] = "x"
    assert errors(doc)[0].startswith(f"spec.template.metadata.labels.{names.LABEL_UID}: labels under")


# ---- planning ----------------------------------------------------------------------------------------
