from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from initpipeline.spec.formats import is_safe_relative_path
from initpipeline.spec.validation import validate_pipeline
from tests.cases import BAD_CASES, BadCase, bad, examples, shop, step


def test_reference_example_is_valid() -> None:
    assert validate_pipeline(shop()) == []


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda c: c.id)
def test_bad_input_is_refused_naming_the_field(case: BadCase) -> None:
    errors = validate_pipeline(bad(case))
    assert errors, f"{case.id} was accepted"
    assert case.field in [e.field for e in errors], [str(e) for e in errors]


def test_every_problem_is_reported_at_once() -> None:
    doc = shop()
    doc["spec"]["steps"][0]["waitForService"]["targets"][0]["port"] = 0
    doc["spec"]["steps"][2]["configDownload"]["files"][0]["sha256"] = "nothex"
    fields = {e.field for e in validate_pipeline(doc)}
    assert {"spec.steps[0].waitForService.targets[0].port", "spec.steps[2].configDownload.files[0].sha256"} <= fields


def test_messages_say_why() -> None:
    doc = shop()
    step(doc, "fetch-config")["configDownload"]["volume"] = "cache"
    [error] = validate_pipeline(doc)
    assert str(error) == ("spec.steps[2].configDownload.volume: 'cache' is not a volume in spec.template.spec.volumes"
                          " (or spec.workload.volumeClaimTemplates)")


def test_unknown_fields_are_named() -> None:
    doc = shop()
    step(doc, "wait-deps")["waitForService"]["timout"] = 5
    assert [e.field for e in validate_pipeline(doc)] == ["spec.steps[0].waitForService.timout"]


def test_custom_migration_options_only_with_their_mode() -> None:
    doc = shop()
    migration = step(doc, "migrate")["migration"]
    del migration["sql"]
    migration.update(image="shop:1.0", command=["python", "manage.py", "migrate"], lockTimeoutSeconds=5)
    assert [e.field for e in validate_pipeline(doc)] == ["spec.steps[1].migration.lockTimeoutSeconds"]


def test_restart_policy_conflict() -> None:
    doc = shop()
    doc["spec"]["restartPolicy"] = "Never"
    doc["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert [e.field for e in validate_pipeline(doc)] == ["spec.restartPolicy"]


def test_long_pipeline_name_is_refused() -> None:
    doc = shop()
    doc["metadata"]["name"] = "a" * 51
    assert [e.field for e in validate_pipeline(doc)] == ["metadata.name"]


def test_header_needs_exactly_one_source() -> None:
    doc = shop()
    step(doc, "wait-deps")["waitForService"]["headers"] = [
        {"name": "Authorization", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "Bad Header", "value": "x"},
    ]
    fields = [e.field for e in validate_pipeline(doc)]
    assert fields == ["spec.steps[0].waitForService.headers[0]", "spec.steps[0].waitForService.headers[1].name"]


@pytest.mark.parametrize("path,ok", [
    ("app.yaml", True), ("conf/app.yaml", True), ("a/../b", False), ("..", False), ("/abs", False),
    ("dir/", False), ("a//b", False), ("./a", False), ("", False), ("..hidden", True),
])
def test_safe_relative_path(path: str, ok: bool) -> None:
    assert is_safe_relative_path(path) is ok


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "InitPipeline":
            assert validate_pipeline(doc) == [], path
