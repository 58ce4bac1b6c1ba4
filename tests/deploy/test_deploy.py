"""The shipped artifacts agree with each other: CRD copies, chart, plain manifests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from initpipeline import __version__
from initpipeline.spec import names
from tests.cases import ROOT

CRD = ROOT / "crds" / "initpipelines.initpipeline.dev.yaml"
CHART = ROOT / "deploy" / "initpipeline"
BIN = Path(os.environ.get("INITPIPELINE_CACHE", Path.home() / ".cache" / "initpipeline")) / "bin"
HELM = BIN / "helm"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run `make tools` (make test does)")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False)


def test_chart_ships_the_same_crd() -> None:
    sources = sorted((ROOT / "crds").glob("*.yaml"))
    assert [p.name for p in sources] == sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    for source in sources:
        assert (CHART / "crds" / source.name).read_bytes() == source.read_bytes(), "run `make sync-crd`"
    # the package's copy, whose schema and CEL rules render, the operator and the webhook check
    assert (ROOT / "operator" / "initpipeline" / "spec" / CRD.name).read_bytes() == CRD.read_bytes(), \
        "run `make sync-crd`"


def test_crd_names_match_the_code() -> None:
    crd = yaml.safe_load(CRD.read_text())
    assert crd["metadata"]["name"] == f"{names.PLURAL}.{names.GROUP}"
    assert crd["spec"]["group"] == names.GROUP
    assert crd["spec"]["names"]["kind"] == names.KIND
    assert crd["spec"]["names"]["shortNames"] == ["ipl"]
    [version] = crd["spec"]["versions"]
    assert version["name"] == names.VERSION and version["subresources"] == {"status": {}, "scale": {
        "specReplicasPath": ".spec.workload.replicas", "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector"}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Ready", "Step", "Pod", "Age"]


def test_every_schema_field_is_described() -> None:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing: list[str] = []

    def walk(node: dict, path: str) -> None:  # type: ignore[type-arg]
        for name, child in (node.get("properties") or {}).items():
            here = f"{path}.{name}"
            if path.startswith(".spec") and "description" not in child:
                missing.append(here)
            walk(child, here)
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + "[]")

    walk(schema, "")
    # leaf fields of small shared shapes (name/key of a reference, resource maps) are self-explaining
    allowed = {p for p in missing if p.rsplit(".", 1)[-1] in {"labels", "annotations", "containers", "volumes",
                                                                "initContainers", "restartPolicy", "name", "image"}}
    assert sorted(set(missing) - allowed) == []


def test_chart_version_matches_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__


def test_helm_lint() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def test_values_schema_refuses_bad_values() -> None:
    result = helm("template", "x", str(CHART), "--set", "logLevel=loud")
    assert result.returncode != 0 and "logLevel" in result.stderr
    result = helm("template", "x", str(CHART), "--set", "watchNamespaces[0]=Not_A_Namespace")
    assert result.returncode != 0 and "watchNamespaces" in result.stderr
    result = helm("template", "x", str(CHART), "--set", "apiRetrySeconds=5")
    assert result.returncode != 0 and "apiRetrySeconds" in result.stderr


def render(*args: str) -> list[dict]:  # type: ignore[type-arg]
    result = helm("template", "ipl", str(CHART), "--namespace", "ops", *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_deployment_is_locked_down_and_probed() -> None:
    [deploy] = [d for d in render() if d["kind"] == "Deployment"]
    pod = deploy["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["memory"]
    assert container["image"] == f"initpipeline/initpipeline:{__version__}"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["INITPIPELINE_RUNNER_IMAGE"] == container["image"]
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}  # kopf's peering identity


def test_values_reach_the_deployment() -> None:
    [deploy] = [d for d in render("--set", "runnerImage=mirror/runner:1", "--set", "logLevel=debug",
                                  "--set", "watchNamespaces={a,b}", "--set", "apiRetrySeconds=900")
                if d["kind"] == "Deployment"]
    [container] = deploy["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["run", "--log-level=debug", "--log-format=text", "--metrics-port=8081",
                                 "--metrics-per-pipeline=true", "--reconcile-threads=4", "--api-retry-seconds=900",
                                 "--peering=ipl-initpipeline", "--peering-lifetime=15", "--namespace=a",
                                 "--namespace=b", "--webhook-port=9443", "--webhook-cert-dir=/etc/initpipeline/webhook"]
    assert {"name": "INITPIPELINE_RUNNER_IMAGE", "value": "mirror/runner:1"} in container["env"]


def test_two_replicas_peer_and_one_runs_alone() -> None:
    docs = render()
    [deploy] = [d for d in docs if d["kind"] == "Deployment"]
    assert deploy["spec"]["replicas"] == 2 and deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterKopfPeering"] == ["ipl-initpipeline"]
    namespaced = render("--set", "watchNamespaces={a,b}")
    assert sorted(d["metadata"]["namespace"] for d in namespaced if d["kind"] == "KopfPeering") == ["a", "b"]
    alone = render("--set", "replicas=1")
    [deploy] = [d for d in alone if d["kind"] == "Deployment"]
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"]["type"] == "Recreate"
    assert not [a for a in deploy["spec"]["template"]["spec"]["containers"][0]["args"] if "peering" in a]
    assert not [d for d in alone if "KopfPeering" in d["kind"]]



def test_rbac_is_least_privilege() -> None:
    cluster = {d["metadata"]["name"]: d for d in render() if d["kind"] == "ClusterRole"}
    verbs = {(r["resources"][0], tuple(r["verbs"])) for r in cluster["ipl-initpipeline"]["rules"]}
    assert ("pods", ("get", "list", "watch", "create", "delete", "patch")) in verbs
    assert ("initpipelines/status", ("get", "patch")) in verbs
    everything = json.dumps([d for d in render() if d["kind"] in ("ClusterRole", "Role")])
    for forbidden in ('"*"', "secrets", "configmaps", "escalate", "bind"):
        assert forbidden not in everything
    # update (a whole-object replace) only for the workloads the operator owns
    updatable = {r["resources"][0] for r in cluster["ipl-initpipeline"]["rules"] if "update" in r["verbs"]}
    assert updatable == {"deployments"}
    assert ("jobs", ("get", "list", "watch", "create", "delete")) in verbs
    namespaced = render("--set", "watchNamespaces={a,b}")
    roles = [d for d in namespaced if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["a", "b"]
    assert [d["metadata"]["name"] for d in namespaced if d["kind"] == "ClusterRole"] == ["ipl-initpipeline-discovery"]


def test_plain_manifests_are_the_rendered_chart() -> None:
    result = subprocess.run(["bash", str(ROOT / "hack" / "render-manifests.sh")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    committed = (ROOT / "deploy" / "manifests" / "initpipeline.yaml").read_text()
    assert committed == result.stdout, "run `make manifests`"


def test_metrics_port_service_and_optional_service_monitor() -> None:
    docs = render("--set", "metrics.port=9100", "--set", "logFormat=json", "--set", "metrics.perPipeline=false")
    [deploy] = [d for d in docs if d["kind"] == "Deployment"]
    [container] = deploy["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 9100} in container["ports"]
    assert "--metrics-port=9100" in container["args"] and "--log-format=json" in container["args"]
    assert "--metrics-per-pipeline=false" in container["args"]
    [service] = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "ipl-initpipeline-metrics"]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]

    monitored = render("--set", "metrics.serviceMonitor.enabled=true",
                       "--set", "metrics.serviceMonitor.labels.release=prom")
    [monitor] = [d for d in monitored if d["kind"] == "ServiceMonitor"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    result = helm("template", "x", str(CHART), "--set", "logFormat=xml")
    assert result.returncode != 0 and "logFormat" in result.stderr


def test_dashboard_queries_only_metrics_the_operator_serves() -> None:
    import re

    from prometheus_client import CollectorRegistry

    from initpipeline.controller.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    served = {f"{m.name}{suffix}" for m in registry.collect()
              for suffix in ("", "_bucket", "_count", "_sum", "_total")}
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "initpipeline-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for e in exprs for name in re.findall(r"\b(initpipeline_[a-z_]+|process_[a-z_]+)", e)}
    assert used and used <= served | {"process_resident_memory_bytes"}, used - served
    titles = " ".join(p["title"] for p in dashboard["panels"])
    assert "Step duration" in titles and "failures" in titles and "phase" in titles


def test_the_pod_webhook_reaches_only_labelled_pods_outside_the_release_and_kube_system() -> None:
    docs = render("--set", "webhook.failurePolicy=Ignore")
    [config] = [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    [hook] = config["webhooks"]
    assert hook["objectSelector"] == {"matchExpressions": [{"key": names.LABEL_INJECT, "operator": "Exists"}]}
    assert hook["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["ops", "kube-system"]}]
    assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None"
    assert hook["rules"] == [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                              "operations": ["CREATE"], "scope": "Namespaced"}]
    # the path is the kopf handler's id; the Service routes to every replica's webhook port
    assert hook["clientConfig"]["service"] == {"name": "ipl-initpipeline-webhook", "namespace": "ops",
                                               "path": "/inject", "port": 443}
    [service] = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "ipl-initpipeline-webhook"]
    [deploy] = [d for d in docs if d["kind"] == "Deployment"]
    assert service["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    [container] = deploy["spec"]["template"]["spec"]["containers"]
    assert {"name": "webhook", "containerPort": 9443} in container["ports"]
    # the certificate that the chart made: its CA is the configuration's caBundle
    [secret] = [d for d in docs if d["kind"] == "Secret"]
    assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    only_listed = render("--set", "watchNamespaces={a,b}")
    [config] = [d for d in only_listed if d["kind"] == "MutatingWebhookConfiguration"]
    assert {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "b"]} in \
        config["webhooks"][0]["namespaceSelector"]["matchExpressions"]


def test_cert_manager_or_no_webhook_at_all() -> None:
    docs = render("--set", "webhook.certManager.enabled=true")
    kinds = {d["kind"] for d in docs}
    assert {"Certificate", "Issuer"} <= kinds and "Secret" not in kinds
    [config] = [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    assert config["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": "ops/ipl-initpipeline-webhook"}
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]
    [cert] = [d for d in docs if d["kind"] == "Certificate"]
    assert cert["spec"]["secretName"] == "ipl-initpipeline-webhook-tls"
    assert "ipl-initpipeline-webhook.ops.svc" in cert["spec"]["dnsNames"]
    off = render("--set", "webhook.enabled=false")
    assert not [d for d in off if d["kind"] in ("MutatingWebhookConfiguration", "Secret", "Certificate")]
    [deploy] = [d for d in off if d["kind"] == "Deployment"]
    assert not [a for a in deploy["spec"]["template"]["spec"]["containers"][0]["args"] if "webhook" in a]


MAP_API = "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"
POLICY_KINDS = ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding"]


def admission_kinds(docs: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return sorted(d["kind"] for d in docs if "Admission" in d["kind"] or "Webhook" in d["kind"])


def webhook_args(docs: list[dict]) -> list[str]:  # type: ignore[type-arg]
    [deploy] = [d for d in docs if d["kind"] == "Deployment"]
    return [a for a in deploy["spec"]["template"]["spec"]["containers"][0]["args"] if "webhook" in a]


def test_injection_auto_takes_the_policy_where_the_api_server_serves_it() -> None:
    served = render("--api-versions", MAP_API)
    assert admission_kinds(served) == sorted(POLICY_KINDS)
    # no webhook: no server in the operator, no certificate, no Service for it
    assert webhook_args(served) == []
    assert not [d for d in served
                if d["kind"] in ("Secret", "Certificate") or d["metadata"]["name"].endswith("-webhook")]
    older = render()  # an API server without it (helm template's own defaults)
    assert admission_kinds(older) == ["MutatingWebhookConfiguration"] and webhook_args(older)
    assert admission_kinds(render("--set", "injection=policy")) == sorted(POLICY_KINDS)
    assert admission_kinds(render("--set", "injection=webhook", "--api-versions", MAP_API)) == \
        ["MutatingWebhookConfiguration"]
    result = helm("template", "x", str(CHART), "--set", "injection=both")
    assert result.returncode != 0 and "injection" in result.stderr


def test_the_policy_and_the_webhook_see_the_same_pods() -> None:
    policy = {d["kind"]: d for d in render("--set", "injection=policy", "--set", "watchNamespaces={a}")}
    [config] = [d for d in render("--set", "watchNamespaces={a}") if d["kind"] == "MutatingWebhookConfiguration"]
    [hook] = config["webhooks"]
    # the policies' own constraints too: while a policy cannot be configured (after an API server restart,
    # until discovery shows the paramKind again), the API server refuses every Pod those match
    for kind, field in [("MutatingAdmissionPolicyBinding", "matchResources"),
                        ("ValidatingAdmissionPolicyBinding", "matchResources"),
                        ("MutatingAdmissionPolicy", "matchConstraints"),
                        ("ValidatingAdmissionPolicy", "matchConstraints")]:
        match = policy[kind]["spec"][field]
        assert match["objectSelector"] == hook["objectSelector"] == {
            "matchExpressions": [{"key": names.LABEL_INJECT, "operator": "Exists"}]}
        assert match["namespaceSelector"] == hook["namespaceSelector"]
    assert policy["MutatingAdmissionPolicy"]["spec"]["paramKind"] == {"apiVersion": names.API_VERSION,
                                                                       "kind": names.KIND}
    assert policy["MutatingAdmissionPolicyBinding"]["spec"]["paramRef"] == {
        "selector": {}, "parameterNotFoundAction": "Allow"}


def test_the_policy_writes_the_names_the_operator_reads() -> None:
    from initpipeline.core.build import ROLE_APP

    docs = render("--set", "injection=policy")
    text = json.dumps([d for d in docs if d["kind"] in POLICY_KINDS])
    for name in (names.LABEL_INJECT, names.LABEL_PIPELINE, names.LABEL_UID, names.LABEL_REVISION, names.LABEL_ROLE,
                 names.LABEL_MANAGED_BY, names.ONCE_GATE, names.ANNOTATION_REFUSED):
        assert f"'{name}'" in text, name
    assert f"value: '{ROLE_APP}'" in text and f"value: '{names.MANAGED_BY}'" in text
