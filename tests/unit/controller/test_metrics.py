"""Metrics follow the status transitions: each step run observed once, series removed with the pipeline."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from initpipeline.controller.metrics import Metrics
from initpipeline.core.pod_status import build_status, finished_steps
from tests.cases import shop
from tests.unit.pods import STEPS, T0, T1, T2, crash_looping, done, failed, pending, pod, running

NOW = "2026-11-22T10:01:00Z"


def steps_of(p: dict) -> list[dict]:  # type: ignore[type-arg]
    return build_status(shop(), p, NOW)["steps"]  # type: ignore[no-any-return]


def observe_looks(metrics: Metrics, namespace: str, looks: list[dict]) -> None:  # type: ignore[type-arg]
    """The operator's successive looks at one Pod, each compared with the status of the look before."""
    previous: list[dict] | None = None  # type: ignore[type-arg]
    for look in looks:
        steps = steps_of(look)
        metrics.step_runs(namespace, "shop", finished_steps(previous, steps))
        previous = steps


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_each_step_run_is_observed_once_with_its_labels() -> None:
    metrics = Metrics(CollectorRegistry())
    looks = [
        pod("Pending", [running(STEPS[0], T0), pending(STEPS[1]), pending(STEPS[2]), pending(STEPS[3])]),
        pod("Pending", [done(STEPS[0], T0, T1), running(STEPS[1], T1), pending(STEPS[2]), pending(STEPS[3])]),
        pod("Pending", [done(STEPS[0], T0, T1), running(STEPS[1], T1), pending(STEPS[2]), pending(STEPS[3])]),
        pod("Pending", [done(STEPS[0], T0, T1), done(STEPS[1], T1, T2), running(STEPS[2], T2),
                        pending(STEPS[3])]),
    ]
    observe_looks(metrics, "shop-ns", looks)
    labels = {"namespace": "shop-ns", "pipeline": "shop", "kind": "waitForService", "result": "succeeded"}
    assert sample(metrics, "initpipeline_step_duration_seconds_count", step="wait-deps", **labels) == 1
    assert sample(metrics, "initpipeline_step_duration_seconds_sum", step="wait-deps", **labels) == 5
    assert sample(metrics, "initpipeline_step_duration_seconds_count", step="migrate",
                  **{**labels, "kind": "migration"}) == 1
    assert sample(metrics, "initpipeline_step_duration_seconds_count", step="fetch-config",
                  **{**labels, "kind": "configDownload"}) is None  # still running


def test_a_crash_looping_step_counts_every_failed_attempt_once() -> None:
    metrics = Metrics(CollectorRegistry())
    rest = [pending(STEPS[2]), pending(STEPS[3])]
    looks = [
        pod("Pending", [done(STEPS[0]), failed(STEPS[1], 20, restarts=0), *rest]),
        pod("Pending", [done(STEPS[0]), crash_looping(STEPS[1], restarts=1), *rest]),
        pod("Pending", [done(STEPS[0]), crash_looping(STEPS[1], restarts=1), *rest]),  # nothing new
        pod("Pending", [done(STEPS[0]), running(STEPS[1], restarts=1), *rest]),
        pod("Pending", [done(STEPS[0]), crash_looping(STEPS[1], restarts=2, finished="2026-11-22T10:00:40Z"), *rest]),
    ]
    observe_looks(metrics, "ns", looks)
    labels = {"namespace": "ns", "pipeline": "shop", "step": "migrate", "kind": "migration"}
    assert sample(metrics, "initpipeline_step_duration_seconds_count", result="failed", **labels) == 2
    failures = [s.labels["reason"] for s in metrics.registry.collect() if s.name == "initpipeline_step_failures"
                for s in s.samples if s.name.endswith("_total")]
    assert sorted(failures) == ["CrashLoopBackOff", "Error"]
    assert sample(metrics, "initpipeline_step_failures_total", reason="Error", **labels) == 1


def test_phases_are_counted_and_a_deleted_pipeline_takes_its_series() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.phase("a", "one", "Initializing")
    metrics.phase("a", "two", "Initializing")
    metrics.phase("a", "one", "Running")
    assert sample(metrics, "initpipeline_pipelines", phase="Running") == 1
    assert sample(metrics, "initpipeline_pipelines", phase="Initializing") == 1
    assert sample(metrics, "initpipeline_pipelines", phase="Failed") == 0
    metrics.step_runs("a", "one", [{"name": "w", "kind": "waitForService", "state": "Succeeded",
                                    "startedAt": T0, "finishedAt": T1}])
    metrics.forget("a", "one")
    assert sample(metrics, "initpipeline_pipelines", phase="Running") == 0
    assert sample(metrics, "initpipeline_step_duration_seconds_count", namespace="a", pipeline="one", step="w",
                  kind="waitForService", result="succeeded") is None


def test_aggregated_labels_leave_the_pipeline_out() -> None:
    metrics = Metrics(CollectorRegistry(), per_pipeline=False)
    for name in ("one", "two"):
        metrics.step_runs("a", name, [{"name": "w", "kind": "waitForService", "state": "Succeeded",
                                       "startedAt": T0, "finishedAt": T1}])
    assert sample(metrics, "initpipeline_step_duration_seconds_count", namespace="a", pipeline="", step="w",
                  kind="waitForService", result="succeeded") == 2


def test_lock_waits_of_a_migration_are_counted_once_and_go_with_the_pipeline() -> None:
    metrics = Metrics(CollectorRegistry())
    migrate = {"name": "migrate", "kind": "migration", "state": "Succeeded", "startedAt": T0, "finishedAt": T1,
               "lockWaits": {"times": 3, "seconds": 7.5}}
    metrics.step_runs("ns", "shop", [migrate])
    assert sample(metrics, "initpipeline_migration_lock_waits_total", namespace="ns", pipeline="shop",
                  step="migrate") == 3
    assert sample(metrics, "initpipeline_migration_lock_wait_seconds_total", namespace="ns", pipeline="shop",
                  step="migrate") == 7.5
    metrics.forget("ns", "shop")
    assert sample(metrics, "initpipeline_migration_lock_waits_total", namespace="ns", pipeline="shop",
                  step="migrate") is None
