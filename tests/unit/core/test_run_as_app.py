"""A step with imageFrom runs as its app container: the app's settings (env, envFrom, mounts, workingDir,
securityContext, resources) under the step's own, the database URL last, in Pod, workload and attach mode."""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from initpipeline.core.attach.inject import inject
from initpipeline.core.attach.job import job_template
from initpipeline.core.attach.render import RENDERED_UID, render_attached
from initpipeline.core.build import build_once_job, build_pod
from initpipeline.spec import names
from initpipeline.spec.validation import validate_pipeline
from tests.cases import ROOT

Obj = dict[str, Any]
RESTRICTED = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
              "seccompProfile": {"type": "RuntimeDefault"}}
DJANGO = {
    "name": "app", "image": "shop:2.0", "imagePullPolicy": "Always", "workingDir": "/srv/shop",
    "command": ["gunicorn", "shop.wsgi"], "ports": [{"containerPort": 8000}],
    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8000}},
    "env": [{"name": "DJANGO_SETTINGS_MODULE", "value": "shop.settings.production"},
            {"name": "SECRET_KEY", "valueFrom": {"secretKeyRef": {"name": "shop-django", "key": "secret-key"}}},
            {"name": "DATABASE_URL", "value": "postgres://read-only-replica/shop"},
            {"name": "LOG_LEVEL", "value": "info"}],
    "envFrom": [{"secretRef": {"name": "shop-settings"}}],
    "volumeMounts": [{"name": "settings", "mountPath": "/srv/shop/local_settings", "readOnly": True},
                     {"name": "media", "mountPath": "/srv/shop/media"}],
    "securityContext": RESTRICTED,
    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
}
MIGRATE = {"name": "migrate", "migration": {
    "imageFrom": "app", "command": ["python", "manage.py", "migrate", "--noinput"],
    "env": [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "PGOPTIONS", "value": "-c lock_timeout=1s"}],
    "databaseUrlFrom": {"secretKeyRef": {"name": "shop-db", "key": "url"}}}}
POD_SECURITY = {"runAsUser": 1001, "runAsGroup": 1001, "fsGroup": 1001, "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"}}


def pipeline(kind: str = "Pod", **workload: Any) -> Obj:
    doc: Obj = {"apiVersion": names.API_VERSION, "kind": names.KIND,
                "metadata": {"name": "shop", "namespace": "ns", "uid": "u1", "generation": 1},
                "spec": {"steps": [copy.deepcopy(MIGRATE)], "template": {
                    "metadata": {"labels": {"app": "shop"}},
                    "spec": {"securityContext": POD_SECURITY, "containers": [copy.deepcopy(DJANGO)],
                             "volumes": [{"name": "settings", "configMap": {"name": "shop-settings"}},
                                         {"name": "media", "emptyDir": {}}]}}}}
    if kind != "Pod":
        doc["spec"]["workload"] = {"kind": kind, **workload}
    assert validate_pipeline(doc) == [], validate_pipeline(doc)
    return doc


def env_of(container: Obj) -> dict[str, Any]:
    names_seen = [e["name"] for e in container["env"]]
    assert len(names_seen) == len(set(names_seen)), names_seen  # each variable once: no hidden duplicate
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def assert_runs_as_the_app(migrate: Obj) -> None:
    assert migrate["image"] == "shop:2.0" and migrate["imagePullPolicy"] == "Always"
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]  # its own, not gunicorn
    env = env_of(migrate)
    assert env["DJANGO_SETTINGS_MODULE"] == "shop.settings.production"
    assert env["SECRET_KEY"] == {"secretKeyRef": {"name": "shop-django", "key": "secret-key"}}  # a reference
    assert env["LOG_LEVEL"] == "debug"  # the step's own wins
    assert env["PGOPTIONS"] == "-c lock_timeout=1s"
    # the database URL comes last and is the one the tool reads, not the app's read-only replica
    assert migrate["env"][-1] == {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "shop-db",
                                                                                         "key": "url"}}}
    assert migrate["envFrom"] == [{"secretRef": {"name": "shop-settings"}}]
    assert migrate["workingDir"] == "/srv/shop" and migrate["securityContext"] == RESTRICTED
    assert migrate["resources"] == DJANGO["resources"]
    assert {m["mountPath"] for m in migrate["volumeMounts"]} >= {"/srv/shop/local_settings"}
    assert not {"ports", "readinessProbe"} & migrate.keys()


def test_pod_mode_runs_the_migration_as_the_app() -> None:
    pod = build_pod(pipeline(), "runner:1")
    migrate = pod["spec"]["initContainers"][0]
    assert_runs_as_the_app(migrate)
    assert len(migrate["volumeMounts"]) == 2


def test_workload_mode_the_job_has_the_apps_settings_and_the_volumes_they_mount() -> None:
    job = build_once_job(pipeline("Deployment", replicas=3), "runner:1")
    assert job is not None
    pod_spec = job["spec"]["template"]["spec"]
    assert_runs_as_the_app(pod_spec["initContainers"][0])
    assert {v["name"] for v in pod_spec["volumes"] if not v["name"].startswith("ipl-")} == {"settings", "media"}
    assert pod_spec["securityContext"] == POD_SECURITY  # where and as whom the app runs
    done = pod_spec["containers"][0]
    assert done["name"] == names.JOB_DONE_CONTAINER and done["securityContext"]["allowPrivilegeEscalation"] is False


def test_a_statefulsets_claim_template_mount_stays_in_its_pods_and_out_of_the_job() -> None:
    doc = pipeline("StatefulSet", replicas=2, serviceName="shop",
                   volumeClaimTemplates=[{"metadata": {"name": "data"},
                                          "spec": {"accessModes": ["ReadWriteOnce"],
                                                   "resources": {"requests": {"storage": "1Gi"}}}}])
    doc["spec"]["template"]["spec"]["containers"][0]["volumeMounts"].append({"name": "data", "mountPath": "/data"})
    job = build_once_job(doc, "runner:1")
    assert job is not None
    mounts = {m["name"] for m in job["spec"]["template"]["spec"]["initContainers"][0]["volumeMounts"]}
    assert mounts == {"settings", "media"}  # another replica's disk cannot follow into the Job


def test_inherit_settings_false_takes_only_the_image() -> None:
    doc = pipeline()
    doc["spec"]["steps"][0]["migration"]["inheritSettings"] = False
    assert validate_pipeline(doc) == []
    migrate = build_pod(doc, "runner:1")["spec"]["initContainers"][0]
    assert migrate["image"] == "shop:2.0"
    assert [e["name"] for e in migrate["env"]] == ["LOG_LEVEL", "PGOPTIONS", "DATABASE_URL"]
    assert not {"envFrom", "volumeMounts", "workingDir", "securityContext", "resources"} & migrate.keys()
    assert "inheritSettings" not in migrate


def test_a_container_step_with_image_from_inherits_too_and_its_own_fields_win() -> None:
    doc = pipeline()
    doc["spec"]["steps"] = [{"name": "collect", "container": {
        "imageFrom": "app", "command": ["python", "manage.py", "collectstatic"],
        "securityContext": {**RESTRICTED, "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "media", "mountPath": "/srv/shop/local_settings"}]}}]
    assert validate_pipeline(doc) == []
    collect = build_pod(doc, "runner:1")["spec"]["initContainers"][0]
    assert env_of(collect)["DJANGO_SETTINGS_MODULE"] == "shop.settings.production"
    assert collect["securityContext"]["readOnlyRootFilesystem"] is True
    # the step's mount at the app's path replaces the app's there; each path once
    assert collect["volumeMounts"] == [{"name": "media", "mountPath": "/srv/shop/media"},
                                       {"name": "media", "mountPath": "/srv/shop/local_settings"}]


def attached_pipeline() -> Obj:
    doc: Obj = yaml.safe_load((ROOT / "examples" / "attach" / "pipeline.yaml").read_text())
    doc["metadata"].update(namespace="ns", uid="u1", generation=1)
    return doc


def test_attach_mode_the_job_keeps_the_pods_settings_but_not_its_token_or_a_replicas_claim() -> None:
    app = {**copy.deepcopy(DJANGO), "volumeMounts": [
        *DJANGO["volumeMounts"], {"name": "data", "mountPath": "/data"},
        {"name": "kube-api-access-x7k2q", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}
    pod = {"metadata": {"name": "shop-0", "labels": {"controller-revision-hash": "shop-6d4f"}},
           "spec": {"securityContext": POD_SECURITY, "containers": [app], "volumes": [
               {"name": "settings", "configMap": {"name": "shop-settings"}}, {"name": "media", "emptyDir": {}},
               {"name": "data", "persistentVolumeClaim": {"claimName": "data-shop-0"}},
               {"name": "kube-api-access-x7k2q", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
               {"name": "ipl-tmp", "emptyDir": {}}]}}
    template = job_template(pod)
    assert [v["name"] for v in template["spec"]["volumes"]] == ["settings", "media"]
    doc = attached_pipeline()
    job = build_once_job({**doc, "spec": {**doc["spec"], "template": template}}, "runner:1", "abc1234")
    assert job is not None
    migrate = next(c for c in job["spec"]["template"]["spec"]["initContainers"] if c["name"] == "migrate")
    assert env_of(migrate)["SECRET_KEY"] == {"secretKeyRef": {"name": "shop-django", "key": "secret-key"}}
    assert {m["name"] for m in migrate["volumeMounts"]} == {"settings", "media"}
    assert migrate["securityContext"] == RESTRICTED


def test_placement_last_puts_the_steps_after_the_pods_own_init_containers() -> None:
    doc = attached_pipeline()
    deployment = yaml.safe_load((ROOT / "examples" / "attach" / "deployment.yaml").read_text())
    template = copy.deepcopy(deployment["spec"]["template"])
    template["metadata"]["labels"]["pod-template-hash"] = "6d4f8b9c7"
    template["spec"]["initContainers"] = [{"name": "prepare-dirs", "image": "busybox:1"}]
    pod = {"metadata": {"labels": template["metadata"]["labels"]}, "spec": template["spec"]}
    first = inject(doc, pod, "runner:1")["spec"]["initContainers"]
    assert [c["name"] for c in first][-1] == "prepare-dirs"
    doc["spec"]["attach"]["placement"] = "Last"
    assert validate_pipeline(doc) == []
    last = inject(doc, pod, "runner:1")["spec"]["initContainers"]
    assert last[0]["name"] == "prepare-dirs" and len(last) == len(first)
    doc["spec"]["attach"]["placement"] = "Middle"
    assert [e.field for e in validate_pipeline(doc)] == ["spec.attach.placement"]


def test_render_of_a_statefulset_has_its_claims_and_labels_the_api_server_takes() -> None:
    doc = attached_pipeline()
    del doc["metadata"]["uid"]  # as in a file
    doc["spec"]["attach"] = {"kind": "StatefulSet", "name": "shop"}
    doc["spec"]["steps"][2]["configDownload"]["volume"] = "data"  # a claim template's volume
    statefulset = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "shop"}, "spec": {
        "serviceName": "shop", "selector": {"matchLabels": {"app": "shop"}},
        "template": {"metadata": {"labels": {"app": "shop", names.LABEL_INJECT: "shop"}},
                     "spec": {"containers": [{**copy.deepcopy(DJANGO),
                                              "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}}
    pod, job = render_attached(doc, statefulset, "runner:1")
    assert pod["metadata"]["name"] == "shop-0"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-shop-0"}} in pod["spec"]["volumes"]
    label = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
    for obj in (pod, job, job["spec"]["template"]):
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63 and label.match(value), value
    assert pod["metadata"]["labels"][names.LABEL_UID] == RENDERED_UID
    job_spec = job["spec"]["template"]["spec"]
    assert "data" not in {v["name"] for v in job_spec.get("volumes", [])}
    assert all(m["name"] != "data" for c in job_spec["initContainers"] for m in c.get("volumeMounts", []))
