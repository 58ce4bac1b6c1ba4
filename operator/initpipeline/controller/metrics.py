"""Prometheus metrics of the operator.

Cardinality stays bounded: step series carry the pipeline's namespace, name, step
name, step kind and result, so there are at most 2 x 32 histogram series per
pipeline, and they are removed when the pipeline is deleted. With
`per_pipeline=False` the pipeline label is left empty, which aggregates all
pipelines of a namespace.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import REGISTRY

from ..spec.names import Obj
from ..spec.views import parse_time

PHASES = ("Pending", "Initializing", "Running", "Succeeded", "Failed")
# Init steps take from a fraction of a second (a wait for a ready Service) to many minutes (a migration).
STEP_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
STEP_LABELS = ("namespace", "pipeline", "step", "kind", "result")
FAILURE_LABELS = ("namespace", "pipeline", "step", "kind", "reason")
LOCK_LABELS = ("namespace", "pipeline", "step")


def _seconds_between(started: str | None, finished: str | None) -> float | None:
    begin, end = parse_time(started), parse_time(finished)
    if begin is None or end is None:
        return None
    return max(0.0, (end - begin).total_seconds())


class Metrics:
    """The operator's metrics in one registry (the process-wide one by default, which also has the
    process and platform collectors)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY, per_pipeline: bool = True) -> None:
        self.registry = registry
        self.per_pipeline = per_pipeline
        self.step_duration = Histogram(
            "initpipeline_step_duration_seconds",
            "How long a step ran, from its container's start to its exit, observed once per run "
            "(Kubernetes reports whole seconds)",
            STEP_LABELS, buckets=STEP_BUCKETS, registry=registry)
        self.step_failures = Counter(
            "initpipeline_step_failures_total", "Step runs that failed, by reason",
            FAILURE_LABELS, registry=registry)
        self.lock_waits = Counter(
            "initpipeline_migration_lock_waits_total", "Times a migration statement gave way to a table lock "
            "that others held (then its file was retried)", LOCK_LABELS, registry=registry)
        self.lock_wait_seconds = Counter(
            "initpipeline_migration_lock_wait_seconds_total", "Seconds migrations waited for table locks and "
            "paused before their retries", LOCK_LABELS, registry=registry)
        self.pipelines = Gauge("initpipeline_pipelines", "Pipelines by phase", ("phase",), registry=registry)
        self.reconcile_duration = Histogram(
            "initpipeline_reconcile_duration_seconds", "Time the operator took to reconcile one pipeline",
            buckets=RECONCILE_BUCKETS, registry=registry)
        self.queue_depth = Gauge(
            "initpipeline_reconcile_queue_depth", "Pipelines waiting for a reconcile thread (a lasting "
            "value means the operator is behind its events)", registry=registry)
        self.object_watches = Gauge(
            "initpipeline_object_watches", "Objects that the operator watches because a waitForObject step waits "
            "for them (one watch request each)", registry=registry)
        for phase in PHASES:
            self.pipelines.labels(phase).set(0)
        self._phases: dict[tuple[str, str], str] = {}
        self._series: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        self._failure_series: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        self._lock_series: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        start_http_server(port, addr=address, registry=self.registry)

    def step_runs(self, namespace: str, pipeline: str, finished: Iterable[Obj]) -> None:
        """Observe steps whose run has just ended (see status.finished_steps)."""
        key = (namespace, pipeline)
        shown = pipeline if self.per_pipeline else ""
        with self._lock:
            for step in finished:
                result = "succeeded" if step["state"] == "Succeeded" else "failed"
                labels = (namespace, shown, step["name"], step["kind"], result)
                seconds = _seconds_between(step.get("startedAt"), step.get("finishedAt"))
                if seconds is not None:
                    self.step_duration.labels(*labels).observe(seconds)
                    self._series.setdefault(key, set()).add(labels)
                if result == "failed":
                    failure = (namespace, shown, step["name"], step["kind"], step.get("reason") or "Error")
                    self.step_failures.labels(*failure).inc()
                    self._failure_series.setdefault(key, set()).add(failure)
                waits = step.get("lockWaits")
                if waits:
                    lock_labels = (namespace, shown, step["name"])
                    self.lock_waits.labels(*lock_labels).inc(waits.get("times", 0))
                    self.lock_wait_seconds.labels(*lock_labels).inc(waits.get("seconds", 0))
                    self._lock_series.setdefault(key, set()).add(lock_labels)

    def phase(self, namespace: str, pipeline: str, phase: str) -> None:
        # called on every reconcile: moves one pipeline between two gauges, never recounts them all
        with self._lock:
            before = self._phases.get((namespace, pipeline))
            if before == phase:
                return
            self._phases[(namespace, pipeline)] = phase
            if before is not None:
                self.pipelines.labels(before).dec()
            self.pipelines.labels(phase).inc()

    def forget(self, namespace: str, pipeline: str) -> None:
        """A deleted pipeline takes its series with it (per-pipeline labels only)."""
        key = (namespace, pipeline)
        with self._lock:
            before = self._phases.pop(key, None)
            if before is not None:
                self.pipelines.labels(before).dec()
            if not self.per_pipeline:
                return
            for labels in self._series.pop(key, set()):
                self.step_duration.remove(*labels)
            for labels in self._failure_series.pop(key, set()):
                self.step_failures.remove(*labels)
            for labels in self._lock_series.pop(key, set()):
                self.lock_waits.remove(*labels)
                self.lock_wait_seconds.remove(*labels)
