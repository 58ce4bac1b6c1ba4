"""Manifests the end-to-end tests apply."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import psycopg

from initpipeline.spec.names import LABEL_INJECT as INJECT
from tests.helpers import Postgres

# The node's address on the local cluster's bridge (hack/lib.sh); kind-e2e passes the Docker gateway.
HOST_IP = os.environ.get("INITPIPELINE_E2E_HOST_IP", "198.18.0.1")
RUNNER = "docker.io/initpipeline/initpipeline:0.1.0"
BUSYBOX = "initpipeline.local/busybox:1.35"


def postgres_service(port: int) -> list[dict[str, Any]]:
    """A Service named postgres whose only endpoint is the host's PostgreSQL."""
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "postgres"},
         "spec": {"ports": [{"name": "postgres", "port": 5432, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "postgres-host", "labels": {"kubernetes.io/service-name": "postgres"}},
         "addressType": "IPv4", "endpoints": [{"addresses": [HOST_IP], "conditions": {"ready": True}}],
         "ports": [{"name": "postgres", "port": port, "protocol": "TCP"}]},
    ]


def database_secret(name: str, url: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"url": url}}


def fresh_database(pg: Postgres, name: str) -> str:
    """A new database owned by the app role; returns its in-cluster URL."""
    import psycopg

    with psycopg.connect(pg.admin_url.replace("/app?", "/postgres?"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER app')
    return f"postgresql://app:{pg.password}@postgres:5432/{name}"


def probe_pod(pipeline: str, name: str = "probe", **labels: str) -> dict[str, Any]:
    """A Pod that asks to have `pipeline` attached."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {INJECT: pipeline, **labels}},
            "spec": {"containers": [{"name": "app", "image": BUSYBOX, "command": ["sleep", "60"]}]}}


# How each injection mechanism words its refusal of a Pod that names no InitPipeline of its namespace.
REFUSED_BY = {"webhook": '"inject.initpipeline.dev" denied', "policy": "ValidatingAdmissionPolicy"}


def pipeline(name: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """An InitPipeline whose app is a busybox that sleeps."""
    app = spec.pop("app", {"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]})
    return {"apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": name},
            "spec": {"steps": steps, "template": {"spec": {"containers": [app],
                                                          **spec.pop("template_spec", {})}}, **spec}}


def db_url_in(url: str, port: int) -> str:
    """The same database seen from the host (for the test's own checks)."""
    return url.replace("@postgres:5432/", f"@127.0.0.1:{port}/")


def host_service(name: str, port: int, service_port: int = 80) -> list[dict[str, Any]]:
    """A Service `name` whose only endpoint is a server of the test on the node (HOST_IP:port)."""
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"ports": [{"name": "http", "port": service_port, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-host", "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "endpoints": [{"addresses": [HOST_IP], "conditions": {"ready": True}}],
         "ports": [{"name": "http", "port": port, "protocol": "TCP"}]},
    ]


def users_deployment(name: str, replicas: int = 3, inject: str | None = None) -> dict[str, Any]:
    """The user's own Deployment: plain, but for the label on its Pod template."""
    labels = {"app": name, INJECT: inject or name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "strategy": {"rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                     {"name": "app", "image": RUNNER, "imagePullPolicy": "IfNotPresent",
                      "command": ["sleep", "3600"], "env": [{"name": "TAG", "value": "v1"}]}]}}},
    }


MIGRATION = """
import os, sys, time, psycopg
with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as db:
    db.execute("CREATE TABLE IF NOT EXISTS runs (id serial PRIMARY KEY, label text, "
               "started timestamptz NOT NULL DEFAULT clock_timestamp(), finished timestamptz)")
    me = db.execute("INSERT INTO runs (label) VALUES (%s) RETURNING id", (sys.argv[1],)).fetchone()[0]
    time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 3)
    if db.execute("SELECT count(*) FROM runs WHERE finished IS NULL AND id <> %s", (me,)).fetchone()[0]:
        sys.exit("another migration is running at the same time")
    if sys.argv[1] == "broken":
        sys.exit("migration 0042 failed: column already exists")
    db.execute("UPDATE runs SET finished = clock_timestamp() WHERE id = %s", (me,))
    print("migrated", sys.argv[1])
"""


def runs(url: str) -> list[tuple[str, dt.datetime, dt.datetime | None]]:
    with psycopg.connect(url) as db:
        return [tuple(r) for r in db.execute("SELECT label, started, finished FROM runs ORDER BY id")]  # type: ignore[misc]
