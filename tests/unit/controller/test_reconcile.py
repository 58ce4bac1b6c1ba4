"""reconcile() against the caches' view, with the client's writes recorded (no API server)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from initpipeline.controller.context import WRITE_KEY
from initpipeline.controller.kubeapi import ApiError
from initpipeline.controller.reconciler import publish
from initpipeline.controller.reconciler import reconcile as run_reconcile
from initpipeline.core.build import revision
from initpipeline.core.children import Children
from initpipeline.core.hold import HANDOVER_HOLD, PROGRESS_WRITE_INTERVAL
from initpipeline.core.passplan import Plan
from initpipeline.core.publish import publication
from tests.unit.controller.fakes import OWNER, Recording, RecordingClient, owned, pipeline
from tests.unit.pods import STEPS, T0, T1, T2, done, image_pull_backoff, pending, pod, running

Obj = dict[str, Any]
LOG = logging.getLogger("test")


def test_a_new_pipeline_gets_its_pod_and_a_status_without_reads() -> None:
    cluster = Recording()
    run_reconcile(cluster, "u1", lambda: (pipeline(1), Children()), LOG)
    # no status in the same pass: the new Pod's ADDED event brings it, one write fewer per pipeline
    assert cluster.writes == [("create", "shop-1")]
    added = owned(pod("Pending", [pending(s) for s in STEPS], scheduled=True), "shop-1")
    run_reconcile(cluster, "u1", lambda: (pipeline(1), Children(pods=[added])), LOG)
    # nothing has started yet: the first status waits (with an alarm) for the first step's start
    assert cluster.writes == [("create", "shop-1")] and WRITE_KEY + "u1" in cluster.alarms.pending()
    started = owned(pod("Pending", [running(STEPS[0], T0)] + [pending(s) for s in STEPS[1:]]), "shop-1")
    run_reconcile(cluster, "u1", lambda: (pipeline(1), Children(pods=[started])), LOG)
    assert cluster.writes[1:] == [("status", "Initializing"), ("event", "StepStarted"),
                                  ("event", "PipelineInitializing")]


def _stepping(index: int, current: Obj) -> Obj:
    init = [done(s, T0, T1) for s in STEPS[:index]] + [current] + [pending(s) for s in STEPS[index + 1:]]
    return owned(pod("Pending", init), "shop-1")


def _pass(cluster: Recording, *pods: Obj) -> None:
    run_reconcile(cluster, "u1", lambda: (pipeline(1), Children(pods=list(pods))), LOG)


def _first_step_running() -> Recording:
    """A cluster whose pipeline's status says that the first step runs, with no write recorded yet."""
    cluster = Recording()
    _pass(cluster, _stepping(0, running(STEPS[0], T0)))
    cluster.writes.clear()
    return cluster


def test_a_step_handover_is_one_write_with_the_next_steps_start() -> None:
    cluster = _first_step_running()
    # the kubelet reports the first step's end before the second one's start: held
    handing_over = _stepping(1, pending(STEPS[1]))
    started = cluster.clock()
    _pass(cluster, handing_over)
    assert cluster.writes == []
    assert cluster.alarms.pending()[WRITE_KEY + "u1"] == started + dt.timedelta(seconds=HANDOVER_HOLD)
    # a pass a second later while nothing changed: still held, and the hold does not start over
    cluster.clock.advance(1.0)
    _pass(cluster, handing_over)
    assert cluster.writes == []
    assert cluster.alarms.pending()[WRITE_KEY + "u1"] == started + dt.timedelta(seconds=HANDOVER_HOLD)
    # the second step starts: one write says both, and no event is lost
    _pass(cluster, _stepping(1, running(STEPS[1], T2)))
    assert cluster.writes == [("status", "Initializing"), ("event", "StepSucceeded"), ("event", "StepStarted")]
    assert cluster.written()["steps"][0]["finishedAt"] == T1  # the end's own time, not the write's


def test_a_handover_that_lasts_is_written_when_the_hold_is_over() -> None:
    cluster = _first_step_running()
    handing_over = _stepping(1, pending(STEPS[1]))
    _pass(cluster, handing_over)
    assert cluster.writes == []
    cluster.clock.advance(HANDOVER_HOLD)  # the alarm's pass, HANDOVER_HOLD later
    _pass(cluster, handing_over)
    assert cluster.writes == [("status", "Initializing"), ("event", "StepSucceeded")]
    assert cluster.memory["u1"].held_since is None


def test_a_stuck_step_is_written_at_once() -> None:
    cluster = _first_step_running()
    _pass(cluster, _stepping(1, image_pull_backoff(STEPS[1])))
    assert cluster.writes[0] == ("status", "Initializing")
    assert cluster.written()["steps"][1]["reason"] == "ImagePullBackOff"
    unschedulable = Recording()
    _pass(unschedulable, owned(pod("Pending", [], scheduled=False), "shop-1"))
    assert unschedulable.writes[0] == ("status", "Pending")


def test_unchanged_status_is_not_written_again() -> None:
    cluster = Recording()
    stepping = owned(pod("Pending", [running(STEPS[0], T0), pending(STEPS[1]), pending(STEPS[2]),
                                     pending(STEPS[3])]), "shop-1")
    run_reconcile(cluster, "u1", lambda: (pipeline(1), Children(pods=[stepping])), LOG)
    assert [w for w in cluster.writes if w[0] == "status"] == [("status", "Initializing")]
    cluster.writes.clear()
    # the cached pipeline still has no status (the watch is behind): the operator's memory counts
    run_reconcile(cluster, "u1", lambda: (pipeline(1), Children(pods=[stepping])), LOG)
    assert cluster.writes == []


def test_a_new_generation_replaces_the_old_pod() -> None:
    cluster = Recording()
    old = owned(pod("Running", []), "shop-1")
    run_reconcile(cluster, "u1", lambda: (pipeline(2), Children(pods=[old])), LOG)
    assert ("delete", "shop-1") in cluster.writes and ("create", "shop-2") in cluster.writes


def test_a_stale_cache_never_acts_on_an_older_spec() -> None:
    cluster = Recording()
    run_reconcile(cluster, "u1", lambda: (pipeline(2), Children()), LOG)
    cluster.writes.clear()
    run_reconcile(cluster, "u1", lambda: (pipeline(1), Children()), LOG)  # a handler that saw generation 1
    assert cluster.writes == []


def deployment_pipeline() -> Obj:
    doc = pipeline(1)
    doc["spec"]["workload"] = {"kind": "Deployment", "replicas": 2}
    return doc


def test_a_workload_pipeline_starts_with_its_migration_job_only() -> None:
    cluster = Recording()
    doc = deployment_pipeline()
    rev = revision(doc["spec"])
    run_reconcile(cluster, "u1", lambda: (doc, Children()), LOG)
    assert cluster.writes == [("create", f"Job/shop-once-{rev}")]
    job = {"kind": "Job", "metadata": {"name": f"shop-once-{rev}", "ownerReferences": OWNER,
                                       "labels": {"initpipeline.dev/revision": rev}}, "status": {}}
    run_reconcile(cluster, "u1", lambda: (doc, Children(jobs=[job])), LOG)  # the Job's ADDED event
    assert cluster.writes[1] == ("status", "Initializing")
    assert cluster.written()["once"]["state"] == "Running"


def test_after_the_job_the_deployment_is_created_and_the_kind_pod_is_removed() -> None:
    cluster = Recording()
    doc = deployment_pipeline()
    rev = revision(doc["spec"])
    done_job = {"kind": "Job", "metadata": {"name": f"shop-once-{rev}", "labels": {"initpipeline.dev/revision": rev},
                                            "ownerReferences": OWNER},
                "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    old_pod = owned(pod("Running", []), "shop-1")  # from when the pipeline was of kind Pod
    run_reconcile(cluster, "u1", lambda: (doc, Children(pods=[old_pod], jobs=[done_job])), LOG)
    assert cluster.writes == [("delete", "shop-1"), ("create", "Deployment/shop")]


def test_a_pipeline_back_to_kind_pod_removes_its_workload_and_jobs() -> None:
    cluster = Recording()
    workload = {"kind": "Deployment", "metadata": {"name": "shop", "ownerReferences": OWNER}}
    job = {"kind": "Job", "metadata": {"name": "shop-once-abc", "ownerReferences": OWNER}}
    run_reconcile(cluster, "u1", lambda: (pipeline(2), Children(workloads=[workload], jobs=[job])), LOG)
    assert cluster.writes[:3] == [("delete", "Deployment/shop"), ("delete", "Job/shop-once-abc"),
                                  ("create", "shop-2")]


class TerminatingNamespace(RecordingClient):
    def create_pod(self, pod: Obj) -> tuple[Obj, bool]:
        self.writes.append(("create", pod["metadata"]["name"]))
        raise ApiError(403, "Forbidden",
                       '{"message": "unable to create new content in namespace ns because it is being terminated"}')


def test_a_terminating_namespace_is_not_a_rejected_pod_and_is_left_alone() -> None:
    cluster = Recording(TerminatingNamespace())
    doc = pipeline(1)
    doc["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    assert run_reconcile(cluster, "u1", lambda: (doc, Children()), LOG) == {}
    assert cluster.writes == [("create", "shop-1")]  # no PodRejected status
    other = pipeline(1)
    other["metadata"].update(uid="u2", name="other", creationTimestamp="2026-01-01T00:00:00Z")
    assert run_reconcile(cluster, "u2", lambda: (other, Children()), LOG) == {}
    assert cluster.writes == [("create", "shop-1")]  # the namespace is known to go: no more creates
    reborn = pipeline(1)
    reborn["metadata"].update(uid="u3", name="reborn", creationTimestamp="2099-01-01T00:00:00Z")
    run_reconcile(cluster, "u3", lambda: (reborn, Children()), LOG)
    assert cluster.writes[-1] == ("create", "reborn-1")  # a namespace of the same name, made anew


class NoServiceAccountYet(RecordingClient):
    def create_pod(self, pod: Obj) -> tuple[Obj, bool]:
        self.writes.append(("create", pod["metadata"]["name"]))
        raise ApiError(403, "Forbidden", '{"message": "pods \\"shop-1\\" is forbidden: error looking up '
                                         'service account ns/default: serviceaccount \\"default\\" not found"}')


def test_a_pod_refused_for_a_service_account_not_made_yet_is_created_again_later() -> None:
    """A namespace made just before the pipeline has no "default" ServiceAccount for a moment (seen on kind):
    that refusal passes by itself, so the pipeline does not fail: its status says why, and the Pod is created
    again every 5 s."""
    client = NoServiceAccountYet()
    cluster = Recording(client)
    assert run_reconcile(cluster, "u1", lambda: (pipeline(1), Children()), LOG) == {}
    assert cluster.writes == [("create", "shop-1")] and cluster.queue.depth() == 1  # the next pass says it
    status = run_reconcile(cluster, "u1", lambda: (pipeline(1), Children()), LOG)
    assert status["phase"] == "Pending" and "refused the Pod for now" in status["message"]
    assert "error looking up service account ns/default" in status["message"]
    assert cluster.writes[1:] == [("status", "Pending"), ("event", "PipelinePending")]  # no create, no Failed
    assert cluster.alarms.pending()["u1"] == cluster.clock() + dt.timedelta(seconds=5)
    run_reconcile(cluster, "u1", lambda: (pipeline(1), Children()), LOG)  # its own status's event, at once
    assert len(cluster.writes) == 3
    cluster.clock.advance(5)  # the alarm's pass
    run_reconcile(cluster, "u1", lambda: (pipeline(1), Children()), LOG)
    assert cluster.writes[3] == ("create", "shop-1")


def statuses(cluster: Recording) -> list[tuple[str, Any]]:
    return [w for w in cluster.writes if w[0] == "status"]


def _progress(ready: int, ready_condition: str = "False") -> Obj:
    return {"phase": "Initializing" if ready_condition == "False" else "Running", "observedGeneration": 1,
            "readyReplicas": ready, "message": f"{ready}/2 ready",
            "conditions": [{"type": "Ready", "status": ready_condition, "reason": "RollingOut"}],
            "steps": [{"name": "wait", "state": "Running", "pods": {"done": ready, "running": 2 - ready}}]}


def _publish(cluster: Recording, doc: Obj, previous: Obj, status: Obj) -> None:
    """The status decided by a pass, then published as the pass does."""
    memory = cluster.remember("u1")
    pod = doc["spec"].get("workload", {}).get("kind", "Pod") == "Pod"
    publish(cluster, doc, Plan(publish=publication(pod, previous, status, cluster.clock().timestamp(),
                                                   memory.last_write, memory.held_since)))


def test_a_workloads_progress_is_written_at_most_once_a_second_and_a_milestone_at_once() -> None:
    cluster = Recording()
    doc = deployment_pipeline()
    _publish(cluster, doc, {}, _progress(0))
    assert statuses(cluster) == [("status", "Initializing")]
    # one more Pod moved on, a moment later: held, with an alarm to write the newest then
    _publish(cluster, {**doc, "status": cluster.written()}, cluster.written(), _progress(1))
    assert statuses(cluster) == [("status", "Initializing")]
    assert cluster.alarms.pending()[WRITE_KEY + "u1"] == cluster.clock() + dt.timedelta(
        seconds=PROGRESS_WRITE_INTERVAL)
    # the rollout is done: Ready flips, which is written at once
    _publish(cluster, {**doc, "status": cluster.written()}, cluster.written(), _progress(2, "True"))
    assert statuses(cluster) == [("status", "Initializing"), ("status", "Running")]
    # once the interval is over, progress is written again
    cluster.clock.advance(PROGRESS_WRITE_INTERVAL)
    _publish(cluster, {**doc, "status": cluster.written()}, cluster.written(), _progress(1, "True"))
    assert statuses(cluster)[-1] == ("status", "Running") and len(statuses(cluster)) == 3
    cluster.forget("u1", "ns", "shop")
    assert WRITE_KEY + "u1" not in cluster.alarms.pending()


def test_a_pod_pipelines_progress_is_not_held() -> None:
    cluster = Recording()
    doc = pipeline(1)
    _publish(cluster, doc, {}, _progress(0))
    _publish(cluster, {**doc, "status": cluster.written()}, cluster.written(), _progress(1))
    assert statuses(cluster) == [("status", "Initializing"), ("status", "Initializing")]


class InvalidPod(RecordingClient):
    def create_pod(self, pod: Obj) -> tuple[Obj, bool]:
        self.writes.append(("create", pod["metadata"]["name"]))
        raise ApiError(422, "Unprocessable Entity", '{"message": "Pod \\"shop-1\\" is invalid: spec.x: Invalid"}')


def test_a_refused_pod_is_said_by_the_next_pass_and_not_created_again() -> None:
    """A write whose outcome matters feeds the next pass: the refusal is remembered, the pipeline woken,
    and that pass publishes it; later passes wait for a new spec."""
    cluster = Recording(InvalidPod())
    assert run_reconcile(cluster, "u1", lambda: (pipeline(1), Children()), LOG) == {}
    assert cluster.writes == [("create", "shop-1")]
    assert cluster.memory["u1"].refused is not None and cluster.queue.depth() == 1
    status = run_reconcile(cluster, "u1", lambda: (pipeline(1), Children()), LOG)
    assert cluster.writes[1:] == [("status", "Failed"), ("event", "PipelineFailed")]
    assert status["conditions"][-1]["reason"] == "PodRejected" and "spec.x: Invalid" in status["message"]
    assert cluster.memory["u1"].refused is None
    run_reconcile(cluster, "u1", lambda: (pipeline(1), Children()), LOG)
    assert len(cluster.writes) == 3  # the same spec would be refused again
    run_reconcile(cluster, "u1", lambda: (pipeline(2), Children()), LOG)
    assert cluster.writes[3] == ("create", "shop-2")  # a new spec is tried


class OursAlready(RecordingClient):
    def create_pod(self, pod: Obj) -> tuple[Obj, bool]:
        self.writes.append(("create", pod["metadata"]["name"]))
        return {**pod, "metadata": {**pod["metadata"], "ownerReferences": OWNER}}, False


def test_a_pod_the_cache_has_not_seen_yet_ends_the_pass_without_a_status() -> None:
    cluster = Recording(OursAlready())
    assert run_reconcile(cluster, "u1", lambda: (pipeline(1), Children()), LOG) == {}
    assert cluster.writes == [("create", "shop-1")]  # its ADDED event brings the status


def test_the_written_status_is_let_go_once_the_cache_shows_it() -> None:
    """One copy of a status per pipeline, not two: what the operator wrote is kept only while the watch is behind."""
    cluster = Recording()
    stepping = owned(pod("Pending", [running(STEPS[0], T0), pending(STEPS[1]), pending(STEPS[2]),
                                     pending(STEPS[3])]), "shop-1")
    run_reconcile(cluster, "u1", lambda: (pipeline(1), Children(pods=[stepping])), LOG)
    written = cluster.written()
    caught_up = {**pipeline(1), "status": written}
    run_reconcile(cluster, "u1", lambda: (caught_up, Children(pods=[stepping])), LOG)
    assert cluster.memory["u1"].written is None
    assert [w for w in cluster.writes if w[0] == "status"] == [("status", "Initializing")]  # nothing new to say


class GoneBeforeItsStatus(RecordingClient):
    def write_status(self, namespace: str, name: str, status: Obj) -> None:
        raise ApiError(404, "Not Found", '{"message": "initpipelines.initpipeline.dev \\"shop\\" not found"}')


def test_a_pipeline_deleted_before_its_status_write_ends_the_pass_quietly() -> None:
    """Its DELETED event forgets it; the pass neither fails nor retries."""
    cluster = Recording(GoneBeforeItsStatus())
    stepping = owned(pod("Pending", [running(STEPS[0], T0)] + [pending(s) for s in STEPS[1:]]), "shop-1")
    assert run_reconcile(cluster, "u1", lambda: (pipeline(1), Children(pods=[stepping])), LOG) == {}
