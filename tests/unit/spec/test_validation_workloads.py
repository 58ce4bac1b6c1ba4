"""Validation of workload pipelines: once, workload fields, reserved labels (the CRD's CEL rules)."""

from __future__ import annotations

from typing import Any

from initpipeline.spec import names
from initpipeline.spec.validation import validate_pipeline
from tests.cases import deployment

Obj = dict[str, Any]


def shop() -> Obj:
    return deployment()


def errors(doc: Obj) -> list[str]:
    return [str(e) for e in validate_pipeline(doc, cel=True)]


def test_once_is_refused_where_it_cannot_work() -> None:
    doc = shop()
    doc["spec"]["steps"][0]["once"] = True
    assert errors(doc) == ['spec.steps[0].once: Invalid value: "object": only migration and container steps can '
                           'run once; waiting and downloads are needed in every Pod']
    doc = shop()
    del doc["spec"]["workload"]
    doc["spec"]["steps"][1]["once"] = True
    assert errors(doc)[0].startswith('spec.steps: Invalid value: "object": once only applies to Deployment and '
                                     'StatefulSet')


def test_workload_fields_of_the_other_kind_and_bad_replicas_are_named() -> None:
    doc = shop()
    doc["spec"]["workload"]["serviceName"] = "shop"
    [error] = errors(doc)
    assert error.startswith("spec.workload: ") and error.endswith("only apply to kind StatefulSet")
    doc = shop()
    doc["spec"]["workload"] = {"kind": "Pod", "replicas": 3}
    assert errors(doc)[0].startswith('spec.workload.replicas: Invalid value: "object": a Pod workload runs exactly one')
    doc = shop()
    doc["spec"]["restartPolicy"] = "Never"
    assert errors(doc) == ['spec.restartPolicy: Invalid value: "object": restartPolicy must be Always for a '
                           'Deployment or StatefulSet, whose controller restarts Pods itself']


def test_reserved_labels_are_refused() -> None:
    doc = shop()
    doc["spec"]["template"]["metadata"]["labels"][names.LABEL_UID] = "x"
    assert errors(doc) == ['spec.template.metadata.labels: Invalid value: "object": labels under initpipeline.dev/ '
                           "are the operator's own (they select its Pods)"]


# ---- planning ----------------------------------------------------------------------------------------
