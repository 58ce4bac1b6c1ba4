"""The image leaves the kubernetes package and cel-python out: the operator and the steps must not need
them, and the commands that do say so."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

BLOCK = """
import sys
class NoKubernetesClient:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("no kubernetes client here: " + name)
sys.meta_path.insert(0, NoKubernetesClient())
"""


def run(code: str, blocked: tuple[str, ...] = ("kubernetes",)) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", f"BLOCKED = {blocked!r}\n" + BLOCK + code], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False)


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


def test_render_without_cel_python_says_what_to_install() -> None:
    result = run("from initpipeline.cli import main\n"
                 "sys.exit(main(['render', 'examples/workloads/shop-deployment.yaml']))", ("kubernetes", "celpy"))
    assert result.returncode == 2
    assert "cel-python: pip install 'initpipeline[cli]'" in result.stderr and "Traceback" not in result.stderr


def test_the_operator_validates_without_cel_python() -> None:
    result = run("import yaml\nfrom initpipeline.spec.validation import validate_pipeline\n"
                 "doc = yaml.safe_load(open('examples/shop.yaml'))\n"
                 "print(validate_pipeline(doc), sorted(m for m in sys.modules if m.startswith('celpy')))",
                 ("kubernetes", "celpy"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] []"


def test_the_block_itself_works() -> None:
    # the block blocks: so the tests above mean something
    result = run("import kubernetes")
    assert result.returncode != 0 and "no kubernetes client here" in result.stderr


def test_status_without_it_says_what_is_missing() -> None:
    result = run("from initpipeline.cli import main\nsys.exit(main(['status', 'shop']))")
    assert result.returncode == 2
    assert "need the kubernetes package" in result.stderr and "Traceback" not in result.stderr
