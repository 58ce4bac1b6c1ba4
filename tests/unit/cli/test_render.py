"""initpipeline render: the objects an InitPipeline expands into, and its refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.cases import ROOT, shop, step


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "initpipeline.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, check=False)


def test_render_prints_the_pod() -> None:
    result = run_cli("render", "examples/shop.yaml", "--runner-image", "runner:9")
    assert result.returncode == 0, result.stderr
    [pod] = list(yaml.safe_load_all(result.stdout))
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "shop-1"
    assert pod["spec"]["initContainers"][0]["image"] == "runner:9"


def test_render_shows_the_migration_layout() -> None:
    result = run_cli("render", "examples/golang-migrate-folder.yaml")
    assert result.returncode == 0, result.stderr
    assert "- --layout\n" in result.stdout and "- golang-migrate\n" in result.stdout


def test_render_names_step_and_field_of_a_bad_resource(tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = shop()
    step(doc, "wait-deps")["waitForService"]["targets"][0]["port"] = 99999
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    result = run_cli("render", str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    assert ("spec.steps[0].waitForService.targets[0].port: Invalid value: 99999: should be less than or equal to "
            "65535 (step 'wait-deps')") in result.stderr


def test_render_refuses_other_kinds_and_bad_yaml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "svc.yaml"
    other.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n")
    assert "no document of kind InitPipeline" in run_cli("render", str(other)).stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [unclosed\n")
    result = run_cli("render", str(broken))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert run_cli("render", str(tmp_path / "missing.yaml")).returncode == 1


def test_render_checks_api_version(tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = shop()
    doc["apiVersion"] = "initpipeline.dev/v1"
    path = tmp_path / "v1.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = run_cli("render", str(path))
    assert result.returncode == 1 and "apiVersion: must be initpipeline.dev/v1alpha1" in result.stderr


def test_render_shows_an_attached_workloads_pod_and_job_from_both_files() -> None:
    attach = ROOT / "examples" / "attach"
    result = run_cli("render", str(attach / "pipeline.yaml"), str(attach / "deployment.yaml"))
    assert result.returncode == 0, result.stderr
    pod, job = yaml.safe_load_all(result.stdout)
    assert pod["kind"] == "Pod" and job["kind"] == "Job"
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["wait-deps", "fetch-secrets"]
    assert pod["spec"]["schedulingGates"] == [{"name": "initpipeline.dev/once-steps"}]
    assert job["spec"]["template"]["spec"]["initContainers"][1]["image"] == "shop:1.0"  # imageFrom: app
    alone = run_cli("render", str(attach / "pipeline.yaml"))
    assert alone.returncode == 1
    assert "attaches to Deployment shop, which is not among the files" in alone.stderr


@pytest.mark.parametrize("text", ["92209e9", "1e3", "0x1f", "12_000", ".5", "+1.5E-3", ".inf", "0o17", "007"])
def test_strings_that_yaml_1_2_reads_as_numbers_are_quoted(text: str) -> None:
    """A revision hash such as 92209e9 is a number to kubectl (YAML 1.2) unless it is quoted."""
    from initpipeline.spec import yamlout

    written = yamlout.dump({"revision": text})
    assert written.strip() in (f"revision: '{text}'", f"revision: \"{text}\""), written
    assert yaml.safe_load(written) == {"revision": text}
    assert yamlout.dump({"name": "shop-2"}).strip() == "name: shop-2"  # others stay plain
