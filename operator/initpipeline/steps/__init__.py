"""Built-in steps: `initpipeline step wait|migrate|download`."""

from __future__ import annotations

import argparse
from typing import Any


def add_step_parsers(sub: Any) -> None:
    from . import download, migrate, wait

    for module in (wait, migrate, download):
        parser: argparse.ArgumentParser = module.add_parser(sub)
        parser.set_defaults(func=module.run)
