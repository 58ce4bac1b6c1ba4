"""`initpipeline lint DIR`: the statements of a migrations folder that would break the version still
serving during a rolling update, or hold a busy table's writers behind a lock. No database, no network."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..steps.common import StepError
from ..steps.migrate import read_files
from ..steps.migrate.layouts import LAYOUTS, FolderError, parse_folder
from ..steps.migrate.lint import Finding, lint_folder
from ..steps.migrate.lintrules import RULES
from ..steps.migrate.sqllex import DIALECTS, POSTGRESQL
from .kube import EXIT_USAGE

EXIT_CLEAN, EXIT_FINDINGS = 0, 1
FORMATS = ("text", "json", "github")


def add_parser(sub: Any) -> None:
    lint = sub.add_parser(
        "lint", help="report the statements of a migrations folder that break the version still serving or lock "
                     "a busy table",
        description="Read a migrations folder (golang-migrate, Flyway, dbmate or plain) and report each statement "
                    "that would break the version still serving during a rolling update, or lock a busy table. "
                    "'-- initpipeline:allow RULE' in or before a statement allows it; a file marked "
                    "'-- initpipeline:after-rollout' runs after the rollout. Exit 0: nothing to report; "
                    f"{EXIT_FINDINGS}: findings; {EXIT_USAGE}: the folder cannot be read.")
    lint.add_argument("folder", metavar="DIR", help="the migrations folder")
    lint.add_argument("--layout", choices=LAYOUTS, metavar="|".join(LAYOUTS),
                      help="the folder's layout (default: detected from its files, as the runner does)")
    lint.add_argument("--dialect", choices=DIALECTS, default=POSTGRESQL,
                      help="the database's SQL (default: %(default)s)")
    lint.add_argument("--format", choices=FORMATS, default="text",
                      help="text; json on stdout; github: workflow annotations (default: %(default)s)")
    lint.set_defaults(func=cmd_lint)


def cmd_lint(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.folder):
        print(f"error: {args.folder}: no such folder", file=sys.stderr)
        return EXIT_USAGE
    try:
        folder = parse_folder(read_files(args.folder), args.layout)
    except FolderError as exc:
        print(f"error: {args.folder}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StepError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    findings = lint_folder(folder, args.dialect)
    files = len(folder.migrations) + len(folder.repeatables)
    printers = {"text": _text, "json": _json, "github": _github}
    printers[args.format](findings, args.folder, folder.layout, files)
    return EXIT_FINDINGS if any(not f.allowed for f in findings) else EXIT_CLEAN


def _text(findings: list[Finding], where: str, layout: str, files: int) -> None:
    for finding in findings:
        print(os.path.join(where, finding.render()))
    _summary(findings, where, layout, files)


def _summary(findings: list[Finding], where: str, layout: str, files: int) -> None:
    reported = [f for f in findings if not f.allowed]
    breaking = sum(1 for f in reported if f.breaks)
    print(f"{where}: {files} file(s), layout {layout}: {len(reported)} finding(s) ({breaking} break the version "
          f"still serving, {len(reported) - breaking} lock a busy table), {len(findings) - len(reported)} allowed",
          file=sys.stderr)


def _json(findings: list[Finding], where: str, layout: str, files: int) -> None:
    def entry(f: Finding) -> dict[str, Any]:
        rule = RULES.get(f.rule)
        return {"file": f.file, "line": f.line, "rule": f.rule, "breaks": f.breaks, "allowed": f.allowed,
                "message": f.message, "why": rule.why if rule else "", "instead": rule.safe if rule else ""}
    print(json.dumps({"folder": where, "layout": layout, "files": files,
                      "findings": [entry(f) for f in findings]}, indent=2))


def _github(findings: list[Finding], where: str, layout: str, files: int) -> None:
    """GitHub's workflow commands: an error for what breaks, a warning for what locks, a notice if allowed."""
    for f in findings:
        level = "notice" if f.allowed else "error" if f.breaks else "warning"
        path = _escape(os.path.join(where, f.file), True)
        title = _escape(f"initpipeline lint: {f.rule}" + (" (allowed)" if f.allowed else ""), True)
        print(f"::{level} file={path},line={f.line},title={title}::{_escape(f.detail(), False)}")
    _summary(findings, where, layout, files)


def _escape(text: str, prop: bool) -> str:
    """GitHub's escaping of a workflow command's data (and, in a property, of ':' and ',')."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text
