"""`initpipeline status` (also `kubectl initpipeline status`): a pipeline at a glance, or watched until
it is Ready or Failed."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from typing import TextIO

from ..spec.names import Obj
from .kube import CLEAR_SCREEN, EXIT_READY, EXIT_TIMEOUT, Kube
from .statusview import Paint, outcome, render_status, status_json


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _drawing(pipeline: Obj, output: str, paint: Paint) -> str:
    return status_json(pipeline) + "\n" if output == "json" else render_status(pipeline, _now(), paint)


def cmd_status(args: argparse.Namespace, kube: Kube, out: TextIO) -> int:
    paint = Paint(out.isatty() and args.output != "json")
    if not args.watch:
        out.write(_drawing(kube.pipeline(args.name), args.output, paint))
        return EXIT_READY
    until = time.monotonic() + args.timeout if args.timeout else None
    shown = ""
    for pipeline in kube.watch_pipeline(args.name, until):
        text = _drawing(pipeline, args.output, paint)
        if text != shown:
            out.write(CLEAR_SCREEN + text if paint.enabled else text + ("" if args.output == "json" else "\n"))
            out.flush()
            shown = text
        decided = outcome(pipeline)
        if decided is not None:
            return decided
    print(f"timed out after {args.timeout}s; the pipeline is neither Ready nor Failed", file=sys.stderr)
    return EXIT_TIMEOUT
