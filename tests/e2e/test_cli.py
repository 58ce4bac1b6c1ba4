"""`kubectl initpipeline status|logs`, the metrics endpoint and JSON logs, against the real cluster and the
operator installed from the chart."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from typing import Any

import pytest

from tests.e2e.kube import BIN, VENV_BIN, Kube, eventually, plugin, status_of
from tests.e2e.manifests import BUSYBOX, pipeline

pytestmark = pytest.mark.e2e


def echo_step(name: str, *words: str, sleep: int = 0) -> dict[str, Any]:
    """A container step that prints each word on a line (with a pause first, if asked)."""
    command = ["sh", "-c", 'sleep "$0"; for w in "$@"; do echo "$w"; done', str(sleep), *words]
    return {"name": name, "container": {"image": BUSYBOX, "command": command}}


def last_drawing(stdout: str, name: str) -> str:
    """`status -w` through a pipe prints each new state in full, one after another."""
    return stdout[stdout.rindex(f"{name}  (namespace"):]


def test_status_of_a_running_pipeline(kube: Kube) -> None:
    kube.apply(pipeline("shop", [echo_step("prepare", "ready")]))
    watched = plugin(kube, "status", "shop", "-w", "--timeout", "120", timeout=150)
    assert watched.returncode == 0, watched.stderr
    assert "Phase:       Running" in last_drawing(watched.stdout, "shop")
    assert "\x1b[" not in watched.stdout  # a pipe gets plain text

    shown = plugin(kube, "status", "shop")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"shop  (namespace {kube.namespace}, generation 1)"
    assert "Ready=True (PodReady)" in shown.stdout and "Pod:         shop-1" in shown.stdout
    row = next(line for line in lines if line.startswith("prepare"))
    assert row.split()[:3] == ["prepare", "container", "Succeeded"] and row.split()[4] == "0"

    as_json = json.loads(plugin(kube, "status", "shop", "-o", "json").stdout)
    assert as_json["name"] == "shop" and as_json["status"]["phase"] == "Running"


def test_status_of_a_failed_pipeline_gates_a_deploy(kube: Kube) -> None:
    leak = "echo schema is too new for postgres://app:hunter2@db/shop >&2; exit 3"
    failing = {"name": "check", "container": {"image": BUSYBOX, "command": ["sh", "-c", leak]}}
    kube.apply(pipeline("broken", [echo_step("first", "fine"), failing], restartPolicy="Never"))
    watched = plugin(kube, "status", "broken", "-w", "--timeout", "120", timeout=150)
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert watched.stdout.count("broken  (namespace") >= 2  # drawn again as the steps ran
    final = last_drawing(watched.stdout, "broken")
    assert "Phase:       Failed   step 2/2 check" in final
    row = next(line for line in final.splitlines() if line.startswith("check"))
    assert row.split()[1:3] == ["container", "Failed"] and row.split()[4] == "3"
    assert "Step check failed:\n  schema is too new for postgres://***@db/shop" in final
    assert "hunter2" not in watched.stdout

    logs = plugin(kube, "logs", "broken")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == [
        "==> step 1/2 first (container) <==", "fine",
        "==> step 2/2 check (container) <==", "schema is too new for postgres://***@db/shop",
        "==> app container app <== (not started yet)"]

    missing = plugin(kube, "status", "nope")
    assert missing.returncode == 1 and "not found: nope" in missing.stderr


def test_logs_follow_three_steps_then_the_app(kube: Kube) -> None:
    # started before the pipeline exists: it waits for the Pod, then for each step in turn
    kube.apply(pipeline("story", [echo_step("one", "one-a", "one-b", sleep=3), echo_step("two", "two-a"),
                                  echo_step("three", "three-a", sleep=1)],
                        app={"name": "app", "image": BUSYBOX,
                             "command": ["sh", "-c", "echo app-started; sleep 3600"]}))
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    proc = subprocess.Popen([str(BIN / "kubectl"), "initpipeline", "logs", "story", "-f", "-n", kube.namespace],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        eventually("the app's first line", lambda: "app-started" in lines, timeout=150, interval=0.5)
    finally:
        proc.kill()
        proc.wait()
    assert lines == [
        "==> step 1/3 one (container) <==", "one-a", "one-b",
        "==> step 2/3 two (container) <==", "two-a",
        "==> step 3/3 three (container) <==", "three-a",
        "==> app container app <==", "app-started"], proc.stderr.read() if proc.stderr else ""

    # without -f: every step's log at once, and one step on its own
    once = subprocess.run([str(VENV_BIN / "initpipeline"), "logs", "story", "-n", kube.namespace, "--step", "two"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert once.stdout.splitlines() == ["==> step 2/3 two (container) <==", "two-a"], once.stderr


def test_logs_do_not_fail_on_steps_that_have_not_started(kube: Kube) -> None:
    kube.apply(pipeline("slow", [echo_step("first", "first-a", sleep=600), echo_step("second", "x")]))
    eventually("the first step to run", lambda: (status_of(kube, "slow").get("steps") or [{}])[0].get("state")
               == "Running")
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig}
    shown = subprocess.run([str(VENV_BIN / "initpipeline"), "logs", "slow", "-n", kube.namespace], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["==> step 1/2 first (container) <==",
                                         "==> step 2/2 second (container) <== (not started yet)",
                                         "==> app container app <== (not started yet)"]


def scrape(operator: Kube) -> str:
    """What Prometheus gets from every operator replica (a standby serves only its process metrics),
    through the API server's proxy to each Pod's metrics port."""
    pods = operator.get("pods", selector="app.kubernetes.io/name=initpipeline")["items"]
    texts = []
    for pod in pods:
        if pod["status"].get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
            continue
        port = next(p["containerPort"] for p in pod["spec"]["containers"][0]["ports"] if p["name"] == "metrics")
        texts.append(operator.run("get", "--raw", f"/api/v1/namespaces/{operator.namespace}/pods/"
                                  f"{pod['metadata']['name']}:{port}/proxy/metrics").stdout)
    return "".join(texts)


def test_metrics_count_the_steps_that_ran(kube: Kube, operator: Kube) -> None:
    kube.apply(pipeline("measured", [echo_step("fetch", "x", sleep=2), echo_step("seed", "why")]))
    eventually("Running", lambda: status_of(kube, "measured").get("phase") == "Running")

    def counted() -> str | None:
        text = scrape(operator)
        return text if 'pipeline="measured"' in text and 'step="seed"' in text else None

    text = eventually("the step runs in the metrics", counted, timeout=30)
    for step in ("fetch", "seed"):
        labels = (f'kind="container",namespace="{kube.namespace}",pipeline="measured",result="succeeded",'
                  f'step="{step}"')
        assert f"initpipeline_step_duration_seconds_count{{{labels}}} 1.0" in text
    slow = re.search(r'initpipeline_step_duration_seconds_sum\{[^}]*step="fetch"[^}]*\} ([0-9.]+)', text)
    assert slow and float(slow.group(1)) >= 1  # it slept 2 s (Kubernetes times are whole seconds)
    assert re.search(r'initpipeline_pipelines\{phase="Running"\} [1-9]', text)
    assert "initpipeline_reconcile_duration_seconds_bucket" in text
    assert "process_resident_memory_bytes" in text

    kube.run("delete", "initpipeline", "measured", "--wait=true")
    eventually("the deleted pipeline's series to go", lambda: 'pipeline="measured"' not in scrape(operator),
               timeout=30)


def test_operator_logs_are_json_with_the_pipeline(kube: Kube, operator: Kube) -> None:
    kube.apply(pipeline("logged", [echo_step("hello", "hi")]))
    eventually("Running", lambda: status_of(kube, "logged").get("phase") == "Running")

    def mine() -> list[dict[str, Any]]:
        # every replica's log: with two, `logs deployment/...` may pick the standby
        out = operator.run("logs", "-l", "app.kubernetes.io/name=initpipeline", "--tail=2000").stdout
        records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return [r for r in records if r.get("namespace") == kube.namespace and r.get("name") == "logged"]

    records = eventually("a JSON log line about the pipeline", mine, timeout=30)
    assert any("created Pod logged-1" in r["message"] for r in records)
    assert all({"time", "level", "message"} <= r.keys() for r in records)
