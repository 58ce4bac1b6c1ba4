"""`initpipeline status` and `logs` logic without a cluster (the cluster tests are in tests/e2e)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import pytest

from initpipeline.cli.kube import CommandError
from initpipeline.cli.logs import ContainerFollower, LogPrinter, Section, sections
from initpipeline.cli.statusview import Paint, human_seconds, outcome, render_status
from initpipeline.core.build import revision
from initpipeline.core.pod_status import build_status
from tests.cases import deployment, shop
from tests.unit.pods import STEPS, T0, T1, crash_looping, done, pending, pod, running

NOW = dt.datetime(2026, 11, 22, 10, 1, tzinfo=dt.UTC)


def pipeline_with(p: dict[str, Any] | None) -> dict[str, Any]:
    doc = shop()
    doc["metadata"].update(namespace="shop-ns", generation=1)
    doc["status"] = build_status(doc, p, "2026-11-22T10:01:00Z")
    return doc


def test_status_of_a_crash_looping_migration() -> None:
    doc = pipeline_with(pod("Pending", [done(STEPS[0], T0, T1), crash_looping(STEPS[1]), pending(STEPS[2]),
                                        pending(STEPS[3])]))
    text = render_status(doc, NOW, Paint(False))
    assert "\x1b[" not in text
    lines = text.splitlines()
    assert lines[0] == "shop  (namespace shop-ns, generation 1)"
    assert lines[1] == "Phase:       Initializing   step 2/4 migrate"
    assert "Degraded=True (CrashLoopBackOff)" in text and "Failed=False" in text
    table = lines[lines.index(next(line for line in lines if line.startswith("STEP"))):]
    assert table[0].split() == ["STEP", "KIND", "STATE", "DURATION", "EXIT", "RESTARTS", "REASON"]
    assert table[1].split() == ["wait-deps", "waitForService", "Succeeded", "5s", "0", "0"]
    assert table[2].split() == ["migrate", "migration", "Failed", "4s", "20", "3", "CrashLoopBackOff"]
    assert table[3].split() == ["fetch-config", "configDownload", "Waiting", "-", "-", "0"]
    assert "Step migrate failed:" in text and "  migration 002 failed" in text
    assert outcome(doc) is None  # crash-looping is not the end: it may still succeed


def test_status_colours_only_on_a_terminal_and_keeps_columns() -> None:
    doc = pipeline_with(pod("Pending", [running(STEPS[0], T0), pending(STEPS[1]), pending(STEPS[2]),
                                        pending(STEPS[3])]))
    coloured = render_status(doc, NOW, Paint(True))
    plain = render_status(doc, NOW, Paint(False))
    assert "\x1b[33mRunning\x1b[0m" in coloured
    import re
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
    assert "1m00s+" in plain  # running for a minute, not finished


def test_outcome_waits_for_the_current_generation() -> None:
    doc = pipeline_with(pod("Running", [done(s) for s in STEPS], ready=True, initialized=True))
    assert outcome(doc) == 0
    doc["metadata"]["generation"] = 2  # a new spec: the old Ready says nothing yet
    assert outcome(doc) is None
    failed = pipeline_with(pod("Failed", [done(STEPS[0]), crash_looping(STEPS[1]), pending(STEPS[2]),
                                          pending(STEPS[3])], restart_policy="Never"))
    assert outcome(failed) == 1


def test_human_seconds() -> None:
    assert [human_seconds(s) for s in (0.4, 59, 61, 3600, 3725)] == ["0s", "59s", "1m01s", "1h00m", "1h02m"]


def test_sections_are_the_steps_in_order_then_the_app() -> None:
    titles = [s.title for s in sections(shop(), None)]
    assert titles == ["step 1/4 wait-deps (waitForService)", "step 2/4 migrate (migration)",
                      "step 3/4 fetch-config (configDownload)", "step 4/4 fix-permissions (container)",
                      "app container app"]
    assert [s.container for s in sections(shop(), "migrate")] == ["migrate"]
    with pytest.raises(CommandError, match=r"'nope' is not a step of shop \(steps: wait-deps, migrate"):
        sections(shop(), "nope")


class FakeLogs:
    """Log bodies by container ID, as chunks that split lines anywhere."""

    def __init__(self, logs: dict[str, bytes]) -> None:
        self.logs, self.current = logs, ""
        self.read: list[str] = []

    def log_chunks(self, pod: str, container: str, follow: bool, previous: bool) -> Iterator[bytes]:
        self.read.append(self.current)
        body = self.logs[self.current]
        yield from (body[i:i + 3] for i in range(0, len(body), 3))


def attempt(cid: str, state: str, code: int = 0) -> dict[str, Any]:
    if state == "running":
        return {"name": "migrate", "containerID": cid, "restartCount": 0, "state": {"running": {"startedAt": T0}}}
    term = {"exitCode": code, "containerID": cid, "reason": "Error" if code else "Completed"}
    if state == "waiting":
        return {"name": "migrate", "containerID": cid, "restartCount": 1,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": term}}
    return {"name": "migrate", "containerID": cid, "restartCount": 0, "state": {"terminated": term}}


def test_following_a_step_through_a_failed_attempt_to_success() -> None:
    out = io.StringIO()
    fake = FakeLogs({"c1": b"connecting\nmigration 2 failed\n", "c2": b"applied 2\n"})
    follower = ContainerFollower(fake, "shop-1", Section("migrate", "step 2/4 migrate (migration)", True),  # type: ignore[arg-type]
                                  LogPrinter(out, "text", "shop-1"))
    verdicts = []
    for cid, look in [("", pod("Pending", [pending("migrate")])),
                      ("c1", pod("Pending", [attempt("c1", "running")])),
                      ("c1", pod("Pending", [attempt("c1", "terminated", 20)])),
                      ("c1", pod("Pending", [attempt("c1", "waiting", 20)])),
                      ("c2", pod("Pending", [attempt("c2", "running")])),
                      ("c2", pod("Pending", [attempt("c2", "terminated", 0)]))]:
        fake.current = cid
        verdicts.append(follower.see(look))
    assert verdicts == ["", "streamed", "", "", "streamed", "done"]
    assert fake.read == ["c1", "c2"]  # each attempt's log once
    assert out.getvalue().splitlines() == [
        "==> step 2/4 migrate (migration) <==", "connecting", "migration 2 failed",
        "--- migrate exited with code 20 (Error)", "--- attempt 2", "applied 2"]


def test_log_lines_are_redacted_and_json_when_asked() -> None:
    out = io.StringIO()
    printer = LogPrinter(out, "json", "shop-1")
    printer.lines(Section("app", "app container app", False), iter([b"db=postgres://app:s3cret@db/x\n"]))
    assert "s3cret" not in out.getvalue()
    assert '"container": "app"' in out.getvalue()


def workload_pipeline() -> dict[str, Any]:

    doc = deployment()
    rev = revision(doc["spec"])
    doc["status"] = {
        "phase": "Initializing", "revision": rev, "currentStep": "fetch-config", "ready": "1/3",
        "replicas": 3, "readyReplicas": 1, "updatedReplicas": 3,
        "workload": {"kind": "Deployment", "name": "shop"},
        "once": {"revision": rev, "job": f"shop-once-{rev}", "pod": f"shop-once-{rev}-x", "state": "Succeeded"},
        "steps": [
            {"name": "wait-deps", "kind": "waitForService", "state": "Succeeded", "restartCount": 0,
             "pods": {"done": 3, "running": 0, "waiting": 0, "failed": 0}},
            {"name": "migrate", "kind": "migration", "state": "Succeeded", "restartCount": 0, "once": True,
             "exitCode": 0},
            {"name": "fetch-config", "kind": "configDownload", "state": "Failed", "restartCount": 2,
             "reason": "CrashLoopBackOff", "pods": {"done": 1, "running": 0, "waiting": 0, "failed": 2}},
        ],
        "stuckPodCount": 2,
        "stuckPods": [{"name": "shop-a", "step": "fetch-config", "reason": "CrashLoopBackOff", "message": "404"},
                      {"name": "shop-b", "step": "fetch-config", "reason": "CrashLoopBackOff"}],
    }
    return doc


def test_status_of_a_deployment_shows_replicas_once_steps_and_stuck_pods() -> None:
    doc = workload_pipeline()
    rev = doc["status"]["revision"]
    lines = render_status(doc, NOW, Paint(False)).splitlines()
    assert f"Workload:    Deployment shop   revision {rev}" in lines
    assert "Replicas:    1/3 ready, 3 updated, 3 in all" in lines
    assert f"Once-steps:  Succeeded   (Job shop-once-{rev}, Pod shop-once-{rev}-x)" in lines
    table = lines[lines.index(next(line for line in lines if line.startswith("STEP"))):]
    assert table[0].split()[:4] == ["STEP", "KIND", "STATE", "PODS"]
    assert table[1].split()[:5] == ["wait-deps", "waitForService", "Succeeded", "3", "done"]
    assert table[2].split()[:4] == ["migrate", "migration", "Succeeded", "once"]
    assert table[3].split()[:7] == ["fetch-config", "configDownload", "Failed", "1", "done,", "2", "failed"]
    assert "Stuck Pods (2):" in lines
    assert "  shop-a  step fetch-config: CrashLoopBackOff: 404" in lines


def test_status_shows_the_after_rollout_run_and_its_steps() -> None:
    doc = workload_pipeline()
    rev = doc["status"]["revision"]
    doc["status"]["afterRollout"] = {"revision": rev, "job": f"shop-after-{rev}", "state": "Waiting",
                                     "message": f"waiting for revision {rev} to roll out"}
    doc["status"]["steps"].append({"name": "contract", "kind": "migration", "state": "Waiting", "restartCount": 0,
                                   "once": True, "when": "AfterRollout"})
    lines = render_status(doc, NOW, Paint(False)).splitlines()
    assert f"After rollout: Waiting   (Job shop-after-{rev}): waiting for revision {rev} to roll out" in lines
    row = next(line for line in lines if line.startswith("contract"))
    assert row.split()[:5] == ["contract", "migration", "Waiting", "after", "rollout"]


def test_status_shows_what_each_object_wait_saw_last() -> None:
    doc = workload_pipeline()
    doc["status"]["objects"] = [
        {"step": "wait-seed", "kind": "Job", "name": "seed", "condition": "Complete=True", "met": True,
         "lastSeen": "Complete=True"},
        {"step": "wait-cert", "kind": "Certificate", "name": "tls", "condition": "Ready=True", "met": False,
         "lastSeen": "Ready=False (Issuing: the order is pending)"}]
    lines = render_status(doc, NOW, Paint(False)).splitlines()
    at = lines.index("Objects waited for:")
    assert lines[at + 1:at + 3] == [
        "  wait-seed: Job seed Complete=True  met, last seen: Complete=True",
        "  wait-cert: Certificate tls Ready=True  waiting, last seen: Ready=False (Issuing: the order is pending)"]


def test_sections_of_a_deployment_split_the_job_from_the_pods() -> None:
    doc = workload_pipeline()
    once = sections(doc, None, "once")
    assert [s.container for s in once] == ["wait-deps", "migrate"]
    assert once[1].title == "step 2/3 migrate (migration, once)"
    assert [s.container for s in sections(doc, None, "pod")] == ["wait-deps", "fetch-config", "app"]
    assert sections(doc, "migrate", "pod") == []


def test_sections_of_the_after_rollout_job() -> None:
    doc = workload_pipeline()
    doc["spec"]["steps"].append({"name": "contract", "when": "AfterRollout",
                                 "container": {"image": "shop:1.0", "command": ["true"]}})
    assert [s.container for s in sections(doc, None, "after")] == ["wait-deps", "contract"]
    assert [s.container for s in sections(doc, "contract", "after")] == ["contract"]
    assert "contract" not in [s.container for s in sections(doc, None, "once") + sections(doc, None, "pod")]
