"""render's validation: the CRD's own schema and CEL rules (spec/schema.py, spec/rules.py), refusing the
shared bad cases in the API server's words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from initpipeline.spec.schema import pipeline_schema, schema_errors, with_defaults
from initpipeline.spec.validation import validate_pipeline
from tests.cases import BAD_CASES, BadCase, bad, examples, shop, step


def test_reference_example_is_valid() -> None:
    assert validate_pipeline(shop(), cel=True) == []


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda c: c.id)
def test_bad_input_is_refused_naming_the_field_as_the_api_server_does(case: BadCase) -> None:
    errors = validate_pipeline(bad(case), cel=True)
    assert errors, f"{case.id} was accepted"
    assert case.field in [e.field for e in errors], [str(e) for e in errors]
    assert case.apiserver in "\n".join(map(str, errors))


def test_every_problem_of_the_schema_is_reported_at_once() -> None:
    doc = shop()
    doc["spec"]["steps"][0]["waitForService"]["targets"][0]["port"] = 0
    doc["spec"]["steps"][2]["configDownload"]["files"][0]["sha256"] = "nothex"
    assert [str(e) for e in validate_pipeline(doc)] == [
        "spec.steps[0].waitForService.targets[0].port: Invalid value: 0: should be greater than or equal to 1",
        "spec.steps[2].configDownload.files[0].sha256: Invalid value: \"nothex\": should match '^[0-9a-fA-F]{64}$'"]


def test_a_rule_says_its_message_at_its_field_path() -> None:
    doc = shop()
    step(doc, "fetch-config")["configDownload"]["volume"] = "cache"
    [error] = validate_pipeline(doc, cel=True)
    assert str(error) == ('spec.steps: Invalid value: "object": every configDownload.volume must name a volume in '
                          'spec.template.spec.volumes (or spec.workload.volumeClaimTemplates)')
    # the operator and the webhook leave the CEL rules to the API server, which evaluated them on the write
    assert validate_pipeline(doc) == []


def test_unknown_fields_are_named_with_the_known_ones() -> None:
    doc = shop()
    step(doc, "wait-deps")["waitForService"]["timout"] = 5
    [error] = validate_pipeline(doc)
    assert error.field == "spec.steps[0].waitForService.timout"
    assert "timeoutSeconds" in error.reason


def test_a_container_step_keeps_the_fields_kubernetes_adds_but_checks_its_own() -> None:
    doc = shop()
    container = step(doc, "fix-permissions")["container"]
    container["stdin"] = True  # a Container field the CRD does not list: kept, as the API server keeps it
    container["command"] = ["sh", 1]
    assert [e.field for e in validate_pipeline(doc)] == ["spec.steps[3].container.command[1]"]


def test_custom_migration_options_only_with_their_mode() -> None:
    doc = shop()
    migration = step(doc, "migrate")["migration"]
    del migration["sql"]
    migration.update(image="shop:1.0", command=["python", "manage.py", "migrate"], lockTimeoutSeconds=5)
    [error] = validate_pipeline(doc, cel=True)
    assert error.field == "spec.steps[1].migration" and "lockTimeoutSeconds" in error.reason


def test_restart_policy_conflict() -> None:
    doc = shop()
    doc["spec"]["restartPolicy"] = "Never"
    doc["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert [e.field for e in validate_pipeline(doc, cel=True)] == ["spec.restartPolicy"]


@pytest.mark.parametrize("name,field", [("a" * 51, ""), ("Shop_1", "metadata.name")])
def test_the_name_fits_a_pod_and_is_a_dns_subdomain(name: str, field: str) -> None:
    """The length is the CRD's root rule (so the error is at the root); the DNS rule is the API server's
    own for every object, the one check written here."""
    doc = shop()
    doc["metadata"]["name"] = name
    [error] = validate_pipeline(doc, cel=True)
    assert error.field == field, str(error)


def test_defaults_are_the_schemas_and_fill_only_what_is_missing() -> None:
    doc = shop()
    doc["spec"]["workload"] = {"kind": "Deployment"}
    defaulted = with_defaults(doc, pipeline_schema())
    assert defaulted["spec"]["workload"] == {"kind": "Deployment", "replicas": 1}
    assert "workload" in doc["spec"] and doc["spec"]["workload"] == {"kind": "Deployment"}  # a copy


def test_list_map_keys_and_types_in_the_api_servers_words() -> None:
    schema = pipeline_schema()
    doc = shop()
    doc["spec"]["steps"].append(dict(doc["spec"]["steps"][0]))
    doc["spec"]["activeDeadlineSeconds"] = "1h"
    assert [str(e) for e in schema_errors(doc, schema)] == [
        'spec.steps[4]: Duplicate value: {"name": "wait-deps"}',
        'spec.activeDeadlineSeconds: Invalid value: "string": must be of type integer']


@pytest.mark.parametrize("path,ok", [
    ("app.yaml", True), ("conf/app.yaml", True), ("a/../b", False), ("..", False), ("/abs", False),
    ("dir/", False), ("a//b", False), ("./a", False), ("..hidden", True),
])
def test_a_download_stays_inside_its_volume(path: str, ok: bool) -> None:
    doc = shop()
    step(doc, "fetch-config")["configDownload"]["files"][0]["path"] = path
    fields = [e.field for e in validate_pipeline(doc, cel=True)]
    assert fields == ([] if ok else ["spec.steps[2].configDownload.files[0].path"])


@pytest.mark.parametrize("url,ok", [
    ("http://config/app.yaml", True), ("https://config:8443/a", True), ("ftp://config/a", False),
    ("http:///a", False), ("config/app.yaml", False), ("http://config:port/a", False),
])
def test_urls_as_kubernetes_isurl_reads_them(url: str, ok: bool) -> None:
    doc = shop()
    step(doc, "fetch-config")["configDownload"]["files"][0]["url"] = url
    fields = [e.field for e in validate_pipeline(doc, cel=True)]
    assert fields == ([] if ok else ["spec.steps[2].configDownload.files[0].url"])


def _every_rule(schema: dict[str, Any]) -> list[str]:
    found = [r["rule"] for r in schema.get("x-kubernetes-validations") or ()]
    for sub in [*(schema.get("properties") or {}).values(), schema.get("items"), schema.get("additionalProperties")]:
        if isinstance(sub, dict):
            found += _every_rule(sub)
    return found


def test_every_rule_of_the_crd_compiles_here() -> None:
    from initpipeline.spec import rules

    every = _every_rule(pipeline_schema())
    assert len(every) > 40
    for rule in every:
        rules._program(rule)  # raises on what cel-python cannot parse


# what a structural schema's node may hold (apiextensions.k8s.io/v1 JSONSchemaProps, as the CRD uses them)
SCHEMA_KEYWORDS = {"type", "description", "properties", "items", "additionalProperties", "required", "enum",
                   "default", "format", "pattern", "minimum", "maximum", "minLength", "maxLength", "minItems",
                   "maxItems", "maxProperties", "nullable", "x-kubernetes-validations", "x-kubernetes-list-type",
                   "x-kubernetes-list-map-keys", "x-kubernetes-preserve-unknown-fields",
                   "x-kubernetes-int-or-string", "x-kubernetes-map-type", "anyOf"}


def _schema_keys(schema: dict[str, Any], path: str = "") -> list[str]:
    found = [f"{path}: {key}" for key in schema if key not in SCHEMA_KEYWORDS]
    for key, sub in (schema.get("properties") or {}).items():
        found += _schema_keys(sub, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _schema_keys(schema[key], f"{path}[]")
    return found


def test_every_node_of_the_crds_schema_holds_only_schema_keywords() -> None:
    # a YAML flow mapping splits a description at a comma into a key of its own ("or why they failed.")
    assert _schema_keys(pipeline_schema()) == []


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "InitPipeline":
            assert validate_pipeline(doc, cel=True) == [], path
