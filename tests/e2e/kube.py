"""A thin kubectl wrapper for the end-to-end tests (the same tool users drive the product with)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.helpers import ROOT

CACHE = Path(os.environ.get("INITPIPELINE_CACHE", Path.home() / ".cache" / "initpipeline"))
BIN = CACHE / "bin"
VENV_BIN = Path(sys.executable).parent  # the venv that kubectl-initpipeline is installed in
T = TypeVar("T")

# What a test does to the cluster itself (restart the API server, kill a container, read the API server's
# audit log): hack/cluster.sh on the local cluster; on another cluster, the command that
# INITPIPELINE_E2E_CLUSTER names (hack/kind-e2e.sh gives hack/kind/cluster-ctl.sh). Without one, on a
# cluster of someone else's, the tests that need it are skipped.
_EXTERNAL = bool(os.environ.get("INITPIPELINE_E2E_KUBECONFIG"))
_CONTROL = shlex.split(os.environ.get("INITPIPELINE_E2E_CLUSTER", "")) or (
    [] if _EXTERNAL else ["bash", str(ROOT / "hack" / "cluster.sh")])
needs_cluster_control = pytest.mark.skipif(not _CONTROL, reason="needs INITPIPELINE_E2E_CLUSTER on this cluster")


def cluster_control(*args: str, timeout: float = 240) -> str:
    result = subprocess.run([*_CONTROL, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(_CONTROL + list(args))} failed: {result.stderr}")
    return result.stdout


@dataclass
class Kube:
    kubeconfig: str
    namespace: str = "default"

    def kubectl(self, *args: str) -> list[str]:
        """The command line of kubectl (the one the cluster's build made, else PATH's) on this namespace."""
        kubectl = str(BIN / "kubectl") if (BIN / "kubectl").exists() else "kubectl"
        return [kubectl, "--kubeconfig", self.kubeconfig, "-n", self.namespace, *args]

    def run(self, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.kubectl(*args), input=stdin, capture_output=True, text=True, timeout=timeout,
                                check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def apply(self, docs: list[dict[str, Any]] | dict[str, Any] | str, check: bool = True,
              *extra: str) -> subprocess.CompletedProcess[str]:
        text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs if isinstance(docs, list) else [docs])
        return self.run("apply", *extra, "-f", "-", stdin=text, check=check)

    def dry_run(self, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """Create it with --dry-run=server: through admission, stored nowhere; the result is as admitted."""
        return self.run("create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(doc), check=False)

    def get(self, kind: str, name: str | None = None, selector: str | None = None) -> Any:
        args = ["get", kind, *([name] if name else []), *(["-l", selector] if selector else []), "-o", "json"]
        return json.loads(self.run(*args).stdout)

    def maybe(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.run("get", kind, name, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def pipeline(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get("initpipeline", name)
        return found

    @contextlib.contextmanager
    def port_forward(self, pod: str, port: int) -> Iterator[int]:
        """A local port to `port` of the Pod, as `kubectl port-forward` gives it: the tests reach Pods
        this way on any cluster, where a Pod's IP may not be routed to the host (kind)."""
        process = subprocess.Popen(self.kubectl("port-forward", "--address", "127.0.0.1", f"pod/{pod}", f":{port}"),
                                   stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            found = re.match(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            assert found, f"kubectl port-forward said {line!r}"
            yield int(found.group(1))
        finally:
            process.terminate()
            process.wait(timeout=10)

    def events(self, name: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("events")["items"]
        return [e for e in items if e["involvedObject"].get("name") == name
                and e["involvedObject"].get("kind") == "InitPipeline"]


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 120, interval: float = 1) -> T:
    """Poll until probe returns something truthy; fail naming what was awaited and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def installed_mechanism(operator: Kube) -> str:
    """How the installed operator attaches pipelines to Pods: its webhook, or the API server's policy."""
    found = operator.run("get", "mutatingwebhookconfiguration", "initpipeline-initpipeline-system", check=False)
    return "webhook" if found.returncode == 0 else "policy"


def status_of(kube: Kube, name: str) -> dict[str, Any]:
    status: dict[str, Any] = kube.pipeline(name).get("status") or {}
    return status


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == ctype), {})


def plugin(kube: Kube, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`kubectl initpipeline ...` as a user runs it: kubectl finds kubectl-initpipeline on PATH."""
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    return subprocess.run([str(BIN / "kubectl"), "initpipeline", *args, "-n", kube.namespace], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def phase_is(kube: Kube, name: str, *phases: str) -> Any:
    def probe() -> Any:
        status = status_of(kube, name)
        return status if status.get("phase") in phases else None
    return probe


def ready(kube: Kube, name: str, replicas: int, revision_not: str | None = None,
          generation: int | None = None) -> Any:
    """A probe: the pipeline is Ready with all its replicas (at that generation, or off that revision)."""
    def probe() -> Any:
        status = status_of(kube, name)
        ok = (status.get("ready") == f"{replicas}/{replicas}" and condition(status, "Ready").get("status") == "True"
              and (revision_not is None or status.get("revision") != revision_not)
              and (generation is None or status.get("observedGeneration") == generation))
        return status if ok else None
    return probe


def app_pods(kube: Kube, name: str, role: str | None = None) -> list[dict[str, Any]]:
    """The live Pods labelled app=<name> (and of that initpipeline.dev/role)."""
    selector = f"app={name}" + (f",initpipeline.dev/role={role}" if role else "")
    items: list[dict[str, Any]] = kube.get("pods", selector=selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]
