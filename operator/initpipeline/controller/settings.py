"""The operator's configuration, built once by `initpipeline run`, and kopf's settings made from it."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import kopf

from ..spec import names

CHILD_RESOURCES = (("", "v1", "pods"), ("apps", "v1", "deployments"), ("apps", "v1", "statefulsets"),
                   ("batch", "v1", "jobs"))
# The revisions of attached workloads: their controllers copy the Pod template's labels onto them.
REVISION_RESOURCES = (("apps", "v1", "replicasets"), ("apps", "v1", "controllerrevisions"))


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator is told at start; never read from the environment later."""

    runner_image: str = names.DEFAULT_RUNNER_IMAGE
    namespaces: tuple[str, ...] = ()  # empty: the whole cluster
    reconcile_threads: int = 4  # the work queue's: blocking API calls overlap; Python runs one at a time anyway
    api_retry_seconds: int = 600  # how long kopf's requests outlast an unreachable API server before the operator exits
    peering: str | None = None  # the kopf peering object of several replicas; None: alone
    peering_lifetime: int = 15
    health_port: int = 8080
    metrics_port: int = 8081  # 0: no metrics endpoint
    metrics_per_pipeline: bool = True
    log_level: str = "info"
    log_format: str = "text"
    webhook_port: int = 0  # attach mode's Pod webhook (HTTPS); 0: not served
    webhook_cert_dir: str = ""  # tls.crt and tls.key of the webhook's certificate (reloaded when they change)


def operator_settings(config: OperatorConfig) -> kopf.OperatorSettings:
    """kopf's settings, from the operator's configuration only."""
    settings = kopf.OperatorSettings()
    # Only event handlers: kopf keeps no bookkeeping of its own; if it ever did, not in .status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration")
    settings.posting.level = logging.INFO
    # kopf posts each object's Events from a worker of its own, each on a connection of its own: with
    # a thousand pipelines changing at once that was a thousand TLS connections and an OOM kill. A
    # worker that waited a second for more Events of its object held its slot for that second, and one
    # retrying an Event of a namespace being deleted (8 tries over 54 s) held it for a minute: Events
    # are best effort, two quick retries are enough.
    settings.posting.worker_limit = 32
    settings.posting.idle_timeout = 0.05
    settings.posting.default_backoffs = (1, 2)
    settings.watching.server_timeout = 300
    # kopf's default retries (1, 1, 2 ... 21 s) give up after 54 s, and a watch or peering keep-alive
    # that gives up stops the whole operator. A restarted API server is often down longer than that
    # (a graceful stop waits up to 60 s for requests in flight), and a managed control plane for minutes
    # during an upgrade: the operator rides that out and resumes from its watches, never restarted.
    settings.networking.error_backoffs = retry_backoffs(config.api_retry_seconds)
    # kopf keeps a worker per object for a while after its last event, and the worker keeps that
    # event's whole body: after a burst of a thousand Pods, five seconds of that (the default) were
    # tens of MB. The handlers are quick coroutines, so a worker made anew for a later event is cheap.
    settings.queueing.idle_timeout = 0.5
    # list in pages at start-up, so that a thousand Pods are never one response held in memory at once
    settings.watching.chunk_size = 100
    # The API server filters the children's watches: the operator never receives the cluster's other Pods.
    for resource in CHILD_RESOURCES:
        settings.watching.label_selectors[resource] = names.LABEL_PIPELINE
    for resource in REVISION_RESOURCES:
        settings.watching.label_selectors[resource] = names.LABEL_INJECT
    if config.webhook_port:
        # the chart's MutatingWebhookConfiguration points at the operator's Service; kopf only serves
        cert_dir = config.webhook_cert_dir.rstrip("/")
        settings.admission.server = kopf.WebhookServer(addr="0.0.0.0", port=config.webhook_port,
                                                       certfile=f"{cert_dir}/tls.crt", pkeyfile=f"{cert_dir}/tls.key")
    if config.peering:
        settings.peering.mandatory = True
        settings.peering.lifetime = config.peering_lifetime
        settings.peering.stealth = True  # no log line for every keep-alive
    return settings


def retry_backoffs(total_seconds: int, longest: float = 30) -> tuple[float, ...]:
    """Pauses between retries of a failed API request: quick at first (1, 1, 2, 3, 5 ... seconds), then
    every `longest` seconds, adding up to `total_seconds`."""
    pauses: list[float] = []
    pause, following, remaining = 1.0, 1.0, float(total_seconds)
    while remaining > 0:
        pauses.append(min(pause, float(longest), remaining))
        remaining -= pauses[-1]
        pause, following = following, pause + following
    return tuple(pauses)


def seniority(now: float | None = None) -> int:
    """A kopf peering priority that is higher the earlier a replica started: the active replica keeps
    its role when a standby restarts. Milliseconds to the year 2100, times 1000 plus a random tie
    breaker (two replicas with the same priority would both pause), stays below 2**53."""
    started = time.time() if now is None else now
    return int((4102444800 - started) * 1000) * 1000 + random.randrange(1000)
