"""Starts the operator: logging, metrics, the shared context and kopf, from an OperatorConfig."""

from __future__ import annotations

import kopf

from . import handlers  # registers the handlers
from .context import Controller
from .logformat import configure_logging
from .metrics import Metrics
from .settings import OperatorConfig, operator_settings, seniority


def run_operator(config: OperatorConfig) -> None:
    configure_logging(config.log_level, config.log_format)
    metrics = Metrics(per_pipeline=config.metrics_per_pipeline)
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    controller = Controller(config, handlers.post_event, metrics)
    if config.webhook_port:
        handlers.serve_injection()
    metrics.queue_depth.set_function(controller.queue.depth)
    metrics.object_watches.set_function(lambda: len(controller.objects.watching()))
    kopf.run(
        settings=operator_settings(config),
        standalone=not config.peering,
        peering_name=config.peering,
        priority=seniority() if config.peering else None,
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz",
        memo=kopf.Memo(controller=controller),
    )
