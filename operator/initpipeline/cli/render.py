"""`initpipeline render FILE`: the objects an InitPipeline expands into, with no cluster needed."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

import yaml

from ..spec import names, yamlout
from ..spec.names import Obj
from ..spec.validation import FieldError, validate_pipeline
from .kube import EXIT_USAGE

EXIT_INVALID = 1


def add_parser(sub: Any) -> None:
    render = sub.add_parser("render", help="print the Pod that an InitPipeline in FILE expands into")
    render.add_argument("files", metavar="FILE", nargs="+",
                        help="YAML files with InitPipeline resources (and the workloads that they attach to), or -")
    render.add_argument("--runner-image",
                        default=os.environ.get("INITPIPELINE_RUNNER_IMAGE", names.DEFAULT_RUNNER_IMAGE),
                        help="image of the built-in steps (default: %(default)s)")
    render.set_defaults(func=cmd_render)


def _step_label(spec: Any, error: FieldError) -> str:
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
    try:
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ValueError("every YAML document must be a mapping")
            found.append(doc)
    except RecursionError:
        raise ValueError("a YAML document is nested too deeply to read") from None
    return found


def workload_problems(workload: Obj) -> list[str]:
    """What makes a workload file unusable for an attached render, each naming its field. The API server
    checks a real workload; a file given to render has had no such check."""
    spec = workload.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    if not isinstance(template, dict):
        return ["spec.template: must be an object (the workload's Pod template)"]
    problems = []
    meta = template.get("metadata", {})
    if not isinstance(meta, dict) or not isinstance(meta.get("labels", {}), dict):
        problems.append("spec.template.metadata.labels: must be an object")
    pod_spec = template.get("spec")
    if not isinstance(pod_spec, dict):
        return [*problems, "spec.template.spec: must be an object"]
    for key in ("containers", "initContainers", "volumes"):
        items = pod_spec.get(key) or []
        if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("name"), str)
                                                  for i in items):
            problems.append(f"spec.template.spec.{key}: must be a list of objects, each with a name")
    return problems


def load_pipelines(path: str) -> list[Obj]:
    """The InitPipeline documents of a YAML file ('-' reads standard input)."""
    return [doc for doc in load_documents(path) if doc.get("kind") == names.KIND]


def _print_invalid(file: str, what: str, problems: list[str]) -> None:
    print(f"error: {file}: {what} is invalid:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


class _Invalid(Exception):
    """A document that cannot be rendered; its lines are printed already."""


def cmd_render(args: argparse.Namespace) -> int:
    try:
        import celpy  # noqa: F401  (the CRD's CEL rules; the operator's image leaves it out)
    except ImportError:
        print("error: render checks the CRD's CEL rules with cel-python: pip install 'initpipeline[cli]'",
              file=sys.stderr)
        return EXIT_USAGE
    source = " ".join(args.files)  # how errors name the input
    documents: list[Obj] = []
    for path in args.files:
        try:
            documents.extend(load_documents(path))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return EXIT_INVALID
    pipelines = [doc for doc in documents if doc.get("kind") == names.KIND]
    if not pipelines:
        print(f"error: {source}: no document of kind {names.KIND}", file=sys.stderr)
        return EXIT_INVALID
    objects: list[Obj] = []
    failed = False
    for doc in pipelines:
        try:
            objects.extend(_render_one(doc, documents, source, args.runner_image))
        except _Invalid:
            failed = True
    if failed:
        return EXIT_INVALID
    try:
        text = yamlout.dump_all(objects)
    except RecursionError:  # a field kept as given (a container step's) nested deeper than YAML is written
        print(f"error: {source}: a field is nested too deeply to write as YAML", file=sys.stderr)
        return EXIT_INVALID
    sys.stdout.write(text)
    return 0


def _render_one(doc: Obj, documents: list[Obj], source: str, runner_image: str) -> list[Obj]:
    """What one pipeline makes: its own objects, or for attach mode what it makes of the workload it names
    (which must be among the documents). Raises _Invalid once the problems are printed."""
    from ..core.attach.inject import Refusal
    from ..core.attach.render import render_attached
    from ..core.build import render

    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) and isinstance(meta.get("name"), str) else "<unnamed>"
    errors = validate_pipeline(doc, cel=True)
    if doc.get("apiVersion") != names.API_VERSION:
        errors.insert(0, FieldError("apiVersion", f"must be {names.API_VERSION}, got {doc.get('apiVersion')!r}"))
    if errors:
        _print_invalid(source, f"{names.KIND} {name}", [_step_label(doc.get("spec"), e) for e in errors])
        raise _Invalid()
    attach = (doc.get("spec") or {}).get("attach")
    if not attach:
        return render(doc, runner_image)
    workload = next((d for d in documents if d.get("kind") == attach["kind"]
                     and isinstance(d.get("metadata"), dict) and d["metadata"].get("name") == attach["name"]), None)
    if workload is None:
        print(f"error: {source}: {names.KIND} {name} attaches to {attach['kind']} {attach['name']}, which is "
              "not among the files: give both, e.g. `initpipeline render pipeline.yaml deployment.yaml`",
              file=sys.stderr)
        raise _Invalid()
    problems = workload_problems(workload)
    if problems:
        _print_invalid(source, f"{attach['kind']} {attach['name']}", problems)
        raise _Invalid()
    try:
        return render_attached(doc, workload, runner_image)
    except Refusal as exc:
        print(f"error: {source}: {exc}", file=sys.stderr)
        raise _Invalid() from None
