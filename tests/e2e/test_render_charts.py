"""Public charts' workloads (tests/e2e/rendered: bitnami's wordpress, ghost, gitea, keycloak and postgresql, as
`helm template` renders them), attached: `initpipeline render` prints a Pod and a once-steps Job whose
migration runs as the chart's app container, and the API server accepts every object as it stands, in a
namespace that enforces Pod Security `restricted` (a server-side dry run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kube import Kube
from tests.helpers import ROOT

pytestmark = pytest.mark.e2e
RENDERED = ROOT / "tests" / "e2e" / "rendered"
# chart: the volume that the chart's own init container prepares, where a download goes
CHARTS = {"wordpress": "empty-dir", "ghost": "empty-dir", "gitea": "empty-dir", "keycloak": "empty-dir",
          "postgresql": "data"}  # postgresql: a StatefulSet's claim template


def workload(chart: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((RENDERED / f"{chart}.yaml").read_text())
    doc["spec"]["template"]["metadata"].setdefault("labels", {})["initpipeline.dev/inject"] = chart
    return doc


def attaching(chart: str, doc: dict[str, Any]) -> dict[str, Any]:
    app = doc["spec"]["template"]["spec"]["containers"][0]["name"]
    return {"apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": chart},
            "spec": {"attach": {"kind": doc["kind"], "name": doc["metadata"]["name"]}, "steps": [
                {"name": "wait-db", "waitForService": {"targets": [{"host": "db", "port": 5432}]}},
                {"name": "migrate", "migration": {
                    "imageFrom": app, "command": ["/opt/bitnami/scripts/migrate.sh"],
                    "databaseUrlFrom": {"secretKeyRef": {"name": "app-db", "key": "url"}}}},
                {"name": "fetch-config", "configDownload": {"volume": CHARTS[chart], "files": [
                    {"url": "http://config/app.yaml", "path": "conf/app.yaml"}]}}]}}


def render(tmp_path: Path, *docs: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    files = []
    for i, doc in enumerate(docs):
        files.append(tmp_path / f"{i}.yaml")
        files[-1].write_text(yaml.safe_dump(doc))
    done = subprocess.run([sys.executable, "-m", "initpipeline.cli", "render", *map(str, files)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d], done.stdout


@pytest.mark.parametrize("chart", sorted(CHARTS))
def test_a_charts_attached_pod_and_job_pass_a_server_side_dry_run(kube: Kube, tmp_path: Path, chart: str) -> None:
    doc = workload(chart)
    (pod, job), text = render(tmp_path, attaching(chart, doc), doc)
    app = doc["spec"]["template"]["spec"]["containers"][0]
    job_spec = job["spec"]["template"]["spec"]
    migrate = next(c for c in job_spec["initContainers"] if c["name"] == "migrate")
    # the migration runs as the app: all of its env (the URL last), envFrom, securityContext, and the mounts
    # that can follow into a Job
    app_env = [e["name"] for e in app.get("env") or []]
    assert [e["name"] for e in migrate["env"]] == [n for n in app_env if n != "DATABASE_URL"] + ["DATABASE_URL"]
    assert migrate.get("envFrom") == app.get("envFrom")
    assert migrate["securityContext"] == app["securityContext"]
    claims = {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates") or []}
    assert [m["mountPath"] for m in migrate["volumeMounts"]] == [
        m["mountPath"] for m in app["volumeMounts"] if m["name"] not in claims]
    assert job_spec["securityContext"] == doc["spec"]["template"]["spec"]["securityContext"]

    # the API server takes them as they stand, where Pod Security enforces restricted
    kube.run("label", "namespace", kube.namespace, "pod-security.kubernetes.io/enforce=restricted")
    account = doc["spec"]["template"]["spec"].get("serviceAccountName")
    if account:
        kube.run("create", "serviceaccount", account)
    # the rendered Pod is what the webhook left: without its label, so that the webhook is not asked again
    del pod["metadata"]["labels"]["initpipeline.dev/inject"]
    job_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": f"{job['metadata']['name']}-",
                                                               "labels": job["spec"]["template"]["metadata"]["labels"]},
               "spec": job_spec}
    for obj in (pod, job, job_pod):
        done = kube.run("create", "--dry-run=server", "-o", "name", "-f", "-", stdin=json.dumps(obj),
                        check=False)
        assert done.returncode == 0, f"{obj['kind']}: {done.stderr}"
        assert "Warning" not in done.stderr, done.stderr  # Pod Security warns on a Job it would refuse Pods of
    # and the Job as render printed it, to kubectl's YAML reader (a revision such as 92209e9 is quoted)
    printed_job = text.split("\n---\n")[1]
    done = kube.run("create", "--dry-run=server", "-o", "name", "-f", "-", stdin=printed_job, check=False)
    assert done.returncode == 0, done.stderr
