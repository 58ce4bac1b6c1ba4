"""The API server refuses bad InitPipelines at apply time, naming the field (the CRD's schema and CEL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cases import BAD_CASES, BadCase, bad, examples, shop
from tests.e2e.kube import Kube

pytestmark = pytest.mark.e2e


def test_the_reference_example_is_accepted(kube: Kube) -> None:
    result = kube.apply(shop(), True, "--dry-run=server")
    assert "created (server dry run)" in result.stdout


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda c: c.id)
def test_bad_input_is_refused_at_apply(kube: Kube, case: BadCase) -> None:
    result = kube.apply(bad(case), False, "--dry-run=server")
    assert result.returncode != 0, f"{case.id} was accepted"
    assert case.apiserver in result.stderr, result.stderr


def test_kubectl_explain_describes_the_api(kube: Kube) -> None:
    text = kube.run("explain", "initpipeline.spec.steps.waitForService.timeoutSeconds").stdout
    assert "Default 300" in text
    text = kube.run("explain", "initpipeline.status.conditions").stdout
    assert "Degraded" in text


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.name)
def test_examples_are_accepted(kube: Kube, path: Path) -> None:
    result = kube.run("apply", "--dry-run=server", "-f", str(path))
    assert "(server dry run)" in result.stdout
