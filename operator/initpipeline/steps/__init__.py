"""Built-in steps: `initpipeline step wait|wait-object|migrate|download|git-clone`."""

from __future__ import annotations

import argparse
from typing import Any


def add_step_parsers(sub: Any) -> None:
    from . import download, gitclone, migrate, objectwait, wait

    for module in (wait, objectwait, migrate, download, gitclone):
        parser: argparse.ArgumentParser = module.add_parser(sub)
        parser.set_defaults(func=module.run)
