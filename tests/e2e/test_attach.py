"""Attach mode on the real cluster: a Deployment or StatefulSet of the user's, applied with kubectl and
never written by the operator, gets the pipeline's steps at admission, and its migration runs exactly once
per rollout, before any app container of that rollout starts (counted in a real PostgreSQL). Each test
runs with each mechanism (the `injection` fixture): the operator's webhook, and the API server's
MutatingAdmissionPolicy where it serves one (Kubernetes 1.36 and later)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import ssl
import subprocess
import urllib.request
import uuid
from typing import Any

import pytest
import yaml

from initpipeline.core.attach.inject import Refusal, inject
from initpipeline.spec import names
from tests.e2e.conftest import MAY_INSTALL, install_operator
from tests.e2e.kube import (
    BIN,
    Kube,
    app_pods,
    condition,
    eventually,
    installed_mechanism,
    needs_cluster_control,
    plugin,
    ready,
    status_of,
)
from tests.e2e.manifests import (
    BUSYBOX,
    INJECT,
    MIGRATION,
    REFUSED_BY,
    RUNNER,
    database_secret,
    db_url_in,
    fresh_database,
    postgres_service,
    probe_pod,
    runs,
    users_deployment,
)
from tests.helpers import ROOT, Postgres

pytestmark = pytest.mark.e2e
CHART = ROOT / "tests" / "e2e" / "charts" / "shop"  # a user's app chart, labelled


# The policy last: it is what `injection: auto` installs on 1.36 and later, so the modules after this one
# find the operator as the session installed it.
MECHANISMS = ("webhook", "policy")


def serves_policy(kube: Kube) -> bool:
    resources = json.loads(kube.run("get", "--raw", "/apis/admissionregistration.k8s.io/v1").stdout)["resources"]
    return any(r["name"] == "mutatingadmissionpolicies" for r in resources)


@pytest.fixture(scope="module", params=MECHANISMS)
def injection(request: pytest.FixtureRequest, operator: Kube) -> str:
    """The operator installed with `injection: <mechanism>`, once that mechanism answers."""
    mechanism: str = request.param
    if mechanism == "policy" and not serves_policy(operator):
        pytest.skip("this API server serves no admissionregistration.k8s.io/v1 MutatingAdmissionPolicy "
                    "(Kubernetes 1.36 and later do)")
    if MAY_INSTALL:
        install_operator(operator.kubeconfig, "--set", f"injection={mechanism}")
    elif installed_mechanism(operator) != mechanism:
        pytest.skip(f"the operator on this cluster injects by {installed_mechanism(operator)}, and the tests "
                    "do not reinstall it there")
    # a new policy or webhook takes a moment to be in the API server's admission chain
    admin = Kube(operator.kubeconfig, "default")
    eventually(f"the {mechanism} to refuse a Pod that names no pipeline",
               lambda: REFUSED_BY[mechanism] in admin.dry_run(probe_pod("no-such-pipeline")).stderr, timeout=90)
    return mechanism


def attached(name: str, label: str = "attach", kind: str = "Deployment") -> dict[str, Any]:
    return {
        "apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": name},
        "spec": {
            "attach": {"kind": kind, "name": name},
            "steps": [
                {"name": "wait-db", "waitForService": {"targets": [{"host": "postgres", "port": 5432}]}},
                {"name": "migrate", "migration": {
                    "imageFrom": "app", "command": ["python", "-c", MIGRATION, label],
                    "databaseUrlFrom": {"secretKeyRef": {"name": "shop-db", "key": "url"}}}},
                {"name": "prepare", "container": {"image": BUSYBOX, "command": ["true"]}},
            ],
        },
    }


def with_managed_fields(kube: Kube, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kube.run("get", kind, name, "-o", "json", "--show-managed-fields").stdout)
    return found


def writers(obj: dict[str, Any]) -> set[str]:
    """Who wrote the object (managedFields); the operator writes as initpipeline."""
    return {m["manager"] for m in obj["metadata"]["managedFields"]}


def started_at(pod: dict[str, Any]) -> dt.datetime:
    state = pod["status"]["containerStatuses"][0]["state"]
    return dt.datetime.fromisoformat(state["running"]["startedAt"].replace("Z", "+00:00"))


def test_an_attached_deployment_migrates_once_per_rollout_and_is_never_written(
        kube: Kube, host_postgres: Postgres, injection: str) -> None:
    url = fresh_database(host_postgres, kube.namespace)
    kube.apply([*postgres_service(host_postgres.port), database_secret("shop-db", url)])
    outside = db_url_in(url, host_postgres.port)

    # 1. three replicas created at once: each got the steps, and none started before the one migration
    kube.apply([attached("shop"), users_deployment("shop")])
    waited = kube.run("wait", "--for=condition=Ready", "initpipeline/shop", "--timeout=240s", timeout=260)
    assert "condition met" in waited.stdout
    status = eventually("3/3 ready", ready(kube, "shop", 3))
    [(_, started, finished)] = runs(outside)
    assert finished is not None and started < finished
    pods = app_pods(kube, "shop")
    assert len(pods) == 3
    for pod in pods:
        assert [c["name"] for c in pod["spec"]["initContainers"]] == ["wait-db", "prepare"]
        assert not pod["spec"].get("schedulingGates")  # lifted
        assert started_at(pod) >= finished
    rev1 = status["revision"]
    assert status["once"]["state"] == "Succeeded" and status["attached"]["succeededRevisions"] == [rev1]
    assert status["workload"] == {"kind": "Deployment", "name": "shop"}
    migrate = next(s for s in status["steps"] if s["name"] == "migrate")
    assert migrate["once"] and migrate["state"] == "Succeeded" and migrate["exitCode"] == 0
    [job] = kube.get("jobs")["items"]
    assert job["spec"]["template"]["spec"]["initContainers"][1]["image"] == RUNNER  # imageFrom: app

    def untouched() -> None:
        deployment = with_managed_fields(kube, "deployment", "shop")
        assert "initContainers" not in deployment["spec"]["template"]["spec"]
        assert writers(deployment) <= {"kubectl-client-side-apply", "kubectl", "kubectl-scale", "kubectl-set",
                                       "kubectl-rollout", "kube-controller-manager"}, writers(deployment)
        assert not deployment["metadata"].get("ownerReferences")
    untouched()

    # 2. kubectl scale on the Deployment: the new Pods get the steps, no gate and no new run
    kube.run("scale", "deployment/shop", "--replicas=5")
    eventually("5/5 ready", ready(kube, "shop", 5), timeout=180)
    assert len(runs(outside)) == 1

    # 3. a rollout (kubectl set env): one more run, before the new Pods start, never overlapping
    kube.run("set", "env", "deployment/shop", "TAG=v2")
    status = eventually("the rollout ready", ready(kube, "shop", 5, revision_not=rev1), timeout=240)
    rev2 = status["revision"]
    history = runs(outside)
    assert len(history) == 2 and history[0][2] is not None and history[0][2] <= history[1][1]
    assert all(started_at(p) >= history[1][2] for p in app_pods(kube, "shop"))
    assert status["attached"]["succeededRevisions"] == [rev1, rev2]

    # 4. kubectl rollout undo to a revision whose migration ran: nothing runs again
    kube.run("rollout", "undo", "deployment/shop")
    status = eventually("the rollback ready", ready(kube, "shop", 5, revision_not=rev2), timeout=240)
    assert status["revision"] == rev1 and len(runs(outside)) == 2
    untouched()

    # the command line shows the attached pipeline
    shown = plugin(kube, "status", "shop")
    assert shown.returncode == 0, shown.stderr
    assert "Deployment shop" in shown.stdout and "5/5 ready" in shown.stdout, shown.stdout

    # 5. a migration that fails: the new Pods stay gated, the old ones serve, the status names the step
    broken = attached("shop", "broken")
    kube.apply(broken)
    kube.run("rollout", "restart", "deployment/shop")

    def failed() -> Any:
        status = status_of(kube, "shop")
        return status if status.get("phase") == "Failed" else None
    status = eventually("the failed migration", failed, timeout=180)
    assert condition(status, "Failed")["reason"] == "OnceStepFailed"
    assert status["currentStep"] == "migrate" and "column already exists" in status["message"]
    deployment = kube.get("deployment", "shop")
    assert deployment["status"]["readyReplicas"] == 5
    gated = [p for p in app_pods(kube, "shop") if p["spec"].get("schedulingGates")]
    assert gated and all(p["status"]["phase"] == "Pending" for p in gated)
    assert len(runs(outside)) == 3


def test_a_labelled_pod_without_its_pipeline_is_refused_and_says_what_to_do(
        kube: Kube, operator: Kube, injection: str) -> None:
    refused = kube.apply(probe_pod("ghost", "lost"), False)
    assert refused.returncode != 0
    assert f"InitPipeline ghost does not exist in namespace {kube.namespace}" in refused.stderr
    assert f"remove the label {INJECT}" in refused.stderr
    # so also where the namespace has other pipelines (the policy sees each of them)
    kube.apply({"apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": "other"},
                "spec": {"attach": {"kind": "Deployment", "name": "other"},
                         "steps": [{"name": "hello", "container": {"image": BUSYBOX, "command": ["true"]}}]}})
    refused = kube.apply(probe_pod("ghost", "lost"), False)
    assert f"InitPipeline ghost does not exist in namespace {kube.namespace}" in refused.stderr

    def logged() -> Any:  # by the replica that answered; a refusal is the webhook's job, not an error
        out = operator.run("logs", "-l", "app.kubernetes.io/name=initpipeline", "--tail=2000").stdout
        return [line for line in out.splitlines()
                if f"InitPipeline ghost does not exist in namespace {kube.namespace}" in line]
    if injection == "webhook":
        lines = eventually("the operator's log line of the refusal", logged, timeout=30)
        assert all(re.search(r'\[WARNING|"level": "warning"', line) for line in lines), lines
    # a Deployment's Pods likewise: its ReplicaSet says why, and creates them once the pipeline exists
    kube.apply(users_deployment("later", replicas=1))

    def said() -> Any:
        events = kube.get("events")["items"]
        return [e for e in events if e["reason"] == "FailedCreate" and "InitPipeline later does not exist"
                in e["message"]]
    eventually("the ReplicaSet's FailedCreate event", said, timeout=60)
    steps = {"attach": {"kind": "Deployment", "name": "later"},
             "steps": [{"name": "hello", "container": {"imageFrom": "app", "command": ["true"]}}]}
    kube.apply({"apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": "later"},
                "spec": steps})
    eventually("1/1 ready", ready(kube, "later", 1), timeout=180)


def test_an_attached_statefulset_runs_its_once_step_once(kube: Kube, injection: str) -> None:
    labels = {"app": "store", INJECT: "store"}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "store"},
           "spec": {"replicas": 2, "serviceName": "store", "podManagementPolicy": "Parallel",
                    "selector": {"matchLabels": {"app": "store"}},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                        {"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]}]}}}}
    pipeline = {"apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": "store"},
                "spec": {"attach": {"kind": "StatefulSet", "name": "store"}, "steps": [
                    {"name": "seed", "once": True, "container": {"imageFrom": "app", "command": ["echo", "seeded"]}},
                    {"name": "check", "container": {"image": BUSYBOX, "command": ["true"]}}]}}
    kube.apply([pipeline, sts])
    status = eventually("2/2 ready", ready(kube, "store", 2), timeout=180)
    assert status["workload"] == {"kind": "StatefulSet", "name": "store"}
    assert len(kube.get("jobs")["items"]) == 1
    for pod in app_pods(kube, "store"):
        assert [c["name"] for c in pod["spec"]["initContainers"]] == ["check"]
    seed = next(s for s in status["steps"] if s["name"] == "seed")
    assert seed["state"] == "Succeeded" and seed["once"]


def test_with_no_operator_a_labelled_pod_is_refused_and_an_unlabelled_one_starts(
        kube: Kube, operator: Kube, injection: str) -> None:
    if injection != "webhook":
        pytest.skip("the policy needs no operator replica: see test_with_no_operator_the_policy_injects_...")
    labelled = probe_pod("any", "labelled")
    plain = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"},
             "spec": {"containers": [{"name": "app", "image": BUSYBOX, "command": ["sleep", "60"]}]}}
    operator.run("scale", "deployment/initpipeline", "--replicas=0")
    try:
        eventually("no operator Pod", lambda: not operator.get(
            "pods", selector="app.kubernetes.io/name=initpipeline")["items"], timeout=120)
        refused = kube.apply(labelled, False)
        assert refused.returncode != 0 and "inject.initpipeline.dev" in refused.stderr, refused.stderr
        kube.apply(plain)
        kube.run("wait", "--for=condition=Ready", "pod/plain", "--timeout=60s", timeout=80)
    finally:
        operator.run("scale", "deployment/initpipeline", "--replicas=2")
        operator.run("rollout", "status", "deployment/initpipeline", "--timeout=120s", timeout=140)


def test_the_operator_killed_during_the_migration_still_runs_it_once_and_lifts_the_gates(
        kube: Kube, operator: Kube, host_postgres: Postgres, injection: str) -> None:
    url = fresh_database(host_postgres, kube.namespace)
    kube.apply([*postgres_service(host_postgres.port), database_secret("shop-db", url)])
    slow = attached("slow")
    slow["spec"]["steps"][1]["migration"]["command"] = ["python", "-c", MIGRATION, "attach", "10"]
    kube.apply([slow, users_deployment("slow", replicas=2)])

    def migrating() -> Any:
        status = status_of(kube, "slow")
        return status if (status.get("once") or {}).get("currentStep") == "migrate" else None
    eventually("the migration to run", migrating, timeout=120)
    operator.run("delete", "pod", "-l", "app.kubernetes.io/name=initpipeline", "--wait=true")
    operator.run("rollout", "status", "deployment/initpipeline", "--timeout=120s")
    eventually("2/2 ready", ready(kube, "slow", 2), timeout=180)
    assert len(runs(db_url_in(url, host_postgres.port))) == 1
    assert len(kube.get("jobs")["items"]) == 1
    assert not [p for p in app_pods(kube, "slow") if p["spec"].get("schedulingGates")]


def test_a_deployment_from_a_users_helm_chart_rolls_with_helm_upgrade_and_shows_no_drift(
        kube: Kube, host_postgres: Postgres, injection: str) -> None:
    url = fresh_database(host_postgres, kube.namespace)
    kube.apply([*postgres_service(host_postgres.port), database_secret("shop-db", url)])
    outside = db_url_in(url, host_postgres.port)
    kube.apply(attached("shop"))

    def helm(*args: str) -> str:
        result = subprocess.run([str(BIN / "helm"), "--kubeconfig", kube.kubeconfig, "-n", kube.namespace, *args],
                                capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    helm("install", "shop", str(CHART), "--wait", "--timeout", "240s")
    first = eventually("2/2 ready", ready(kube, "shop", 2), timeout=120)
    assert len(runs(outside)) == 1
    helm("upgrade", "shop", str(CHART), "--set", "release=v2", "--wait", "--timeout", "240s")
    eventually("the upgrade ready", ready(kube, "shop", 2, revision_not=first["revision"]), timeout=120)
    assert len(runs(outside)) == 2
    # what Helm applied is what runs: the operator added nothing to the Deployment
    applied = yaml.safe_load(helm("get", "manifest", "shop"))["spec"]["template"]
    live = with_managed_fields(kube, "deployment", "shop")
    template = live["spec"]["template"]
    assert template["metadata"]["labels"] == applied["metadata"]["labels"]
    assert [(c["name"], c["image"], c["env"]) for c in template["spec"]["containers"]] == \
        [(c["name"], c["image"], c["env"]) for c in applied["spec"]["containers"]]
    assert "initContainers" not in template["spec"] and "schedulingGates" not in template["spec"]
    assert writers(live) == {"helm", "kube-controller-manager"}, writers(live)


def admission_review(namespace: str, pipeline: str) -> dict[str, Any]:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"generateName": "web-", "namespace": namespace,
                        "labels": {INJECT: pipeline, "pod-template-hash": "abc"}},
           "spec": {"containers": [{"name": "app", "image": BUSYBOX}]}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": namespace,
        "operation": "CREATE", "userInfo": {"username": "e2e"}, "object": pod}}


def test_both_replicas_answer_the_webhook_from_the_current_spec(kube: Kube, operator: Kube, injection: str) -> None:
    """The standby too (its watches are paused, not its webhook), each with the steps as they are now."""
    if injection != "webhook":
        pytest.skip("the webhook's own test")
    operator.run("rollout", "status", "deployment/initpipeline", "--timeout=120s")
    replicas = [p["metadata"]["name"] for p in operator.get(
        "pods", selector="app.kubernetes.io/name=initpipeline")["items"] if not p["metadata"].get("deletionTimestamp")]
    assert len(replicas) == 2
    one = {"apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": "web"},
           "spec": {"attach": {"kind": "Deployment", "name": "web"},
                    "steps": [{"name": "first", "container": {"image": BUSYBOX, "command": ["true"]}}]}}
    kube.apply(one)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # 127.0.0.1 is not in the certificate

    def steps_from(replica: str) -> list[str]:
        body = json.dumps(admission_review(kube.namespace, "web")).encode()
        with operator.port_forward(replica, 9443) as port:
            request = urllib.request.Request(f"https://127.0.0.1:{port}/inject", body,
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                answer = json.load(response)["response"]
        assert answer["allowed"], answer
        patch = json.loads(base64.b64decode(answer["patch"]))
        [containers] = [op["value"] for op in patch if op["path"] == "/spec/initContainers"]
        return [c["name"] for c in containers]

    assert [steps_from(replica) for replica in replicas] == [["first"], ["first"]]
    one["spec"]["steps"].append({"name": "second", "container": {"image": BUSYBOX, "command": ["true"]}})
    kube.apply(one)
    assert [steps_from(replica) for replica in replicas] == [["first", "second"], ["first", "second"]]


@needs_cluster_control  # a cluster of ours, whose operator hack/install-operator.sh installed
def test_the_charts_certificate_is_kept_across_helm_upgrade(operator: Kube, injection: str) -> None:
    if injection != "webhook":
        pytest.skip("the policy has no certificate")
    def ca() -> tuple[str, str]:
        secret = operator.get("secret", "initpipeline-webhook-tls")["data"]["ca.crt"]
        config = operator.get("mutatingwebhookconfiguration", "initpipeline-initpipeline-system")
        return secret, config["webhooks"][0]["clientConfig"]["caBundle"]
    before = ca()
    assert before[0] == before[1]
    install_operator(operator.kubeconfig, "--set", "injection=webhook")
    assert ca() == before


def test_with_no_operator_the_policy_injects_and_the_pod_starts_once_the_operator_is_back(
        kube: Kube, operator: Kube, injection: str) -> None:
    """The API server adds the steps and the gate itself: Pods are created while no replica runs, and
    start once one is back and has run their revision's once-steps."""
    if injection != "policy":
        pytest.skip("the webhook needs an operator replica: see test_with_no_operator_a_labelled_pod_is_refused_...")
    pipeline = {"apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": "down"},
                "spec": {"attach": {"kind": "Deployment", "name": "down"}, "steps": [
                    {"name": "seed", "once": True, "container": {"image": BUSYBOX, "command": ["true"]}},
                    {"name": "check", "container": {"image": BUSYBOX, "command": ["true"]}}]}}
    kube.apply(pipeline)
    eventually("the pipeline rendered for the policy",
               lambda: (status_of(kube, "down").get("injection") or {}).get("generation") == 1, timeout=60)
    operator.run("scale", "deployment/initpipeline", "--replicas=0")
    try:
        eventually("no operator Pod", lambda: not operator.get(
            "pods", selector="app.kubernetes.io/name=initpipeline")["items"], timeout=120)
        kube.apply(users_deployment("down", replicas=2))
        pods = eventually("2 Pods created", lambda: (lambda ps: ps if len(ps) == 2 else None)(app_pods(kube, "down")),
                          timeout=60)
        steps = status_of(kube, "down")["injection"]["stepsHash"]
        for pod in pods:
            assert [c["name"] for c in pod["spec"]["initContainers"]] == ["check"]
            assert pod["spec"]["schedulingGates"] == [{"name": names.ONCE_GATE}]
            labels = pod["metadata"]["labels"]
            assert labels[names.LABEL_REVISION] == f"{steps}-{labels['pod-template-hash']}"
            assert labels[names.LABEL_UID] == kube.get("initpipeline", "down")["metadata"]["uid"]
        assert not kube.get("jobs")["items"]  # nobody to run the once-steps yet: the Pods wait
    finally:
        operator.run("scale", "deployment/initpipeline", "--replicas=2")
        operator.run("rollout", "status", "deployment/initpipeline", "--timeout=120s", timeout=140)
    status = eventually("2/2 ready", ready(kube, "down", 2), timeout=180)
    assert status["attached"]["succeededRevisions"] == [status["revision"]] and len(kube.get("jobs")["items"]) == 1


def without_token(value: Any) -> Any:
    """Without the ServiceAccount token's volume and mounts, which each admitted Pod names at random."""
    if isinstance(value, list):
        return [without_token(v) for v in value if not str((v or {}).get("name", "") if isinstance(v, dict)
                                                            else "").startswith("kube-api-access-")]
    if isinstance(value, dict):
        return {k: without_token(v) for k, v in value.items()}
    return value


def test_the_policy_adds_what_the_webhook_would_and_refuses_alike(kube: Kube, operator: Kube, injection: str) -> None:
    """Compared with core.attach.inject, which the webhook runs: each kind of every-Pod step, imageFrom with
    the app's settings and without, the Pod's own init container after ours (placement Last)."""
    if injection != "policy":
        pytest.skip("the policy's own test")
    pipeline = {"apiVersion": "initpipeline.dev/v1alpha1", "kind": "InitPipeline", "metadata": {"name": "same"},
                "spec": {"attach": {"kind": "Deployment", "name": "same", "placement": "Last"}, "steps": [
                    {"name": "wait", "waitForService": {"targets": [{"host": "db", "port": 5432}]}},
                    {"name": "fetch", "configDownload": {"volume": "conf", "files": [
                        {"url": "http://config/app.json", "path": "app.json"}]}},
                    {"name": "collect", "container": {"imageFrom": "app", "command": ["collect"],
                                                      "env": [{"name": "MODE", "value": "step"}]}},
                    {"name": "bare", "container": {"imageFrom": "app", "inheritSettings": False, "command": ["true"]}},
                    {"name": "seed", "once": True, "container": {"imageFrom": "app", "command": ["seed"]}}]}}
    kube.apply(pipeline)
    eventually("the pipeline rendered for the policy",
               lambda: (status_of(kube, "same").get("injection") or {}).get("generation") == 1, timeout=60)
    stored = kube.get("initpipeline", "same")
    [operator_container] = operator.get("deployment", "initpipeline")["spec"]["template"]["spec"]["containers"]
    runner = next(e["value"] for e in operator_container["env"] if e["name"] == "INITPIPELINE_RUNNER_IMAGE")
    pod = probe_pod("same", "web", **{"pod-template-hash": "5d8c7b9f4"})
    pod["metadata"]["namespace"] = kube.namespace
    pod["spec"]["containers"][0].update(
        image=RUNNER, imagePullPolicy="Never", workingDir="/srv",
        env=[{"name": "MODE", "value": "app"}, {"name": "TZ", "value": "UTC"}],
        volumeMounts=[{"name": "conf", "mountPath": "/etc/app"}],
        resources={"limits": {"memory": "128Mi"}})
    pod["spec"]["initContainers"] = [{"name": "theirs", "image": BUSYBOX, "command": ["true"]}]
    pod["spec"]["volumes"] = [{"name": "conf", "emptyDir": {}}]
    admitted = kube.dry_run(pod)
    assert admitted.returncode == 0, admitted.stderr
    by_policy = json.loads(admitted.stdout)
    # what the webhook makes of the same Pod, with the API server's defaults put in likewise
    patch = inject(stored, pod, runner)
    expected = json.loads(pod_json := json.dumps(pod))
    expected["metadata"]["labels"] = {k: v for k, v in {**pod["metadata"]["labels"], **patch["metadata"]["labels"]}
                                      .items() if k != INJECT}  # unlabelled: no admission of ours
    expected["spec"].update(patch["spec"])
    defaulted = kube.dry_run(expected)
    assert defaulted.returncode == 0, defaulted.stderr
    by_webhook = json.loads(defaulted.stdout)
    assert [c["name"] for c in by_policy["spec"]["initContainers"]] == ["theirs", "wait", "fetch", "collect", "bare"]
    for key in ("initContainers", "volumes", "schedulingGates"):
        assert without_token(by_policy["spec"][key]) == without_token(by_webhook["spec"][key]), key
    assert {k: v for k, v in by_policy["metadata"]["labels"].items() if k != INJECT} == \
        by_webhook["metadata"]["labels"]
    collect = next(c for c in by_policy["spec"]["initContainers"] if c["name"] == "collect")
    assert collect["image"] == RUNNER and collect["workingDir"] == "/srv"
    assert collect["env"] == [{"name": "TZ", "value": "UTC"}, {"name": "MODE", "value": "step"}]
    assert json.loads(pod_json) == pod  # nothing above changed the Pod sent

    # and a Pod that does not fit is refused with the webhook's words
    unfit = json.loads(pod_json)
    unfit["spec"]["containers"][0]["name"] = "main"
    unfit["spec"]["initContainers"][0]["name"] = "wait"
    unfit["spec"]["volumes"] = []
    unfit["spec"]["containers"][0].pop("volumeMounts")
    with pytest.raises(Refusal) as why:
        inject(stored, unfit, runner)
    refused = kube.dry_run(unfit)
    assert refused.returncode != 0 and str(why.value) in refused.stderr, (str(why.value), refused.stderr)
    # one without the workload's revision label likewise
    bare = probe_pod("same", "bare")
    with pytest.raises(Refusal) as why:
        inject(stored, bare, runner)
    refused = kube.dry_run(bare)
    assert refused.returncode != 0 and str(why.value) in refused.stderr, (str(why.value), refused.stderr)
