from __future__ import annotations

from typing import Any

from initpipeline.core.pod_status import build_status, derive, merge_conditions, step_events, trim
from tests.cases import shop
from tests.unit.pods import (
    NOW,
    STEPS,
    T0,
    T1,
    T2,
    crash_looping,
    done,
    failed,
    image_pull_backoff,
    pending,
    pod,
    running,
    status_of,
)


def cond(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == ctype)
    return found


def states(status: dict[str, Any]) -> list[str]:
    return [s["state"] for s in status["steps"]]


def test_no_pod_yet() -> None:
    s = status_of(None)
    assert s["phase"] == "Pending" and s["podName"] is None
    assert states(s) == ["Waiting"] * 4
    assert cond(s, "Ready")["status"] == "False"


def test_first_step_running() -> None:
    s = status_of(pod("Pending", [running("wait-deps", T0), pending("migrate"), pending("fetch-config"),
                                  pending("fix-permissions")]))
    assert s["phase"] == "Initializing"
    assert s["currentStep"] == "wait-deps"
    assert states(s) == ["Running", "Waiting", "Waiting", "Waiting"]
    assert s["steps"][0]["startedAt"] == T0
    assert s["message"] == "step 1/4 wait-deps is running"
    assert s["observedGeneration"] == 2 and s["podName"] == "shop-1"
    assert cond(s, "Initialized") | {"lastTransitionTime": None} == {
        "type": "Initialized", "status": "False", "reason": "StepInProgress",
        "message": "step 1/4 wait-deps is running",
        "lastTransitionTime": None, "observedGeneration": 2}
    assert cond(s, "Degraded")["status"] == "False" and cond(s, "Failed")["status"] == "False"


def test_each_step_in_turn() -> None:
    for index, name in enumerate(STEPS):
        init = [done(n) for n in STEPS[:index]] + [running(name)] + [pending(n) for n in STEPS[index + 1:]]
        s = status_of(pod("Pending", init))
        assert s["currentStep"] == name
        assert states(s) == ["Succeeded"] * index + ["Running"] + ["Waiting"] * (3 - index)
        assert s["steps"][0]["kind"] == "waitForService" and s["steps"][3]["kind"] == "container"


def test_succeeded_step_has_times_and_exit_code() -> None:
    s = status_of(pod("Pending", [done("wait-deps", T0, T1), running("migrate", T2), pending("fetch-config"),
                                  pending("fix-permissions")]))
    assert s["steps"][0] == {"name": "wait-deps", "kind": "waitForService", "state": "Succeeded", "restartCount": 0,
                             "exitCode": 0, "startedAt": T0, "finishedAt": T1}


def test_failed_under_restart_policy_never() -> None:
    p = pod("Failed", [done("wait-deps"), failed("migrate", 20, message="migration 002_x.sql failed: syntax error"),
                       pending("fetch-config"), pending("fix-permissions")], restart_policy="Never")
    s = status_of(p)
    assert s["phase"] == "Failed" and s["currentStep"] == "migrate"
    step = s["steps"][1]
    assert step["state"] == "Failed" and step["exitCode"] == 20 and step["reason"] == "Error"
    assert step["message"] == "migration 002_x.sql failed: syntax error"
    assert step["startedAt"] == T1 and step["finishedAt"] == T2
    assert cond(s, "Failed")["status"] == "True"
    assert "migration 002_x.sql failed: syntax error" in cond(s, "Failed")["message"]
    assert cond(s, "Ready")["status"] == "False"
    assert states(s)[2:] == ["Waiting", "Waiting"]


def test_crash_looping_under_always() -> None:
    s = status_of(pod("Pending", [done("wait-deps"), crash_looping("migrate", restarts=4), pending("fetch-config"),
                                  pending("fix-permissions")]))
    assert s["phase"] == "Initializing" and s["currentStep"] == "migrate"
    step = s["steps"][1]
    assert step["state"] == "Failed" and step["reason"] == "CrashLoopBackOff"
    assert step["exitCode"] == 20 and step["restartCount"] == 4 and step["message"] == "migration 002 failed"
    degraded = cond(s, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "CrashLoopBackOff"
    assert "crash-looping (exit code 20, 4 restarts): migration 002 failed" in degraded["message"]
    assert cond(s, "Failed")["status"] == "False"


def test_a_step_backed_off_as_kubernetes_1_36_shows_it_is_crash_looping_too() -> None:
    """From 1.36 the kubelet leaves an init container it backs off in its terminated state (restartCount up)
    instead of waiting in CrashLoopBackOff: the same crash loop, the same status."""
    backed_off = failed("migrate", 20, message="migration 002 failed", restarts=2)
    s = status_of(pod("Pending", [done("wait-deps"), backed_off, pending("fetch-config"), pending("fix-permissions")]))
    step = s["steps"][1]
    assert step["state"] == "Failed" and step["reason"] == "CrashLoopBackOff" and step["restartCount"] == 2
    assert cond(s, "Degraded")["reason"] == "CrashLoopBackOff"
    assert "crash-looping (exit code 20, 2 restarts)" in cond(s, "Degraded")["message"]
    # never restarted: a plain failure, not a loop
    first = status_of(pod("Pending", [done("wait-deps"), failed("migrate", 20), pending("fetch-config"),
                                      pending("fix-permissions")]))
    assert first["steps"][1]["reason"] == "Error"


def test_failed_attempt_between_restarts_still_shows_failure() -> None:
    waiting = {"name": "migrate", "restartCount": 1, "state": {"waiting": {"reason": "PodInitializing"}},
               "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "x"}}}
    s = status_of(pod("Pending", [done("wait-deps"), waiting, pending("fetch-config"), pending("fix-permissions")]))
    assert s["steps"][1]["state"] == "Failed" and cond(s, "Degraded")["status"] == "True"


def test_image_pull_failure() -> None:
    s = status_of(pod("Pending", [done("wait-deps"), done("migrate"), done("fetch-config"),
                                  image_pull_backoff("fix-permissions")]))
    step = s["steps"][3]
    assert step["state"] == "Waiting" and step["reason"] == "ImagePullBackOff"
    assert step["message"] == 'Back-off pulling image "nope:1"'
    assert cond(s, "Degraded")["reason"] == "ImagePullBackOff"
    assert "stuck: ImagePullBackOff" in s["message"]


def test_oom_killed() -> None:
    p = pod("Failed", [done("wait-deps"), failed("migrate", 137, reason="OOMKilled", message=""),
                       pending("fetch-config"), pending("fix-permissions")], restart_policy="Never")
    s = status_of(p)
    assert s["steps"][1]["reason"] == "OOMKilled" and s["steps"][1]["exitCode"] == 137
    assert "message" not in s["steps"][1]  # an empty termination message leaves no key (step_status prunes None)
    assert "OOMKilled" in s["message"]


def test_unschedulable() -> None:
    s = status_of(pod("Pending", [], scheduled=False))
    assert s["phase"] == "Pending"
    assert "cannot be scheduled: 0/1 nodes are available: 1 Insufficient memory." in s["message"]
    assert cond(s, "Degraded")["reason"] == "Unschedulable"


def test_all_done_and_app_running() -> None:
    s = status_of(pod("Running", [done(n) for n in STEPS], ready=True, initialized=True))
    assert s["phase"] == "Running" and s["currentStep"] is None
    assert states(s) == ["Succeeded"] * 4
    assert cond(s, "Ready")["status"] == "True" and cond(s, "Initialized")["status"] == "True"
    assert s["message"] == "all 4 steps succeeded; the app is running and ready"


def test_app_running_not_ready() -> None:
    s = status_of(pod("Running", [done(n) for n in STEPS], ready=False, initialized=True))
    assert s["phase"] == "Running" and cond(s, "Ready")["status"] == "False"
    assert cond(s, "Initialized")["status"] == "True"


def test_deadline_exceeded_while_a_step_runs() -> None:
    p = pod("Failed", [done("wait-deps"), running("migrate"), pending("fetch-config"), pending("fix-permissions")],
            reason="DeadlineExceeded", message="Pod was active on the node longer than the specified deadline")
    s = status_of(p)
    assert s["phase"] == "Failed" and s["currentStep"] == "migrate"
    assert s["steps"][1]["state"] == "Failed" and s["steps"][1]["reason"] == "DeadlineExceeded"
    assert cond(s, "Failed")["reason"] == "DeadlineExceeded"


def test_app_failed_after_steps() -> None:
    s = status_of(pod("Failed", [done(n) for n in STEPS], initialized=True, restart_policy="Never"))
    assert s["phase"] == "Failed" and s["currentStep"] is None
    assert cond(s, "Initialized")["status"] == "True"


def test_condition_transition_time_moves_only_on_flip() -> None:
    first = merge_conditions(None, {t: (False, "R", "m") for t in ("Initialized", "Ready", "Degraded", "Failed")},
                             1, T0)
    same = merge_conditions(first, {t: (False, "R2", "m2") for t in ("Initialized", "Ready", "Degraded", "Failed")},
                            2, T1)
    assert all(c["lastTransitionTime"] == T0 for c in same)
    flipped = merge_conditions(same, {"Initialized": (True, "R", ""), "Ready": (False, "R", ""),
                                      "Degraded": (False, "R", ""), "Failed": (False, "R", "")}, 2, T2)
    times = {c["type"]: c["lastTransitionTime"] for c in flipped}
    assert times == {"Initialized": T2, "Ready": T0, "Degraded": T0, "Failed": T0}


def test_recreation_count_is_carried_over() -> None:
    s = status_of(None, previous={"podRecreations": 3})
    assert s["podRecreations"] == 3


def test_trim_keeps_the_end() -> None:
    text = "x" * 5000 + "the real error"
    trimmed = trim(text)
    assert trimmed is not None and len(trimmed) == 1024 and trimmed.endswith("the real error")
    assert trimmed.startswith("...")


def test_events_for_transitions_only() -> None:
    before = derive(shop()["spec"]["steps"], pod("Pending", [running("wait-deps"), pending("migrate")])).steps
    after = derive(shop()["spec"]["steps"], pod("Pending", [done("wait-deps"), running("migrate")])).steps
    assert step_events(before, after) == [("Normal", "StepSucceeded", "step wait-deps succeeded"),
                                          ("Normal", "StepStarted", "step migrate started")]
    assert step_events(after, after) == []
    # a step that started and finished between two looks still gets both events
    waiting = derive(shop()["spec"]["steps"], pod("Pending", [pending("wait-deps")])).steps
    quick = derive(shop()["spec"]["steps"], pod("Pending", [done("wait-deps"), pending("migrate")])).steps
    assert step_events(waiting, quick) == [("Normal", "StepStarted", "step wait-deps started"),
                                           ("Normal", "StepSucceeded", "step wait-deps succeeded")]
    failing = derive(shop()["spec"]["steps"], pod("Pending", [done("wait-deps"), crash_looping("migrate")])).steps
    [event] = step_events(after, failing)
    assert event[0] == "Warning" and event[1] == "StepFailed" and "exit code 20" in event[2]


def test_a_password_in_a_termination_message_stays_out_of_the_status() -> None:
    leaky = failed(STEPS[1], 4, message="cannot reach postgres://app:hunter2@db:5432/shop (password=hunter2)")
    status = status_of(pod("Failed", [done(STEPS[0]), leaky, pending(STEPS[2]), pending(STEPS[3])],
                           restart_policy="Never"))
    assert "hunter2" not in str(status)
    assert "postgres://***@db:5432/shop" in status["steps"][1]["message"]


def sidecar_pipeline() -> dict[str, Any]:
    """A database proxy as a native sidecar, then a migration that needs it."""
    doc = shop()
    doc["spec"]["steps"] = [
        {"name": "proxy", "container": {"image": "proxy:1", "restartPolicy": "Always"}},
        {"name": "migrate", "container": {"image": "shop:1.0", "command": ["migrate"]}},
    ]
    return doc


def test_a_started_native_sidecar_lets_the_pipeline_go_on_to_ready() -> None:
    proxy = {**running("proxy", T0), "started": True}
    p = pod("Running", [proxy, done("migrate", T1, T2)], ready=True, initialized=True)
    status = build_status(sidecar_pipeline(), p, NOW)
    assert status["phase"] == "Running" and status["currentStep"] is None
    assert [s["state"] for s in status["steps"]] == ["Running", "Succeeded"]  # the proxy runs on beside the app
    assert cond(status, "Ready")["status"] == "True" and cond(status, "Initialized")["status"] == "True"


def test_a_sidecar_that_has_not_started_is_the_current_step() -> None:
    proxy = {**running("proxy", T0), "started": False}  # its startup probe has not passed yet
    status = build_status(sidecar_pipeline(), pod("Pending", [proxy, pending("migrate")]), NOW)
    assert status["phase"] == "Initializing" and status["currentStep"] == "proxy"
    started = {**running("proxy", T0), "started": True}
    status = build_status(sidecar_pipeline(), pod("Pending", [started, running("migrate", T1)]), NOW)
    assert status["currentStep"] == "migrate"


def test_a_sidecar_that_crash_loops_after_the_app_started_degrades_the_running_pipeline() -> None:
    proxy = crash_looping("proxy", code=1, message="proxy: upstream gone")
    p = pod("Running", [proxy, done("migrate", T1, T2)], initialized=True)
    status = build_status(sidecar_pipeline(), p, NOW)
    assert status["phase"] == "Running" and status["currentStep"] is None
    assert [s["state"] for s in status["steps"]] == ["Failed", "Succeeded"]
    assert cond(status, "Initialized")["status"] == "True" and cond(status, "Ready")["status"] == "False"
    assert cond(status, "Degraded") | {"lastTransitionTime": None} == {
        "type": "Degraded", "status": "True", "reason": "CrashLoopBackOff",
        "message": "step 1/2 proxy is crash-looping (exit code 1, 3 restarts): proxy: upstream gone",
        "lastTransitionTime": None, "observedGeneration": 1}
    assert status["message"].endswith("but step 1/2 proxy is crash-looping (exit code 1, 3 restarts): "
                                      "proxy: upstream gone")
    # restarted and running again: no longer degraded
    healthy = build_status(sidecar_pipeline(), pod("Running", [{**running("proxy", T2, restarts=4), "started": True},
                                                               done("migrate", T1, T2)], ready=True, initialized=True),
                           NOW)
    assert healthy["phase"] == "Running" and cond(healthy, "Degraded")["status"] == "False"


def test_a_sidecar_that_fails_while_a_later_step_runs_degrades_without_holding_up() -> None:
    proxy = crash_looping("proxy", code=1)
    status = build_status(sidecar_pipeline(), pod("Pending", [proxy, running("migrate", T1)]), NOW)
    assert status["phase"] == "Initializing" and status["currentStep"] == "migrate"
    assert cond(status, "Degraded")["status"] == "True" and cond(status, "Degraded")["reason"] == "CrashLoopBackOff"
    # before it ever started, a failing sidecar is the step that holds the pipeline up, as any step
    first = build_status(sidecar_pipeline(), pod("Pending", [proxy, pending("migrate")]), NOW)
    assert first["currentStep"] == "proxy" and cond(first, "Degraded")["status"] == "True"


def test_the_typed_step_entry_is_the_crds_schema_of_a_step() -> None:
    from typing import get_type_hints

    import yaml

    from initpipeline.core.pod_status import StepStatus
    from tests.cases import ROOT

    crd = yaml.safe_load((ROOT / "crds" / "initpipelines.initpipeline.dev.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    step = schema["steps"]["items"]
    assert set(get_type_hints(StepStatus)) == set(step["properties"])
    assert set(step.get("required", [])) <= StepStatus.__required_keys__


def test_a_migrations_lock_waits_reach_the_status_and_its_event() -> None:
    gave_way = done(STEPS[1])
    gave_way["state"]["terminated"]["message"] = ("applied 1 migration(s) in 9.1s: 1_email.up.sql; 0 already "
                                                  "applied; gave way to table locks 4 time(s), 8.7 s in all")
    steps = [done(STEPS[0]), gave_way, running(STEPS[2]), pending(STEPS[3])]
    status = status_of(pod("Pending", steps))
    assert status["steps"][1]["lockWaits"] == {"times": 4, "seconds": 8.7}
    assert "message" not in status["steps"][1]  # a success keeps no message
    assert "lockWaits" not in status["steps"][0]
    events = step_events([{"name": STEPS[1], "state": "Running"}], status["steps"])
    assert ("Normal", "StepSucceeded", "step migrate succeeded; gave way to table locks 4 time(s), 8.7 s in all") \
        in events
