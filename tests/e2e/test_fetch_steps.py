"""The seeds' secret download and git clone, in Pods of the real cluster: a Vault-like API on the node (its
token checked, its envelope unwrapped, the keys checked) and git's own HTTP server with a token; the wait
step asks PostgreSQL by its protocol and resolves a Service's name through the cluster's DNS."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kube import Kube, eventually, phase_is
from tests.e2e.manifests import BUSYBOX, HOST_IP, database_secret, fresh_database, host_service, postgres_service
from tests.helpers import GitServer, HttpServer, Postgres, git, respond

pytestmark = pytest.mark.e2e
VAULT_TOKEN = "hvs.e2e-T0ken"
GIT_TOKEN = "glpat-e2e-T0ken"
SECRET = {"api_key": "ak-e2e", "db_password": "pw-e2e", "redis_password": "rp-e2e"}


def vault() -> HttpServer:
    def answer(handler: Any, _: int) -> None:
        if handler.headers.get("X-Vault-Token") != VAULT_TOKEN:
            respond(handler, 403, b'{"errors": ["permission denied"]}')
        else:
            body = {"data": {"data": SECRET, "metadata": {"version": 1}}, "lease_id": ""}
            respond(handler, 200, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return HttpServer(answer, address=HOST_IP)


def site_repository(root: Path) -> str:
    work = root / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "index.html").write_text("hello from git\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "site")
    git(root, "clone", "-q", "--bare", str(work), "site.git")
    return git(root / "site.git", "rev-parse", "main")


def test_secrets_from_a_vault_like_api_and_a_pinned_clone(kube: Kube, host_postgres: Postgres) -> None:
    url = fresh_database(host_postgres, kube.namespace)
    root = Path(tempfile.mkdtemp(prefix="initpipeline-e2e-git-"))
    commit = site_repository(root)
    with vault().running() as secrets, GitServer(root, token=GIT_TOKEN, address=HOST_IP).running() as repos:
        kube.apply([*postgres_service(host_postgres.port), database_secret("shop-db", url),
                    *host_service("vault", secrets.port, 8200), *host_service("git", repos.port),
                    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tokens"},
                     "stringData": {"vault": VAULT_TOKEN, "git": GIT_TOKEN}}])
        steps = [
            {"name": "wait-deps", "waitForService": {"targets": [
                {"postgres": {"urlFrom": {"secretKeyRef": {"name": "shop-db", "key": "url"}}}},
                {"dns": f"vault.{kube.namespace}.svc.cluster.local"}]}},
            {"name": "fetch-secrets", "configDownload": {
                "volume": "secrets",
                "headers": [{"name": "X-Vault-Token",
                             "valueFrom": {"secretKeyRef": {"name": "tokens", "key": "vault"}}}],
                "files": [{"url": "http://vault:8200/v1/secret/data/shop", "path": "app-secrets.json",
                           "extract": "data.data", "requireKeys": sorted(SECRET), "mode": "0400"}]}},
            {"name": "clone", "gitClone": {
                "repository": "http://git/site.git", "ref": "main", "commit": commit, "volume": "html",
                "path": "site", "tokenFrom": {"secretKeyRef": {"name": "tokens", "key": "git"}}}},
        ]
        app = {"name": "app", "image": BUSYBOX, "command": ["sh", "-c",
               "cat /secrets/app-secrets.json; ls -l /secrets; cat /html/site/index.html; sleep 3600"],
               "volumeMounts": [{"name": "secrets", "mountPath": "/secrets"}, {"name": "html", "mountPath": "/html"}]}
        pipeline = {"apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": "shop"},
                    "spec": {"steps": steps, "template": {"spec": {
                        "containers": [app], "securityContext": {"fsGroup": 65532},
                        "volumes": [{"name": "secrets", "emptyDir": {"medium": "Memory"}},
                                    {"name": "html", "emptyDir": {}}]}}}}
        kube.apply(pipeline)
        kube.run("wait", "--for=condition=Ready", "initpipeline/shop", "--timeout=180s", timeout=200)
    status = eventually("Running", phase_is(kube, "shop", "Running"), timeout=60)
    assert [s["state"] for s in status["steps"]] == ["Succeeded"] * 3, status["steps"]
    logs = kube.run("logs", status["podName"], "-c", "app").stdout
    assert json.loads(logs[:logs.index("}") + 1]) == SECRET  # the secret itself, not Vault's envelope
    assert "-r--------" in logs and "hello from git" in logs
    clone_log = kube.run("logs", status["podName"], "-c", "clone").stdout
    assert f"commit {commit}" in clone_log and GIT_TOKEN not in clone_log
    fetch_log = kube.run("logs", status["podName"], "-c", "fetch-secrets").stdout
    assert VAULT_TOKEN not in fetch_log and "pw-e2e" not in fetch_log
