"""`initpipeline step wait-object`: wait until the operator says that an object's condition holds.

The step reads no Kubernetes object itself, so its Pod needs no RBAC: the operator watches the
object and, once the condition holds, names the step in an annotation of the Pod, which the kubelet
writes into a downward API file (--met-file) that this step polls. What the operator saw last is in
the pipeline's status.objects.
"""

from __future__ import annotations

import argparse
import os
import stat
import time
from typing import Any

from ..spec.names import DEFAULT_OBJECT_WAIT_TIMEOUT
from .common import (
    Exit,
    Interrupted,
    StepError,
    UsageError,
    finish,
    format_seconds,
    log,
    positive_number,
    printable,
    stop_on_sigterm,
)

POLL_INTERVAL = 0.1  # a local file read: cheap, and the step passes within this of the kubelet's write


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "wait-object", help="wait until the operator names this step in --met-file",
        description="Wait until --met-file (the downward API file of the Pod's initpipeline.dev/objects-met "
                    "annotation) names --step: the operator writes it once the object's condition holds.")
    parser.add_argument("--met-file", required=True, metavar="PATH", help="the file that lists the met steps")
    parser.add_argument("--step", required=True, metavar="NAME", help="this step's name")
    parser.add_argument("--object", required=True, metavar="'KIND NAME'", help="the object, for the log")
    parser.add_argument("--condition", required=True, metavar="TYPE=STATUS", help="for the log")
    parser.add_argument("--timeout", type=positive_number, default=DEFAULT_OBJECT_WAIT_TIMEOUT, metavar="SECONDS",
                        help="give up after this long (default: %(default)s)")
    return parser


MET_FILE_LIMIT = 64 * 1024  # the annotation names steps of one pipeline: far less than this


def met_steps(path: str) -> set[str]:
    """The steps named in the file; none while it is missing or empty (the annotation is not set yet).
    Only a regular file is read (the kubelet's downward API file is one), and only its first
    MET_FILE_LIMIT bytes: a FIFO would block the step and /dev/zero would fill its memory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return set()
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UsageError(f"--met-file: {printable(path)} is not a regular file")
        text = handle.read(MET_FILE_LIMIT).decode("utf-8", "replace")
    return {name.strip() for name in text.split(",") if name.strip()}


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        with stop_on_sigterm():
            log(f"waiting for {args.object} to be {args.condition} (the operator watches it; the pipeline's "
                "status.objects shows what it saw last)")
            return _wait(args, started, started + args.timeout)
    except StepError as exc:
        return finish(exc.code, f"wait-object: {exc.message}")
    except Interrupted:
        return finish(Exit.TERMINATED, f"wait-object: stopped by SIGTERM after "
                                       f"{format_seconds(time.monotonic() - started)} waiting for {args.object} "
                                       f"to be {args.condition}")


def _wait(args: argparse.Namespace, started: float, deadline: float) -> int:
    while args.step not in met_steps(args.met_file):
        if time.monotonic() >= deadline:
            return finish(Exit.TIMEOUT, f"wait-object: {args.object} was not {args.condition} after "
                                        f"{format_seconds(args.timeout)}; `kubectl get initpipeline -o yaml` shows "
                                        "in status.objects what the operator saw last")
        time.sleep(POLL_INTERVAL)
    return finish(Exit.OK, f"{args.object} is {args.condition} (waited {format_seconds(time.monotonic() - started)})")
