"""initpipeline: one command for the operator (`run`), its step programs (`step`), and the user's
`render`, `lint`, `status` and `logs` (also as `kubectl initpipeline`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__


def build_parser(prog: str = "initpipeline", plugin: bool = False) -> argparse.ArgumentParser:
    """The whole command, or (plugin) what `kubectl initpipeline` offers: status, logs, render, lint."""
    from ..steps import add_step_parsers
    from . import lint, render, run
    from .observe import add_parsers

    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parsers(sub)

    render.add_parser(sub)
    lint.add_parser(sub)
    if plugin:
        return parser

    run.add_parser(sub)

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
