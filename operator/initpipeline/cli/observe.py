"""The `status` and `logs` commands' arguments, shared by `initpipeline` and `kubectl-initpipeline`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TextIO

from .kube import CommandError, Kube
from .logs import cmd_logs
from .status import cmd_status


def add_parsers(sub: Any) -> None:
    """`status` and `logs`, shared by `initpipeline` and `kubectl-initpipeline`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("name", metavar="NAME", help="the InitPipeline")
    common.add_argument("-n", "--namespace", help="default: the kubeconfig context's namespace, or default")
    common.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
    common.add_argument("--context", help="the kubeconfig context to use")
    common.add_argument("-o", "--output", choices=["text", "json"], default="text")

    status = sub.add_parser("status", parents=[common], help="a pipeline at a glance: phase, conditions, steps")
    status.add_argument("-w", "--watch", action="store_true",
                        help="redraw on every change until Ready (exit 0) or Failed (exit 1)")
    status.add_argument("--timeout", type=int, default=0, help="with -w: give up after this many seconds (exit 3)")
    status.set_defaults(func=lambda args: _run(cmd_status, args))

    logs = sub.add_parser("logs", parents=[common], help="each step's log in order, then the app's")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="follow the steps as they start, one after another, then the app")
    logs.add_argument("--step", help="only this step")
    logs.add_argument("--pod", help="this Pod instead of the pipeline's current one")
    logs.set_defaults(func=lambda args: _run(cmd_logs, args))


def _run(command: Callable[[argparse.Namespace, Kube, TextIO], int], args: argparse.Namespace) -> int:
    try:
        return command(args, Kube.connect(args), sys.stdout)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
