"""`initpipeline run`: the operator's configuration from the command line (and its environment
defaults), built once here, then the controller started with it."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..spec import names

if TYPE_CHECKING:  # the controller (and kopf) load only when the operator starts
    from ..controller.settings import OperatorConfig


def add_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster config")
    run.add_argument("--namespace", action="append", default=[],
                     help="watch only this namespace (repeatable or comma-separated; default: all)")
    run.add_argument("--runner-image",
                     default=os.environ.get("INITPIPELINE_RUNNER_IMAGE", names.DEFAULT_RUNNER_IMAGE))
    run.add_argument("--log-level", default=os.environ.get("INITPIPELINE_LOG_LEVEL", "info"),
                     choices=["debug", "info", "warning", "error"])
    run.add_argument("--log-format", default=os.environ.get("INITPIPELINE_LOG_FORMAT", "text"),
                     choices=["text", "json"], help="json: one object a line, with the pipeline's namespace and name")
    run.add_argument("--health-port", type=int, default=8080)
    run.add_argument("--metrics-port", type=int, default=8081, help="Prometheus metrics on /metrics; 0: off")
    run.add_argument("--peering", metavar="NAME",
                     help="run as one of several replicas: the kopf peering object (ClusterKopfPeering, or "
                          "KopfPeering in each --namespace) through which the oldest replica is active and "
                          "the others stand by; without it, the operator runs alone")
    run.add_argument("--peering-lifetime", type=int, default=15,
                     help="seconds after which a replica that stopped without a goodbye counts as gone "
                          "(the takeover time after a crash; default %(default)s)")
    run.add_argument("--reconcile-threads", type=_int_from(1, 64), default=4,
                     help="threads that reconcile pipelines (1 to 64, default %(default)s): passes are short and "
                          "mostly CPU, so more help only while the API server is slow to answer")
    run.add_argument("--api-retry-seconds", type=_int_from(10, 86400), default=600,
                     help="how long a failed request to the API server is retried before the operator exits and "
                          "is restarted (10 to 86400, default %(default)s): the API server's restarts and a "
                          "managed control plane's upgrades are ridden out within it")
    run.add_argument("--metrics-per-pipeline", choices=["true", "false"], default="true",
                     help="false: leave the pipeline label of step metrics empty (one series per namespace)")
    run.add_argument("--webhook-port", type=int, default=0,
                     help="serve attach mode's Pod webhook over HTTPS on this port (0, the default: not served)")
    run.add_argument("--webhook-cert-dir", default="/etc/initpipeline/webhook",
                     help="folder of the webhook's tls.crt and tls.key (default %(default)s)")
    run.set_defaults(func=cmd_run)


def config_from(args: argparse.Namespace) -> OperatorConfig:
    """The OperatorConfig of these arguments."""
    from ..controller.settings import OperatorConfig

    return OperatorConfig(
        runner_image=args.runner_image,
        namespaces=tuple(ns for entry in args.namespace for ns in entry.split(",") if ns),
        reconcile_threads=args.reconcile_threads, api_retry_seconds=args.api_retry_seconds,
        peering=args.peering, peering_lifetime=args.peering_lifetime,
        health_port=args.health_port, metrics_port=args.metrics_port,
        metrics_per_pipeline=args.metrics_per_pipeline == "true", log_level=args.log_level,
        log_format=args.log_format, webhook_port=args.webhook_port, webhook_cert_dir=args.webhook_cert_dir)


def cmd_run(args: argparse.Namespace) -> int:
    from ..controller.run import run_operator

    run_operator(config_from(args))
    return 0


def _int_from(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high`, else an error that says the bounds."""
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, not {value}")
        return value
    parse.__name__ = "int"  # argparse names it in "invalid int value: 'x'"
    return parse
