"""A migration runs as the app, on the real cluster, in Pod, workload and attach mode: it sees the app
container's env from a Secret, its envFrom and a ConfigMap mount, the step's own env wins, and the
secret's value is in no status, Event or operator log. In a namespace that enforces Pod Security
`restricted`, an attached app whose containers are restricted migrates and starts; a Job that admission
would refuse is a visible failure, not a silent gate. A chart-style init container still writes into a
volume that a download step filled first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.kube import Kube, condition, eventually, status_of
from tests.e2e.manifests import HOST_IP, RUNNER, host_service, pipeline
from tests.helpers import HttpServer, respond

pytestmark = pytest.mark.e2e
SECRET_VALUE = "s3cr3t-django-key-4711"
# The app's "manage.py migrate": it fails unless it sees the app's settings, and never prints the secret
CHECK_SETTINGS = """
import os, pathlib, sys
wanted = {"DJANGO_SETTINGS_MODULE": "shop.settings", "SECRET_KEY": os.environ.get("EXPECTED_KEY_HASH"),
          "FEATURE_FLAGS": "on", "LOG_LEVEL": "debug"}
import hashlib
seen = dict(os.environ)
seen["SECRET_KEY"] = hashlib.sha256(seen.get("SECRET_KEY", "").encode()).hexdigest()
wrong = [k for k, v in wanted.items() if seen.get(k) != v]
if not pathlib.Path("/etc/shop/local_settings.py").read_text().startswith("DEBUG = False"):
    wrong.append("the settings file")
if os.getcwd() != "/tmp":
    wrong.append("workingDir")
if not os.environ.get("DATABASE_URL", "").startswith("postgresql://migrator@"):
    wrong.append("DATABASE_URL")
if wrong:
    sys.exit("missing the app's settings: " + ", ".join(wrong))
print("migrated with the app's settings")
"""
RESTRICTED = {"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def settings_objects() -> list[dict[str, Any]]:
    import hashlib

    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shop-django"},
         "stringData": {"secret-key": SECRET_VALUE}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shop-db"},
         "stringData": {"url": "postgresql://migrator@db.invalid:5432/shop"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-flags"},
         "data": {"FEATURE_FLAGS": "on", "LOG_LEVEL": "info",
                  "EXPECTED_KEY_HASH": hashlib.sha256(SECRET_VALUE.encode()).hexdigest()}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-settings"},
         "data": {"local_settings.py": "DEBUG = False\n"}},
    ]


def app_container(command: list[str]) -> dict[str, Any]:
    return {"name": "app", "image": RUNNER, "imagePullPolicy": "IfNotPresent", "command": command,
            "workingDir": "/tmp", "securityContext": RESTRICTED,
            "env": [{"name": "DJANGO_SETTINGS_MODULE", "value": "shop.settings"},
                    {"name": "SECRET_KEY", "valueFrom": {"secretKeyRef": {"name": "shop-django", "key": "secret-key"}}},
                    {"name": "DATABASE_URL", "value": "postgresql://read-only@replica/shop"}],
            "envFrom": [{"configMapRef": {"name": "shop-flags"}}],
            "volumeMounts": [{"name": "settings", "mountPath": "/etc/shop", "readOnly": True}]}


MIGRATE = {"name": "migrate", "migration": {
    "imageFrom": "app", "command": ["python", "-c", CHECK_SETTINGS],
    "env": [{"name": "LOG_LEVEL", "value": "debug"}],
    "databaseUrlFrom": {"secretKeyRef": {"name": "shop-db", "key": "url"}}}}
VOLUMES = [{"name": "settings", "configMap": {"name": "shop-settings"}}]


def assert_secret_nowhere(kube: Kube, operator: Kube, name: str) -> None:
    shown = json.dumps(kube.pipeline(name)) + json.dumps(kube.get("events"))
    assert SECRET_VALUE not in shown
    logs = operator.run("logs", "-l", "app.kubernetes.io/name=initpipeline", "--tail=5000").stdout
    assert SECRET_VALUE not in logs


def migrated(kube: Kube, name: str) -> Any:
    def probe() -> Any:
        status = status_of(kube, name)
        step = next((s for s in status.get("steps") or [] if s["name"] == "migrate"), {})
        if step.get("state") == "Failed":
            raise AssertionError(f"the migration failed: {step}")
        return status if step.get("state") == "Succeeded" and condition(status, "Ready").get("status") == "True" \
            else None
    return probe


@pytest.mark.parametrize("mode", ["Pod", "Deployment"])
def test_the_migration_runs_with_the_apps_settings(kube: Kube, operator: Kube, mode: str) -> None:
    doc = pipeline("shop", [MIGRATE], app=app_container(["sleep", "3600"]), template_spec={"volumes": VOLUMES})
    if mode != "Pod":
        doc["spec"]["workload"] = {"kind": mode, "replicas": 2}
    kube.apply([*settings_objects(), doc])
    try:
        eventually("migrated and ready", migrated(kube, "shop"), timeout=180)
    except AssertionError as exc:  # once seen on kind only, with nothing to go on: say what the cluster showed
        pods = kube.run("get", "pods", "-o", "wide", check=False).stdout
        events = kube.run("get", "events", "--sort-by=.lastTimestamp", check=False).stdout[-3000:]
        raise AssertionError(f"{exc}\nstatus: {status_of(kube, 'shop')}\npods:\n{pods}\nevents:\n{events}") from None
    assert_secret_nowhere(kube, operator, "shop")


def restricted_namespace(kube: Kube) -> None:
    kube.run("label", "namespace", kube.namespace, "pod-security.kubernetes.io/enforce=restricted")


def attached(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": "shop"},
            "spec": {"attach": {"kind": "Deployment", "name": "shop"}, "steps": steps}}


def users_deployment() -> dict[str, Any]:
    labels = {"app": "shop", "initpipeline.dev/inject": "shop"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "shop"}},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "containers": [app_container(["sleep", "3600"])], "volumes": VOLUMES}}}}


def test_an_attached_restricted_app_migrates_as_itself_in_a_restricted_namespace(kube: Kube, operator: Kube) -> None:
    restricted_namespace(kube)
    kube.apply([*settings_objects(), attached([MIGRATE]), users_deployment()])
    status = eventually("migrated and ready", migrated(kube, "shop"), timeout=180)
    assert status["ready"] == "2/2"
    [job] = kube.get("jobs")["items"]
    migrate = next(c for c in job["spec"]["template"]["spec"]["initContainers"] if c["name"] == "migrate")
    assert migrate["securityContext"] == RESTRICTED  # the app's, so that Pod Security admits the Job's Pod
    assert_secret_nowhere(kube, operator, "shop")


def test_a_job_that_admission_would_refuse_is_a_visible_failure(kube: Kube) -> None:
    restricted_namespace(kube)
    bare = {**MIGRATE, "migration": {**MIGRATE["migration"], "inheritSettings": False}}
    kube.apply([*settings_objects(), attached([bare]), users_deployment()])

    def refused() -> Any:
        status = status_of(kube, "shop")
        return status if status.get("phase") == "Failed" else None
    status = eventually("the refusal in the status", refused, timeout=120)
    assert "would not be admitted" in status["message"] and "PodSecurity" in status["message"], status["message"]
    assert not kube.get("jobs")["items"]  # no Job that would wait for a Pod that never comes
    messages = [e["message"] for e in kube.events("shop") if e["type"] == "Warning"]
    assert any("would not be admitted" in m for m in messages), messages


def test_a_charts_init_container_still_writes_into_a_volume_a_download_filled(kube: Kube) -> None:
    """As keycloak's prepare-write-dirs or Gitea's init-directories do: another user of the Pod's fsGroup
    creates files beside those the step wrote."""
    with HttpServer(lambda h, n: respond(h, 200, b"port: 8080\n"), address=HOST_IP).running() as server:
        kube.apply([*host_service("config", server.port)])
        steps = [{"name": "fetch", "configDownload": {"volume": "data", "files": [
            {"url": "http://config/app.yaml", "path": "conf/shop/app.yaml"}]}}]
        deployment = users_deployment()
        spec = deployment["spec"]["template"]["spec"]
        spec["securityContext"] = {"fsGroup": 1001}
        spec["volumes"] = [{"name": "data", "emptyDir": {}}]
        spec["containers"] = [{"name": "app", "image": RUNNER, "imagePullPolicy": "IfNotPresent",
                               "command": ["sleep", "3600"], "securityContext": {"runAsUser": 1001}}]
        spec["initContainers"] = [{"name": "prepare-dirs", "image": RUNNER, "imagePullPolicy": "IfNotPresent",
                                   "securityContext": {"runAsUser": 1001, "runAsGroup": 1001},
                                   "command": ["sh", "-c", "mkdir -p /data/conf/shop/cache && touch /data/conf/shop/x"],
                                   "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]
        kube.apply([attached(steps), deployment])

        def started() -> Any:
            status = status_of(kube, "shop")
            return status if condition(status, "Ready").get("status") == "True" else None
        eventually("the chart's init container and the app started", started, timeout=180)


MANAGE_PY = """
import importlib, os, sys
sys.path.insert(0, os.getcwd())
settings = importlib.import_module(os.environ["DJANGO_SETTINGS_MODULE"])
import psycopg
with psycopg.connect(settings.DATABASE_URL, autocommit=True) as db:
    db.execute("CREATE TABLE IF NOT EXISTS django_migrations (id serial PRIMARY KEY, name text, "
               "lock_timeout text, key_length int)")
    lock_timeout = db.execute("SHOW lock_timeout").fetchone()[0]
    db.execute("INSERT INTO django_migrations (name, lock_timeout, key_length) VALUES (%s, %s, %s)",
               (settings.RELEASE, lock_timeout, len(settings.SECRET_KEY)))
print("Applying shop.0001_initial... OK")
"""
SETTINGS_PY = """
import os
SECRET_KEY = os.environ["SECRET_KEY"]
DATABASE_URL = os.environ["DATABASE_URL"]
EMAIL_HOST_PASSWORD = os.environ["EMAIL_HOST_PASSWORD"]
exec(open("/etc/shop/local_settings.py").read())
"""


def test_the_django_example_migrates_with_its_settings_attached_with_one_label(
        kube: Kube, operator: Kube, host_postgres: Any) -> None:
    """examples/django-attach as it stands, with a small Django-style manage.py in place of the image's: it
    needs the settings module, the SECRET_KEY from its Secret, the envFrom Secret and the settings file."""
    import yaml

    from tests.e2e.manifests import database_secret, db_url_in, fresh_database, postgres_service
    from tests.helpers import ROOT, sql_rows

    example = ROOT / "examples" / "django-attach"
    deployment = yaml.safe_load((example / "deployment.yaml").read_text())
    pipeline_doc = yaml.safe_load((example / "pipeline.yaml").read_text())
    spec = deployment["spec"]["template"]["spec"]
    app = spec["containers"][0]
    app.update(image=RUNNER, imagePullPolicy="IfNotPresent", command=["sleep", "3600"])  # the app's image, ours
    app["volumeMounts"].append({"name": "code", "mountPath": "/srv/shop"})
    spec["volumes"].append({"name": "code", "configMap": {"name": "shop-code", "items": [
        {"key": "manage.py", "path": "manage.py"}, {"key": "settings.py", "path": "shop/settings.py"}]}})
    url = fresh_database(host_postgres, kube.namespace)
    kube.apply([*postgres_service(host_postgres.port), database_secret("shop-db", url),
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shop-django"},
                 "stringData": {"secret-key": SECRET_VALUE}},
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shop-settings"},
                 "stringData": {"EMAIL_HOST_PASSWORD": "mail-pass"}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-local-settings"},
                 "data": {"local_settings.py": "RELEASE = '4.1.0'\n"}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-code"},
                 "data": {"manage.py": MANAGE_PY, "settings.py": SETTINGS_PY}},
                pipeline_doc, deployment])
    status = eventually("migrated and 3/3 ready", migrated(kube, "shop"), timeout=240)
    assert status["ready"] == "3/3"
    # once, with the app's settings and the step's own PGOPTIONS
    rows = sql_rows(db_url_in(url, host_postgres.port), "SELECT name, lock_timeout, key_length FROM django_migrations")
    assert rows == [("4.1.0", "1s", len(SECRET_VALUE))]
    assert_secret_nowhere(kube, operator, "shop")
