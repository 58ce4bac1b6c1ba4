"""The image leaves the kubernetes package out: the operator and the steps must not need it."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

BLOCK = """
import sys
class NoKubernetesClient:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "kubernetes":
            raise ImportError("no kubernetes client here: " + name)
sys.meta_path.insert(0, NoKubernetesClient())
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, check=False)


def test_the_operator_and_the_steps_import_without_it() -> None:
    result = run("import kopf, initpipeline.controller.handlers, initpipeline.cli, initpipeline.steps\n"
                 "print(sorted(m for m in sys.modules if m.startswith('kubernetes')))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_render_works_without_it() -> None:
    result = run("from initpipeline.cli import main\n"
                 "sys.exit(main(['render', 'examples/workloads/shop-deployment.yaml']))")
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout


def test_the_block_itself_works() -> None:
    # the block blocks: so the tests above mean something
    result = run("import kubernetes")
    assert result.returncode != 0 and "no kubernetes client here" in result.stderr


def test_status_without_it_says_what_is_missing() -> None:
    result = run("from initpipeline.cli import main\nsys.exit(main(['status', 'shop']))")
    assert result.returncode == 2
    assert "need the kubernetes package" in result.stderr and "Traceback" not in result.stderr
