"""End-to-end fixtures: the local cluster (or INITPIPELINE_E2E_KUBECONFIG), the operator
installed with Helm, a namespace per test, and a PostgreSQL the Pods can reach."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kube import CACHE, Kube
from tests.e2e.manifests import HOST_IP
from tests.helpers import ROOT, Postgres, postgres_server


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    configured = os.environ.get("INITPIPELINE_E2E_KUBECONFIG")
    if configured:
        return configured
    local = CACHE / "cluster" / "kubeconfig"
    if not local.exists():
        pytest.fail("no cluster: run `make cluster-up` (make test does), or set INITPIPELINE_E2E_KUBECONFIG")
    return str(local)


# Whether the tests install the operator themselves: on the local cluster, and on one that
# hack/kind-e2e.sh made (INITPIPELINE_E2E_INSTALL=1); on a cluster of someone else's, it is there already.
MAY_INSTALL = not os.environ.get("INITPIPELINE_E2E_KUBECONFIG") or bool(os.environ.get("INITPIPELINE_E2E_INSTALL"))
INSTALL_VALUES = ("--set", "logFormat=json")


def install_operator(kubeconfig: str, *values: str) -> None:
    """Install or upgrade the operator with the project's Helm chart (the tests' values, then these)."""
    subprocess.run(["bash", str(ROOT / "hack" / "install-operator.sh"), *INSTALL_VALUES, *values],
                   env={**os.environ, "KUBECONFIG": kubeconfig}, check=True)


@pytest.fixture(scope="session")
def operator(kubeconfig: str) -> Kube:
    """The operator, installed (or upgraded) with the project's Helm chart."""
    if not os.environ.get("INITPIPELINE_E2E_KUBECONFIG"):
        install_operator(kubeconfig)
    return Kube(kubeconfig, "initpipeline-system")


@pytest.fixture
def kube(kubeconfig: str, operator: Kube) -> Iterator[Kube]:
    """A fresh namespace for one test, removed afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    admin = Kube(kubeconfig)
    admin.run("create", "namespace", name)
    try:
        yield Kube(kubeconfig, name)
    finally:
        admin.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def host_postgres() -> Iterator[Postgres]:
    folder = Path(tempfile.mkdtemp(prefix="initpipeline-e2e-pg-"))
    try:
        with postgres_server(folder, listen=f"127.0.0.1,{HOST_IP}", allow="0.0.0.0/0") as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)
