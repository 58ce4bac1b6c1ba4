"""Expand and contract on the real cluster: a Deployment of 3 rolls from v1 to v2 with an expand migration
before the rollout and a contract step after it (the built-in runner on one folder, a real PostgreSQL);
the contract starts only once all 3 v2 Pods are ready and no v1 Pod is left, once per rollout; a revision
reverted before its rollout ended never runs its own; a failing one leaves the app serving and the
pipeline Degraded."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from tests.e2e.kube import Kube, app_pods, condition, eventually, plugin, status_of
from tests.e2e.manifests import BUSYBOX, database_secret, db_url_in, fresh_database, postgres_service
from tests.helpers import Postgres

pytestmark = pytest.mark.e2e

MARK = "-- initpipeline:after-rollout\n"
V1 = {"1_users.up.sql": "CREATE TABLE users (id serial PRIMARY KEY, name text);"}
V2 = {**V1, "2_full_name.up.sql": "ALTER TABLE users ADD COLUMN full_name text;",
      "3_drop_name.up.sql": MARK + "ALTER TABLE users DROP COLUMN name;"}
V3 = {**V2, "4_broken.up.sql": MARK + "ALTER TABLE users DROP COLUMN no_such_column;"}


def schema(files: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "schema"}, "data": files}


def shop(tag: str) -> dict[str, Any]:
    migration = {"databaseUrlFrom": {"secretKeyRef": {"name": "db", "key": "url"}},
                 "sql": {"configMapRef": {"name": "schema"}, "layout": "golang-migrate"}}
    return {
        "apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": "shop"},
        "spec": {
            "workload": {"kind": "Deployment", "replicas": 3,
                         "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}},
            "steps": [{"name": "expand", "migration": migration},
                      {"name": "contract", "when": "AfterRollout", "migration": migration}],
            "template": {"metadata": {"labels": {"app": "shop"}}, "spec": {"containers": [{
                "name": "app", "image": BUSYBOX, "command": ["sleep", "3600"], "env": [{"name": "TAG", "value": tag}],
                # a second before each Pod is ready: the rollout takes a while, and the old Pods serve meanwhile
                "readinessProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 2, "periodSeconds": 1}}]}},
        },
    }


def columns(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'users' "
                            "ORDER BY column_name").fetchall()
    return [r[0] for r in rows]


def after_jobs(kube: Kube) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = kube.get("jobs", selector="initpipeline.dev/role=after")["items"]
    return jobs


def watch_the_rollout(kube: Kube, revision: str, timeout: float = 240) -> list[tuple[int, int, bool]]:
    """Until the revision's after-rollout Job exists: at each look, the Pods of other revisions, the ready
    Pods of this one, and whether the Job was there."""
    looks: list[tuple[int, int, bool]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = any(j["metadata"]["name"] == f"shop-after-{revision}" for j in after_jobs(kube))
        pods = kube.get("pods", selector="app=shop,initpipeline.dev/role=app")["items"]
        older = sum(1 for p in pods if p["metadata"]["labels"].get("initpipeline.dev/revision") != revision)
        ready = sum(1 for p in pods if p["metadata"]["labels"].get("initpipeline.dev/revision") == revision
                    and condition(p.get("status") or {}, "Ready").get("status") == "True")
        looks.append((older, ready, seen))
        if seen:
            return looks
        time.sleep(0.3)
    raise AssertionError(f"no after-rollout Job for revision {revision}; last looks: {looks[-5:]}")


def test_contract_runs_after_the_rollout_once_and_a_failure_degrades(kube: Kube, host_postgres: Postgres) -> None:
    url = fresh_database(host_postgres, kube.namespace)
    outside = db_url_in(url, host_postgres.port)
    kube.apply([*postgres_service(host_postgres.port), database_secret("db", url), schema(V1), shop("v1")])
    waited = kube.run("wait", "--for=condition=AfterRollout", "initpipeline/shop", "--timeout=240s", timeout=260)
    assert "condition met" in waited.stdout
    rev1 = status_of(kube, "shop")["revision"]
    assert columns(outside) == ["id", "name"]

    # v2: the expand file runs before the rollout; the marked contract file waits for it to end
    kube.apply([schema(V2), shop("v2")])
    rev2 = eventually("revision 2", lambda: (s := status_of(kube, "shop")).get("revision") not in (None, rev1)
                      and s["revision"])
    looks = watch_the_rollout(kube, rev2)
    # while any v1 Pod was left, or fewer than 3 v2 Pods were ready, there was no contract Job
    assert all(not seen for older, ready, seen in looks if older or ready < 3), looks
    older, ready, _ = looks[-1]
    assert (older, ready) == (0, 3), looks[-3:]
    assert any(older for older, _, _ in looks), "the test never saw the old Pods serve"

    kube.run("wait", "--for=condition=AfterRollout", "initpipeline/shop", "--timeout=180s", timeout=200)
    status = status_of(kube, "shop")
    assert columns(outside) == ["full_name", "id"]
    after = status["afterRollout"]
    assert (after["revision"], after["state"], after["job"]) == (rev2, "Succeeded", f"shop-after-{rev2}")
    assert after["startedAt"] <= after["finishedAt"]
    contract = next(s for s in status["steps"] if s["name"] == "contract")
    assert contract["state"] == "Succeeded" and contract["when"] == "AfterRollout"
    reasons = [e["reason"] for e in kube.events("shop")]
    assert "AfterRolloutStarted" in reasons and "AfterRolloutSucceeded" in reasons
    shown = plugin(kube, "status", "shop")
    assert f"After rollout: Succeeded   (Job shop-after-{rev2}, Pod " in shown.stdout, shown.stdout
    logs = plugin(kube, "logs", "shop", "--step", "contract")
    assert logs.returncode == 0 and "applied 3_drop_name.up.sql" in logs.stdout, logs.stdout + logs.stderr
    with psycopg.connect(outside) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations").fetchall()] == [3]

    # once per rollout: more passes (a scale) make no second Job of revision 2
    kube.run("patch", "initpipeline", "shop", "--type=merge", "-p", '{"spec":{"workload":{"replicas":2}}}')
    eventually("2 replicas", lambda: status_of(kube, "shop").get("ready") == "2/2", timeout=120)
    assert [j["metadata"]["name"] for j in after_jobs(kube)].count(f"shop-after-{rev2}") == 1

    # a revision reverted before its rollout ended: its after-rollout steps never run
    kube.apply([schema(V3), shop("v2b")])
    rev2b = eventually("revision 2b", lambda: (s := status_of(kube, "shop")).get("revision") not in (rev1, rev2)
                       and s["revision"])
    eventually("the rollout under way", lambda: any(p["metadata"]["labels"].get("initpipeline.dev/revision") == rev2b
                                                    for p in app_pods(kube, "shop", role="app")), timeout=120)
    kube.apply([schema(V2), shop("v2")])  # back to revision 2 and its folder, as a Helm rollback does
    kube.run("wait", "--for=condition=AfterRollout", "initpipeline/shop", "--timeout=240s", timeout=260)
    back = status_of(kube, "shop")
    assert back["revision"] == rev2 and back["afterRollout"]["state"] == "Succeeded"
    assert f"shop-after-{rev2b}" not in [j["metadata"]["name"] for j in after_jobs(kube)]
    assert columns(outside) == ["full_name", "id"]  # 4_broken, held for after revision 2b's rollout, never ran

    # v3 (3 replicas again): a contract file that fails: the app serves on, the pipeline says Degraded
    kube.apply([schema(V3), shop("v3")])
    failed = eventually("the failed contract", lambda: (s := status_of(kube, "shop")).get(
        "afterRollout", {}).get("state") == "Failed" and s, timeout=240)
    assert condition(failed, "Degraded")["status"] == "True"
    assert condition(failed, "Degraded")["reason"] == "AfterRolloutFailed"
    assert condition(failed, "Failed")["status"] == "False"
    assert failed["phase"] == "Running" and failed["ready"] == "3/3" and failed["revision"] not in (rev1, rev2)
    assert "no_such_column" in failed["afterRollout"]["message"]
    assert len(app_pods(kube, "shop", role="app")) == 3
    assert "AfterRolloutFailed" in [e["reason"] for e in kube.events("shop")]
