"""The `initpipeline` command: show a pipeline's status and logs, render a resource, run the operator,
or run a built-in step."""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import yaml

from .. import __version__
from ..spec import names
from ..spec.names import Obj
from ..spec.validation import FieldError, validate_pipeline

if TYPE_CHECKING:
    import kopf

CHILD_RESOURCES = (("", "v1", "pods"), ("apps", "v1", "deployments"), ("apps", "v1", "statefulsets"),
                   ("batch", "v1", "jobs"))
EXIT_INVALID = 1
EXIT_USAGE = 2


def _step_label(spec: Obj, error: FieldError) -> str:
    """'spec.steps[1].x: reason' reads better with the step's name beside it."""
    match = re.match(r"spec\.steps\[(\d+)\]", error.field)
    steps = spec.get("steps") if isinstance(spec, dict) else None
    if match and isinstance(steps, list) and int(match.group(1)) < len(steps):
        step = steps[int(match.group(1))]
        if isinstance(step, dict) and isinstance(step.get("name"), str):
            return f"{error} (step {step['name']!r})"
    return str(error)


def load_pipelines(path: str) -> list[Obj]:
    """The InitPipeline documents of a YAML file ('-' reads standard input)."""
    if path == "-":
        text = sys.stdin.read()
    else:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    found: list[Obj] = []
    for doc in yaml.safe_load_all(text):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ValueError("every YAML document must be a mapping")
        if doc.get("kind") == names.KIND:
            found.append(doc)
    return found


def cmd_render(args: argparse.Namespace) -> int:
    from ..core.build import render

    try:
        pipelines = load_pipelines(args.file)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if not pipelines:
        print(f"error: {args.file}: no document of kind {names.KIND}", file=sys.stderr)
        return EXIT_INVALID
    objects: list[Obj] = []
    failed = False
    for doc in pipelines:
        name = (doc.get("metadata") or {}).get("name", "<unnamed>")
        errors = validate_pipeline(doc)
        if doc.get("apiVersion") != names.API_VERSION:
            errors.insert(0, FieldError("apiVersion", f"must be {names.API_VERSION}, got {doc.get('apiVersion')!r}"))
        if errors:
            failed = True
            print(f"error: {args.file}: {names.KIND} {name} is invalid:", file=sys.stderr)
            for error in errors:
                print(f"  {_step_label(doc.get('spec') or {}, error)}", file=sys.stderr)
            continue
        objects.extend(render(doc, args.runner_image))
    if failed:
        return EXIT_INVALID
    yaml.safe_dump_all(objects, sys.stdout, sort_keys=False)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import kopf

    from ..controller import handlers  # registers the handlers
    from ..controller.logformat import configure_logging
    from ..controller.metrics import Metrics
    from ..controller.reconciler import Cluster

    namespaces = [ns for entry in args.namespace for ns in entry.split(",") if ns]
    configure_logging(args.log_level, args.log_format)
    metrics = Metrics(per_pipeline=args.metrics_per_pipeline == "true")
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    settings = operator_settings(args)
    cluster = Cluster(args.runner_image, handlers.post_event, metrics, reconcile_threads=args.reconcile_threads)
    metrics.queue_depth.set_function(cluster.queue.depth)
    kopf.run(
        settings=settings,
        standalone=not args.peering,
        peering_name=args.peering,
        priority=seniority() if args.peering else None,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
        memo=kopf.Memo(cluster=cluster),
    )
    return 0


def operator_settings(args: argparse.Namespace) -> kopf.OperatorSettings:
    """kopf's settings, from the command line only."""
    import kopf

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
    # kopf keeps a worker per object for a while after its last event, and the worker keeps that
    # event's whole body: after a burst of a thousand Pods, five seconds of that (the default) were
    # tens of MB. The handlers are quick coroutines, so a worker made anew for a later event is cheap.
    settings.queueing.idle_timeout = 0.5
    # list in pages at start-up, so that a thousand Pods are never one response held in memory at once
    settings.watching.chunk_size = 100
    # The API server filters the children's watches: the operator never receives the cluster's other Pods.
    for resource in CHILD_RESOURCES:
        settings.watching.label_selectors[resource] = names.LABEL_PIPELINE
    if args.peering:
        settings.peering.mandatory = True
        settings.peering.lifetime = args.peering_lifetime
        settings.peering.stealth = True  # no log line for every keep-alive
    return settings


def _thread_count(text: str) -> int:
    count = int(text)
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError(f"must be from 1 to 64, not {count}")
    return count


def seniority(now: float | None = None) -> int:
    """A kopf peering priority that is higher the earlier a replica started: the active replica keeps
    its role when a standby restarts. Milliseconds to the year 2100, times 1000 plus a random tie
    breaker (two replicas with the same priority would both pause), stays below 2**53."""
    started = time.time() if now is None else now
    return int((4102444800 - started) * 1000) * 1000 + random.randrange(1000)


def build_parser(prog: str = "initpipeline", plugin: bool = False) -> argparse.ArgumentParser:
    """The whole command, or (plugin) what `kubectl initpipeline` offers: status, logs, render."""
    from ..steps import add_step_parsers
    from .observe import add_parsers

    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parsers(sub)

    render = sub.add_parser("render", help="print the Pod that an InitPipeline in FILE expands into")
    render.add_argument("file", metavar="FILE", help="a YAML file with InitPipeline resources, or -")
    render.add_argument("--runner-image",
                        default=os.environ.get("INITPIPELINE_RUNNER_IMAGE", names.DEFAULT_RUNNER_IMAGE),
                        help="image of the built-in steps (default: %(default)s)")
    render.set_defaults(func=cmd_render)
    if plugin:
        return parser

    run = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster config")
    run.add_argument("--namespace", action="append", default=[],
                     help="watch only this namespace (repeatable or comma-separated; default: all)")
    run.add_argument("--runner-image", default=os.environ.get("INITPIPELINE_RUNNER_IMAGE", names.DEFAULT_RUNNER_IMAGE))
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
    run.add_argument("--reconcile-threads", type=_thread_count, default=4,
                     help="threads that reconcile pipelines (1 to 64, default %(default)s): passes are short and "
                          "mostly CPU, so more help only while the API server is slow to answer")
    run.add_argument("--metrics-per-pipeline", choices=["true", "false"], default="true",
                     help="false: leave the pipeline label of step metrics empty (one series per namespace)")
    run.set_defaults(func=cmd_run)

    step = sub.add_parser("step", help="run one built-in step (used inside the Pod's init containers)")
    add_step_parsers(step.add_subparsers(dest="kind", required=True))
    return parser


def kubectl_plugin_main(argv: Sequence[str] | None = None) -> int:
    """`kubectl initpipeline ...`: kubectl runs kubectl-initpipeline from PATH with the rest of the line."""
    return main(argv, build_parser("kubectl initpipeline", plugin=True))


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    args = (parser or build_parser()).parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:  # e.g. `initpipeline render f.yaml | head`
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
