"""Deployment and StatefulSet pipelines on the real cluster: a migration that would break if it ran
twice at once runs exactly once per revision, counted from outside in a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from tests.e2e.kube import Kube, app_pods, condition, eventually, plugin, ready, status_of
from tests.e2e.manifests import (
    BUSYBOX,
    MIGRATION,
    RUNNER,
    database_secret,
    db_url_in,
    fresh_database,
    postgres_service,
    runs,
)
from tests.helpers import Postgres

pytestmark = pytest.mark.e2e

# A user's own migration tool, as it might be written without any lock: it records its run, takes
# three seconds, and fails if another run is in progress (two at once would break it).
def shop(name: str, label: str, replicas: int = 3, image_tag: str = "v1", seconds: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": name},
        "spec": {
            "workload": {"kind": "Deployment", "replicas": replicas,
                         "strategy": {"rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}}},
            "steps": [
                {"name": "wait-db", "waitForService": {"targets": [{"host": "postgres", "port": 5432}]}},
                {"name": "migrate", "migration": {
                    "image": RUNNER, "command": ["python", "-c", MIGRATION, label, str(seconds)],
                    "databaseUrlFrom": {"secretKeyRef": {"name": "shop-db", "key": "url"}}}},
                {"name": "prepare", "container": {"image": BUSYBOX, "command": ["true"]}},
            ],
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                {"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"],
                 "env": [{"name": "TAG", "value": image_tag}]}]}},
        },
    }


def test_deployment_migrates_once_per_revision(kube: Kube, host_postgres: Postgres) -> None:
    url = fresh_database(host_postgres, kube.namespace)
    kube.apply([*postgres_service(host_postgres.port), database_secret("shop-db", url)])
    outside = db_url_in(url, host_postgres.port)

    # 1. three replicas start together: the migration ran once, before any of them
    kube.apply(shop("shop", "v1"))
    waited = kube.run("wait", "--for=condition=Ready", "initpipeline/shop", "--timeout=240s", timeout=260)
    assert "condition met" in waited.stdout
    status = eventually("3/3 ready", ready(kube, "shop", 3, generation=1))
    [(label, started, finished)] = runs(outside)
    assert label == "v1" and finished is not None and started < finished
    rev1 = status["revision"]
    assert status["once"]["state"] == "Succeeded" and status["once"]["job"] == f"shop-once-{rev1}"
    migrate = next(s for s in status["steps"] if s["name"] == "migrate")
    assert migrate["once"] and migrate["state"] == "Succeeded" and migrate["exitCode"] == 0
    wait_db = next(s for s in status["steps"] if s["name"] == "wait-db")
    assert wait_db["pods"]["done"] == 3 and wait_db["state"] == "Succeeded"
    deployment = kube.get("deployment", "shop")
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "InitPipeline"
    assert [c["name"] for c in deployment["spec"]["template"]["spec"]["initContainers"]] == ["wait-db", "prepare"]
    pods = app_pods(kube, "shop", role="app")
    assert len(pods) == 3
    for pod in pods:  # every Pod started after the migration had finished
        assert dt.datetime.fromisoformat(pod["metadata"]["creationTimestamp"].replace("Z", "+00:00")) >= finished
    table = kube.run("get", "initpipeline", "shop").stdout
    assert "3/3" in table

    # the command line: the once-step's single run, then one Pod of the revision
    shown = plugin(kube, "status", "shop")
    assert shown.returncode == 0, shown.stderr
    assert f"Workload:    Deployment shop   revision {rev1}" in shown.stdout
    assert "Replicas:    3/3 ready, 3 updated, 3 in all" in shown.stdout
    assert re.search(r"migrate\s+migration\s+Succeeded\s+once", shown.stdout), shown.stdout
    assert re.search(r"wait-db\s+waitForService\s+Succeeded\s+3 done", shown.stdout), shown.stdout
    logs = plugin(kube, "logs", "shop")
    assert logs.returncode == 0, logs.stderr
    assert "step 2/3 migrate (migration, once)" in logs.stdout and "migrated v1" in logs.stdout
    assert "step 3/3 prepare (container)" in logs.stdout and "app container app" in logs.stdout

    # 2. scale to 5 with kubectl scale (the scale subresource): no new run
    kube.run("scale", "initpipeline/shop", "--replicas=5")
    status = eventually("5/5 ready", ready(kube, "shop", 5, generation=2), timeout=180)
    assert status["revision"] == rev1 and len(runs(outside)) == 1
    assert kube.get("deployment", "shop")["spec"]["replicas"] == 5
    assert status["selector"] == f"initpipeline.dev/pipeline-uid={kube.pipeline('shop')['metadata']['uid']}"

    # 3. a new spec: one new run, before the rollout; the earlier Job is cleaned up
    kube.apply(shop("shop", "v2", replicas=5, image_tag="v2"))
    status = eventually("revision 2 ready", ready(kube, "shop", 5, generation=3), timeout=240)
    assert status["revision"] != rev1
    history = runs(outside)
    assert [r[0] for r in history] == ["v1", "v2"]
    assert history[0][2] is not None and history[0][2] <= history[1][1]  # never overlapping
    assert all(p["spec"]["containers"][0]["env"][0]["value"] == "v2" for p in app_pods(kube, "shop", role="app"))
    jobs = [j["metadata"]["name"] for j in kube.get("jobs")["items"]]
    assert jobs == [f"shop-once-{status['revision']}"]

    # 4. a migration that fails: the pipeline says so, and revision 2 keeps serving
    kube.apply(shop("shop", "broken", replicas=5, image_tag="v3"))

    def failed() -> Any:
        status = status_of(kube, "shop")
        return status if status.get("observedGeneration") == 4 and status.get("phase") == "Failed" else None
    status = eventually("the failed migration", failed, timeout=180)
    assert condition(status, "Failed")["reason"] == "OnceStepFailed"
    assert "column already exists" in status["message"]
    assert status["currentStep"] == "migrate"
    assert condition(status, "Ready")["status"] == "False"
    deployment = kube.get("deployment", "shop")
    assert deployment["status"]["readyReplicas"] == 5
    assert all(p["spec"]["containers"][0]["env"][0]["value"] == "v2" for p in app_pods(kube, "shop", role="app"))
    assert [r[0] for r in runs(outside)] == ["v1", "v2", "broken"]
    # Events are posted in the background, a moment after the status
    eventually("the PipelineFailed Event", lambda: "PipelineFailed" in {e["reason"] for e in kube.events("shop")},
               timeout=60)
    logs = plugin(kube, "logs", "shop", "--step", "migrate")
    assert "column already exists" in logs.stdout, logs.stdout
    waited = plugin(kube, "status", "shop", "-w", "--timeout", "30", timeout=60)
    assert waited.returncode == 1 and "Once-steps:  Failed" in waited.stdout


def test_operator_restarts_during_the_migration_and_it_still_runs_once(
        kube: Kube, operator: Kube, host_postgres: Postgres) -> None:
    url = fresh_database(host_postgres, kube.namespace)
    kube.apply([*postgres_service(host_postgres.port), database_secret("shop-db", url)])
    kube.apply(shop("slow", "v1", replicas=2, seconds=10))

    def migrating() -> Any:
        status = status_of(kube, "slow")
        return status if (status.get("once") or {}).get("currentStep") == "migrate" else None
    eventually("the migration to run", migrating, timeout=120)
    operator.run("delete", "pod", "-l", "app.kubernetes.io/name=initpipeline", "--wait=true")
    operator.run("rollout", "status", "deployment/initpipeline", "--timeout=120s")
    eventually("2/2 ready", ready(kube, "slow", 2, generation=1), timeout=180)
    assert [r[0] for r in runs(db_url_in(url, host_postgres.port))] == ["v1"]
    assert len(kube.get("jobs")["items"]) == 1


def test_statefulset_with_a_sidecar_step(kube: Kube) -> None:
    """A StatefulSet of 2: a step writes into each Pod's own claim-less volume while a sidecar step
    keeps running beside the app."""
    pipeline = {
        "apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": "store"},
        "spec": {
            "workload": {"kind": "StatefulSet", "replicas": 2, "serviceName": "store",
                         "podManagementPolicy": "Parallel"},
            "steps": [
                {"name": "proxy", "container": {"image": BUSYBOX, "restartPolicy": "Always",
                                                "command": ["sleep", "3600"]}},
                {"name": "fix-permissions", "container": {
                    "image": BUSYBOX, "command": ["touch", "/data/prepared"],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}},
            ],
            "template": {"metadata": {"labels": {"app": "store"}}, "spec": {
                "containers": [{"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"],
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "emptyDir": {}}]}},
        },
    }
    kube.apply(pipeline)
    status = eventually("2/2 ready", ready(kube, "store", 2, generation=1), timeout=180)
    assert status["phase"] == "Running" and status["workload"] == {"kind": "StatefulSet", "name": "store"}
    proxy, fix = status["steps"]
    assert proxy["state"] == "Running" and proxy["pods"]["done"] == 2
    assert fix["state"] == "Succeeded" and "once" not in fix
    assert "once" not in status and kube.get("jobs")["items"] == []
    assert sorted(p["metadata"]["name"] for p in app_pods(kube, "store", role="app")) == ["store-0", "store-1"]
    listing = kube.run("exec", "store-1", "-c", "app", "--", "ls", "/data").stdout
    assert "prepared" in listing
