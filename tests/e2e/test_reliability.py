"""The operator under faults: its active replica killed again and again, and the API server restarted."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from initpipeline.spec import names
from tests.e2e.kube import Kube, cluster_control, condition, eventually, installed_mechanism, needs_cluster_control
from tests.e2e.manifests import BUSYBOX, REFUSED_BY, pipeline, probe_pod

pytestmark = pytest.mark.e2e


def steps(seconds: int) -> list[dict[str, Any]]:
    return [{"name": "slow", "container": {"image": BUSYBOX, "command": ["sleep", str(seconds)]}},
            {"name": "seed", "once": True, "container": {"image": BUSYBOX, "command": ["true"]}}]


def spec_for(name: str, index: int, version: str) -> dict[str, Any]:
    """Every fourth pipeline is a Deployment whose once-step runs in a Job; the others are Pods."""
    app = {"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"], "env": [{"name": "V", "value": version}]}
    if index % 4 == 0:
        return pipeline(name, steps(1 + index % 3), app=app, workload={"kind": "Deployment", "replicas": 1})
    return pipeline(name, steps(1 + index % 3)[:1], app=app)


def converged(kube: Kube, pipelines: list[str], generation: int) -> Any:
    def probe() -> Any:
        items = {p["metadata"]["name"]: p for p in kube.get("initpipelines")["items"]}
        done = [n for n in pipelines if (items[n].get("status") or {}).get("observedGeneration") == generation
                and condition(items[n]["status"], "Ready").get("status") == "True"]
        return items if len(done) == len(pipelines) else None
    return probe


def test_forty_pipelines_survive_ten_kills_of_the_active_operator(kube: Kube, operator: Kube) -> None:
    pipelines = [f"p{i:02}" for i in range(40)]
    kube.apply([spec_for(name, i, "v1") for i, name in enumerate(pipelines)])
    for kill in range(10):
        time.sleep(2)
        pods = operator.get("pods", selector="app.kubernetes.io/name=initpipeline")["items"]
        live = [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]
        # kill one replica at random moments: the active one or the standby, it does not matter to the test
        operator.run("delete", "pod", live[kill % len(live)], "--grace-period=1", "--wait=false")
        if kill == 4:  # every spec changes once along the way
            kube.apply([spec_for(name, i, "v2") for i, name in enumerate(pipelines)])
    operator.run("rollout", "status", "deployment/initpipeline", "--timeout=180s", timeout=200)
    items = eventually("all 40 at generation 2 and Ready", converged(kube, pipelines, 2), timeout=400, interval=3)

    pods = [p for p in kube.get("pods")["items"] if not p["metadata"].get("deletionTimestamp")]
    jobs = kube.get("jobs")["items"]
    for i, name in enumerate(pipelines):
        status = items[name]["status"]
        assert status["phase"] == "Running", (name, status["message"])
        mine = [p for p in pods if p["metadata"]["labels"].get("initpipeline.dev/pipeline") == name]
        if i % 4 == 0:
            deployment = kube.get("deployment", name)
            rev = status["revision"]
            assert deployment["spec"]["template"]["metadata"]["labels"]["initpipeline.dev/revision"] == rev
            [job] = [j for j in jobs if j["metadata"]["labels"]["initpipeline.dev/pipeline"] == name]
            assert job["metadata"]["name"] == f"{name}-once-{rev}"
            # the once-step ran once for this revision: one Pod, succeeded, never retried
            assert job["status"].get("succeeded") == 1 and not job["status"].get("failed")
            app = [p for p in mine if p["metadata"]["labels"].get("initpipeline.dev/role") == "app"]
            assert [p["metadata"]["labels"]["initpipeline.dev/revision"] for p in app] == [rev]
            assert status["ready"] == "1/1"
        else:
            assert [p["metadata"]["name"] for p in mine] == [f"{name}-2"], (name, [p["metadata"]["name"]
                                                                                  for p in mine])
            assert status["podName"] == f"{name}-2" and status["podRecreations"] == 0
        assert all(step["state"] == "Succeeded" for step in status["steps"]), (name, status["steps"])


@needs_cluster_control
def test_the_api_server_restarts_in_the_middle_of_a_run(kube: Kube, operator: Kube) -> None:
    pipelines = [f"r{i}" for i in range(5)]
    kube.apply([pipeline(name, steps(10)[:1]) for name in pipelines])
    eventually("the steps to run", lambda: all(
        (p.get("status") or {}).get("currentStep") == "slow" for p in kube.get("initpipelines")["items"]))
    cluster_control("restart-apiserver", timeout=180)
    # A Pod that asks for no pipeline is admitted at once, also while an admission policy of ours cannot be
    # configured yet (the API server finds InitPipeline in discovery up to 30 s after its start, and refuses
    # whatever the policy's constraints match until then): those constraints match only labelled Pods.
    plain = kube.dry_run({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"},
                          "spec": {"containers": [{"name": "app", "image": BUSYBOX, "command": ["true"]}]}})
    assert plain.returncode == 0, plain.stderr
    items = eventually("every status to converge", converged(kube, pipelines, 1), timeout=240, interval=2)
    for name in pipelines:
        status = items[name]["status"]
        assert status["phase"] == "Running" and status["steps"][0]["state"] == "Succeeded"
        assert status["podName"] == f"{name}-1"
    assert sorted(p["metadata"]["name"] for p in kube.get("pods")["items"]) == [f"{n}-1" for n in pipelines]
    for pod in operator.get("pods", selector="app.kubernetes.io/name=initpipeline")["items"]:
        assert all(cs["restartCount"] == 0 for cs in pod["status"]["containerStatuses"]), "the operator recovers " \
            "by itself, without a restart"
    # the modules after this one find attach mode as before: a labelled Pod meets our admission again
    mechanism = installed_mechanism(operator)
    eventually(f"the {mechanism} to answer a labelled Pod again", lambda: REFUSED_BY[mechanism] in kube.dry_run(
        probe_pod("no-such-pipeline")).stderr, timeout=120)


@needs_cluster_control
def test_the_api_server_filters_the_childrens_watches(operator: Kube) -> None:
    """The API server's audit log (hack/audit/policy.yaml keeps the operator's requests) shows every list and
    watch of Pods, Deployments, StatefulSets and Jobs with the label selector: no other Pod of the cluster
    reaches it. The one other kind of read is a waitForObject step's: one object, by its name."""
    entries = [json.loads(row) for row in cluster_control("audit-log").splitlines() if row.strip()]
    reads = [e for e in entries if e["verb"] in ("list", "watch")
             and e["objectRef"]["resource"] in ("pods", "deployments", "statefulsets", "jobs")]
    assert {e["objectRef"]["resource"] for e in reads} == {"pods", "deployments", "statefulsets", "jobs"}
    def selector(uri: str, kind: str) -> str:
        return parse_qs(urlsplit(uri).query).get(kind, [""])[0]

    unfiltered = [e["requestURI"] for e in reads
                  if not selector(e["requestURI"], "labelSelector").startswith(names.LABEL_PIPELINE)
                  and not selector(e["requestURI"], "fieldSelector").startswith("metadata.name=")]
    assert not unfiltered, unfiltered[:5]
