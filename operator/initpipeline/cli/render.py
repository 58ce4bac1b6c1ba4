"""`initpipeline render FILE`: the objects an InitPipeline expands into, with no cluster needed."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

import yaml

from ..spec import names
from ..spec.names import Obj
from ..spec.validation import FieldError, validate_pipeline

EXIT_INVALID = 1


def add_parser(sub: Any) -> None:
    render = sub.add_parser("render", help="print the Pod that an InitPipeline in FILE expands into")
    render.add_argument("files", metavar="FILE", nargs="+",
                        help="YAML files with InitPipeline resources (and the workloads that they attach to), or -")
    render.add_argument("--runner-image",
                        default=os.environ.get("INITPIPELINE_RUNNER_IMAGE", names.DEFAULT_RUNNER_IMAGE),
                        help="image of the built-in steps (default: %(default)s)")
    render.set_defaults(func=cmd_render)


def _step_label(spec: Obj, error: FieldError) -> str:
    """'spec.steps[1].x: reason' reads better with the step's name beside it."""
    match = re.match(r"spec\.steps\[(\d+)\]", error.field)
    steps = spec.get("steps") if isinstance(spec, dict) else None
    if match and isinstance(steps, list) and int(match.group(1)) < len(steps):
        step = steps[int(match.group(1))]
        if isinstance(step, dict) and isinstance(step.get("name"), str):
            return f"{error} (step {step['name']!r})"
    return str(error)


def load_documents(path: str) -> list[Obj]:
    """The documents of a YAML file ('-' reads standard input)."""
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
        found.append(doc)
    return found


def load_pipelines(path: str) -> list[Obj]:
    """The InitPipeline documents of a YAML file ('-' reads standard input)."""
    return [doc for doc in load_documents(path) if doc.get("kind") == names.KIND]


def cmd_render(args: argparse.Namespace) -> int:
    from ..core.attach import Refusal, render_attached
    from ..core.build import render

    args.file = " ".join(args.files)  # how errors name the input
    documents: list[Obj] = []
    for path in args.files:
        try:
            documents.extend(load_documents(path))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return EXIT_INVALID
    pipelines = [doc for doc in documents if doc.get("kind") == names.KIND]
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
        attach = (doc.get("spec") or {}).get("attach")
        if not attach:
            objects.extend(render(doc, args.runner_image))
            continue
        workload = next((d for d in documents if d.get("kind") == attach["kind"]
                         and (d.get("metadata") or {}).get("name") == attach["name"]), None)
        if workload is None:
            failed = True
            print(f"error: {args.file}: {names.KIND} {name} attaches to {attach['kind']} {attach['name']}, which is "
                  "not among the files: give both, e.g. `initpipeline render pipeline.yaml deployment.yaml`",
                  file=sys.stderr)
            continue
        try:
            objects.extend(render_attached(doc, workload, args.runner_image))
        except Refusal as exc:
            failed = True
            print(f"error: {args.file}: {exc}", file=sys.stderr)
    if failed:
        return EXIT_INVALID
    yaml.safe_dump_all(objects, sys.stdout, sort_keys=False)
    return 0
