"""The operator on a real cluster, installed with Helm, running real steps in real images."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.e2e.kube import Kube, condition, eventually, phase_is, status_of
from tests.e2e.manifests import BUSYBOX, database_secret, db_url_in, fresh_database, pipeline, postgres_service
from tests.helpers import ROOT, Postgres

pytestmark = pytest.mark.e2e
DEMO = ROOT / "examples" / "demo"


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_full_story(kube: Kube, host_postgres: Postgres) -> None:
    """Wait for a late Service, migrate a real PostgreSQL, download config with a checksum, run a custom
    step; the app starts with the downloaded file and `kubectl wait --for=condition=Ready` returns."""
    url = fresh_database(host_postgres, kube.namespace)
    kube.apply([*postgres_service(host_postgres.port), database_secret("shop-db", url)])
    kube.apply(load(DEMO / "services.yaml"))
    kube.apply(load(DEMO / "pipeline.yaml"))

    waited = kube.run("wait", "--for=condition=Ready", "initpipeline/shop", "--timeout=180s", timeout=200)
    assert "condition met" in waited.stdout

    status = status_of(kube, "shop")
    assert status["phase"] == "Running" and status["observedGeneration"] == 1
    assert [(s["name"], s["kind"], s["state"]) for s in status["steps"]] == [
        ("wait-deps", "waitForService", "Succeeded"), ("migrate", "migration", "Succeeded"),
        ("fetch-config", "configDownload", "Succeeded"), ("prepare-data", "container", "Succeeded")]
    for step in status["steps"]:
        assert step["exitCode"] == 0 and step["startedAt"] <= step["finishedAt"]
    # the config server was not ready for its first 8 seconds: the wait step really waited
    wait = status["steps"][0]
    assert time.mktime(time.strptime(wait["finishedAt"], "%Y-%m-%dT%H:%M:%SZ")) - \
        time.mktime(time.strptime(wait["startedAt"], "%Y-%m-%dT%H:%M:%SZ")) >= 3
    assert condition(status, "Initialized")["status"] == "True"

    pod = kube.get("pod", status["podName"])
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "InitPipeline"
    assert pod["metadata"]["labels"]["initpipeline.dev/pipeline"] == "shop"
    logs = kube.run("logs", status["podName"], "-c", "app").stdout
    assert "checkout: true" in logs and "initialized" in logs
    wait_log = kube.run("logs", status["podName"], "-c", "wait-deps").stdout
    assert "http://config-server:8000/healthz: ready after" in wait_log

    with psycopg.connect(db_url_in(url, host_postgres.port)) as conn:
        assert conn.execute("SELECT name, stock FROM products ORDER BY id").fetchall() == [("apple", 0), ("pear", 0)]
        applied = conn.execute("SELECT name FROM initpipeline_schema_history").fetchall()
    assert sorted(a[0] for a in applied) == ["10_add_stock.sql", "1_create_products.sql", "2_seed_products.sql"]

    def all_events() -> list[str] | None:  # Events are posted in the background, a moment after the status
        reasons = [e["reason"] for e in kube.events("shop")]
        return reasons if reasons.count("StepSucceeded") == 4 and "PipelineRunning" in reasons else None
    assert "StepStarted" in eventually("the Events", all_events, timeout=60)


def test_failing_migration(kube: Kube, host_postgres: Postgres) -> None:
    url = fresh_database(host_postgres, kube.namespace)
    kube.apply([*postgres_service(host_postgres.port), database_secret("db", url),
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "schema"},
                 "data": {"1_ok.sql": "CREATE TABLE ok (id int);",
                          "2_broken.sql": "CREATE TABLE half (id int);\nINSERT INTO missing_table VALUES (1);"}},
                pipeline("broken", [{"name": "migrate", "migration": {
                    "databaseUrlFrom": {"secretKeyRef": {"name": "db", "key": "url"}},
                    "sql": {"configMapRef": {"name": "schema"}}}}], restartPolicy="Never")])
    status = eventually("the pipeline to fail", phase_is(kube, "broken", "Failed"), timeout=120)
    [step] = status["steps"]
    assert step["state"] == "Failed" and step["exitCode"] == 20
    assert "2_broken.sql failed and was rolled back" in step["message"]
    assert 'relation "missing_table" does not exist' in step["message"]
    assert host_postgres.password not in str(status)
    failed = condition(status, "Failed")
    assert failed["status"] == "True" and "missing_table" in failed["message"]
    events = eventually("a StepFailed event", lambda: [e for e in kube.events("broken") if e["reason"] == "StepFailed"])
    assert events[0]["type"] == "Warning" and "exit code 20" in events[0]["message"]
    with psycopg.connect(db_url_in(url, host_postgres.port)) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"ok", "initpipeline_schema_history"}


def test_golang_migrate_folder_and_rollback_from_a_configmap(kube: Kube, host_postgres: Postgres) -> None:
    """A golang-migrate folder as a ConfigMap, on a database golang-migrate took to version 1: the step
    detects the layout, applies only the .up.sql files after 1, and a rollbackTo pipeline undoes them."""
    url = fresh_database(host_postgres, kube.namespace)
    with psycopg.connect(db_url_in(url, host_postgres.port), autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);"
                     "INSERT INTO users (name) VALUES ('alice');"
                     "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);"
                     "INSERT INTO schema_migrations VALUES (1, false)")
    migration = {"databaseUrlFrom": {"secretKeyRef": {"name": "db", "key": "url"}},
                 "sql": {"configMapRef": {"name": "schema"}}}
    kube.apply([*postgres_service(host_postgres.port), database_secret("db", url),
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "schema"}, "data": {
                    "1_users.up.sql": "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);",
                    "1_users.down.sql": "DROP TABLE users;",
                    "2_email.up.sql": "ALTER TABLE users ADD COLUMN email text;",
                    "2_email.down.sql": "ALTER TABLE users DROP COLUMN email;",
                    "3_index.up.sql": "CREATE INDEX CONCURRENTLY users_email ON users (email);",
                    "3_index.down.sql": "DROP INDEX CONCURRENTLY users_email;"}},
                pipeline("forward", [{"name": "migrate", "migration": migration}], restartPolicy="Never")])
    status = eventually("the migration", phase_is(kube, "forward", "Running", "Succeeded", "Failed"), timeout=120)
    [step] = status["steps"]
    assert step["state"] == "Succeeded", step
    log = kube.run("logs", status["podName"], "-c", "migrate").stdout
    assert "layout golang-migrate (detected)" in log and "applied 2 migration(s)" in log, log
    assert "1 already applied" in log and ".down.sql" not in log
    database = db_url_in(url, host_postgres.port)
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT version, dirty FROM schema_migrations").fetchall() == [(3, False)]
        assert conn.execute("SELECT name FROM users").fetchall() == [("alice",)]

    back = {**migration, "sql": {**migration["sql"], "layout": "golang-migrate", "rollbackTo": "1"}}
    kube.apply([pipeline("back", [{"name": "migrate", "migration": back}], restartPolicy="Never")])
    status = eventually("the rollback", phase_is(kube, "back", "Running", "Succeeded", "Failed"), timeout=120)
    [step] = status["steps"]
    assert step["state"] == "Succeeded", step
    log = kube.run("logs", status["podName"], "-c", "migrate").stdout
    assert "rolled back 2 migration(s) to 1" in log and "3_index.down.sql, 2_email.down.sql" in log, log
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT version, dirty FROM schema_migrations").fetchall() == [(1, False)]
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users'"
                            ).fetchall() == [(2,)]


def test_a_step_runs_the_app_image_with_image_from(kube: Kube) -> None:
    """imageFrom: the step's container gets the app container's image, and the pipeline runs to Ready."""
    kube.apply([pipeline("same-image", [{"name": "check", "container": {
        "imageFrom": "app", "command": ["test", "-x", "/bin/busybox"]}}])])
    status = eventually("the pipeline to run", phase_is(kube, "same-image", "Running", "Failed"), timeout=120)
    assert status["phase"] == "Running", status
    pod = kube.get("pod", status["podName"])
    [check] = pod["spec"]["initContainers"]
    assert check["image"] == pod["spec"]["containers"][0]["image"] == BUSYBOX


def never_up_service() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "never-up"},
            "spec": {"selector": {"app": "nothing-has-this-label"}, "ports": [{"port": 5432}]}}


def wait_step(timeout: int) -> list[dict[str, Any]]:
    return [{"name": "wait-db", "waitForService": {"targets": [{"host": "never-up", "port": 5432}],
                                                   "timeoutSeconds": timeout}}]


def test_wait_that_times_out(kube: Kube) -> None:
    kube.apply([never_up_service(), pipeline("stuck", wait_step(3), restartPolicy="Never")])
    status = eventually("the wait to time out", phase_is(kube, "stuck", "Failed"), timeout=90)
    [step] = status["steps"]
    assert step["exitCode"] == 3
    assert step["message"].startswith("timed out after 3.0s waiting for tcp never-up:5432")
    assert "connection refused" in step["message"] or "timed out" in step["message"]
    assert condition(status, "Failed")["status"] == "True"


def test_wait_that_crash_loops_under_restart_policy_always(kube: Kube) -> None:
    kube.apply([never_up_service(), pipeline("looping", wait_step(2))])

    def crash_looping() -> Any:
        status = status_of(kube, "looping")
        degraded = condition(status, "Degraded")
        return status if degraded.get("reason") == "CrashLoopBackOff" else None

    status = eventually("a CrashLoopBackOff condition", crash_looping, timeout=120)
    assert status["phase"] == "Initializing" and status["currentStep"] == "wait-db"
    assert status["steps"][0]["state"] == "Failed" and status["steps"][0]["restartCount"] >= 1
    degraded = condition(status, "Degraded")
    assert degraded["status"] == "True" and "never-up:5432" in degraded["message"]
    assert condition(status, "Ready")["status"] == "False"


def quick(name: str, command: list[str]) -> dict[str, Any]:
    return pipeline(name, [{"name": "hello", "container": {"image": BUSYBOX, "command": command}}])


def pods_of(kube: Kube, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.get("pods", selector=f"initpipeline.dev/pipeline={name}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def test_spec_change_recreation_and_garbage_collection(kube: Kube) -> None:
    kube.apply(quick("lifecycle", ["echo", "one"]))
    eventually("Running", phase_is(kube, "lifecycle", "Running"))
    assert [p["metadata"]["name"] for p in pods_of(kube, "lifecycle")] == ["lifecycle-1"]

    kube.apply(quick("lifecycle", ["echo", "two"]))
    status = eventually("generation 2 running", lambda: (
        (s := status_of(kube, "lifecycle")).get("observedGeneration") == 2 and s.get("phase") == "Running" and s))
    assert status["podName"] == "lifecycle-2"
    eventually("the old Pod to go", lambda: [p["metadata"]["name"] for p in pods_of(kube, "lifecycle")] ==
               ["lifecycle-2"])
    assert kube.get("pod", "lifecycle-2")["spec"]["initContainers"][0]["command"] == ["echo", "two"]

    kube.run("delete", "pod", "lifecycle-2", "--wait=true")
    status = eventually("the Pod to be recreated", lambda: (
        (s := status_of(kube, "lifecycle")).get("podRecreations") == 1 and s.get("phase") == "Running" and s))
    assert len(pods_of(kube, "lifecycle")) == 1
    eventually("the PodRecreated Event", lambda: any(e["reason"] == "PodRecreated" for e in kube.events("lifecycle")),
               timeout=60)

    kube.run("delete", "initpipeline", "lifecycle", "--wait=true")
    eventually("garbage collection of the Pod", lambda: not kube.get(
        "pods", selector="initpipeline.dev/pipeline=lifecycle")["items"])


def test_operator_restart_mid_pipeline(kube: Kube, operator: Kube) -> None:
    kube.apply(pipeline("patient", [
        {"name": "slow", "container": {"image": BUSYBOX, "command": ["sleep", "12"]}},
        {"name": "after", "container": {"image": BUSYBOX, "command": ["true"]}}]))
    eventually("the slow step to run", lambda: status_of(kube, "patient").get("currentStep") == "slow" and
               status_of(kube, "patient")["steps"][0]["state"] == "Running")
    operator.run("delete", "pod", "-l", "app.kubernetes.io/name=initpipeline", "--wait=true")
    operator.run("rollout", "status", "deployment/initpipeline", "--timeout=120s")
    status = eventually("Running after the restart", phase_is(kube, "patient", "Running"), timeout=120)
    assert [s["state"] for s in status["steps"]] == ["Succeeded", "Succeeded"]
    assert [p["metadata"]["name"] for p in pods_of(kube, "patient")] == ["patient-1"]
    assert status["podRecreations"] == 0


def test_deadline_bounds_the_steps_not_the_app(kube: Kube) -> None:
    kube.apply([never_up_service(),
                pipeline("late", wait_step(600), activeDeadlineSeconds=5)])
    status = eventually("the deadline to fail the pipeline", phase_is(kube, "late", "Failed"), timeout=90)
    assert condition(status, "Failed")["reason"] == "DeadlineExceeded"
    pod_seen = [p.get("status") for p in pods_of(kube, "late")]
    [step] = status["steps"]
    assert step["state"] == "Failed", (status, pod_seen)
    # The wait handles SIGTERM as its container's PID 1: it ends at once, not by SIGKILL after the grace period.
    assert step["exitCode"] == 143 and step["message"].startswith("wait stopped by SIGTERM after "), step


def test_pod_refused_by_the_api_server_is_reported_not_retried(kube: Kube) -> None:
    """A container step whose fields pass the CRD (it keeps unknown container fields) but not Pod validation."""
    kube.apply(pipeline("refused", [{"name": "odd", "container": {"image": BUSYBOX, "imagePullPolicy": "Sometimes"}}]))
    status = eventually("the rejection in the status", phase_is(kube, "refused", "Failed"), timeout=60)
    failed = condition(status, "Failed")
    assert failed["status"] == "True" and failed["reason"] == "PodRejected"
    assert "imagePullPolicy" in failed["message"] and "Sometimes" in failed["message"]
    assert not pods_of(kube, "refused")
    kube.apply(pipeline("refused", [{"name": "odd", "container": {"image": BUSYBOX, "command": ["true"]}}]))
    eventually("the fixed spec to run", phase_is(kube, "refused", "Running"), timeout=90)


def test_a_pipeline_recreated_under_the_same_name_gets_its_own_pod(kube: Kube) -> None:
    """The old Pod (same name) may outlive its pipeline until garbage collection removes it: the new
    pipeline must wait for its own Pod, not report the old one."""
    kube.apply(quick("again", ["sleep", "600"]))
    eventually("the first Pod to run its step", lambda: (status_of(kube, "again").get("steps") or [{}])[0]
               .get("state") == "Running")
    kube.run("delete", "initpipeline", "again", "--wait=true")
    kube.apply(quick("again", ["echo", "second"]))
    created = kube.pipeline("again")["metadata"]
    seen: list[dict[str, Any]] = []

    def running() -> Any:
        status = status_of(kube, "again")
        seen.append(status)
        return status if status.get("phase") == "Running" else None

    status = eventually("the new pipeline Running", running, timeout=150, interval=0.5)
    # never a step of the old Pod (started before this pipeline existed) in the new pipeline's status
    started = [s["startedAt"] for st in seen for s in st.get("steps") or [] if s.get("startedAt")]
    assert started and min(started) >= created["creationTimestamp"], (created["creationTimestamp"], started)
    pod = kube.get("pod", status["podName"])
    assert pod["metadata"]["ownerReferences"][0]["uid"] == created["uid"]
    assert pod["spec"]["initContainers"][0]["command"] == ["echo", "second"]


def test_a_native_sidecar_step_does_not_hold_the_pipeline(kube: Kube) -> None:
    """A proxy the migration needs runs as a native sidecar (restartPolicy Always): the later steps run,
    the app starts, and the pipeline becomes Ready while the proxy keeps running."""
    kube.apply(pipeline("proxied", [
        {"name": "proxy", "container": {"image": BUSYBOX, "command": ["sleep", "3600"], "restartPolicy": "Always"}},
        {"name": "migrate", "container": {"image": BUSYBOX, "command": ["true"]}},
    ]))
    waited = kube.run("wait", "--for=condition=Ready", "initpipeline/proxied", "--timeout=120s", timeout=150)
    assert "condition met" in waited.stdout
    status = status_of(kube, "proxied")
    assert status["phase"] == "Running" and status.get("currentStep") is None
    assert [(s["name"], s["state"]) for s in status["steps"]] == [("proxy", "Running"), ("migrate", "Succeeded")]


def test_a_sidecar_that_keeps_failing_after_the_app_started_degrades_the_running_pipeline(kube: Kube) -> None:
    """The kubelet restarts a native sidecar that fails, with a growing back-off: the app runs on, so the
    pipeline stays Running, Degraded on that step."""
    kube.apply(pipeline("flaky-proxy", [
        {"name": "proxy", "container": {"image": BUSYBOX, "command": ["sh", "-c", "sleep 4; exit 3"],
                                        "restartPolicy": "Always"}},
        {"name": "migrate", "container": {"image": BUSYBOX, "command": ["true"]}},
    ]))
    kube.run("wait", "--for=condition=Initialized", "initpipeline/flaky-proxy", "--timeout=120s", timeout=150)

    def degraded() -> Any:
        status = status_of(kube, "flaky-proxy")
        return status if condition(status, "Degraded").get("status") == "True" else None
    status = eventually("the sidecar's back-off to show", degraded, timeout=120)
    assert status["phase"] == "Running" and status.get("currentStep") is None
    # its last exit (Error), or the back-off after it (CrashLoopBackOff): whichever the kubelet shows now
    assert condition(status, "Degraded")["reason"] in ("Error", "CrashLoopBackOff")
    assert condition(status, "Initialized")["status"] == "True"
    assert [(s["name"], s["state"]) for s in status["steps"]] == [("proxy", "Failed"), ("migrate", "Succeeded")]
    assert status["steps"][0]["exitCode"] == 3 and "but step 1/2 proxy" in status["message"]


def test_no_finalizer_so_deletes_never_hang_without_the_operator(kube: Kube, operator: Kube) -> None:
    kube.apply(quick("free", ["echo", "x"]))
    eventually("Running", phase_is(kube, "free", "Running"))
    assert not kube.pipeline("free")["metadata"].get("finalizers")
    replicas = operator.get("deployment", "initpipeline")["spec"]["replicas"]
    operator.run("scale", "deployment/initpipeline", "--replicas=0")
    try:
        eventually("the operator to stop", lambda: not operator.get(
            "pods", selector="app.kubernetes.io/name=initpipeline")["items"], timeout=90)
        deleted = kube.run("delete", "initpipeline", "free", "--wait=true", "--timeout=30s", check=False)
        assert deleted.returncode == 0, deleted.stderr
    finally:
        operator.run("scale", "deployment/initpipeline", f"--replicas={replicas}")
        operator.run("rollout", "status", "deployment/initpipeline", "--timeout=120s")


def test_a_migration_that_gave_way_to_a_lock_says_so_in_the_status_and_its_event(
        kube: Kube, host_postgres: Postgres) -> None:
    """A report on the host holds users while the pipeline's migration alters it: the runner gives way (1 s at a
    time), applies once the report ends, and the operator reads the waits back into the status."""
    import threading
    import time

    url = fresh_database(host_postgres, kube.namespace)
    outside = db_url_in(url, host_postgres.port)
    with psycopg.connect(outside, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id int PRIMARY KEY)")
    ready, release = threading.Event(), threading.Event()

    def report() -> None:
        with psycopg.connect(outside, application_name="nightly-report") as conn:
            conn.execute("SELECT count(*) FROM users")
            ready.set()
            release.wait(60)
    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        kube.apply([*postgres_service(host_postgres.port), database_secret("db", url),
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "schema"},
                     "data": {"1_email.up.sql": "ALTER TABLE users ADD COLUMN email text;"}},
                    pipeline("locked", [{"name": "migrate", "migration": {
                        "databaseUrlFrom": {"secretKeyRef": {"name": "db", "key": "url"}},
                        "sql": {"configMapRef": {"name": "schema"}}}}])])

        def waiting() -> bool:  # the step runs and has given way at least once (its log says so)
            logs = kube.run("logs", "locked-1", "-c", "migrate", check=False).stdout
            return "waiting for a lock on users: held by pid" in logs and "'nightly-report'" in logs
        eventually("the migration to give way", waiting, timeout=120)
        time.sleep(2)
    finally:
        release.set()
        thread.join(10)
    status = eventually("Running", phase_is(kube, "locked", "Running"), timeout=120)
    [step] = status["steps"]
    assert step["state"] == "Succeeded" and step["lockWaits"]["times"] >= 1 and step["lockWaits"]["seconds"] > 1
    succeeded = eventually("a StepSucceeded event", lambda: [
        e for e in kube.events("locked") if e["reason"] == "StepSucceeded"])
    assert "gave way to table locks" in succeeded[0]["message"]
