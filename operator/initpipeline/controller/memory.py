"""What the operator remembers of one pipeline between passes: one object per pipeline, so that
forgetting a deleted pipeline is one removal."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.passplan import Refused
from ..spec.names import Obj


@dataclass
class PipelineMemory:
    # The operator is the only writer of the status: what it last wrote is newer than a cached body that
    # the watch has not brought up to date yet.
    written: Obj | None = None
    handled: int = 0  # the newest generation reconciled: a pass that sees an older body does nothing
    last_write: float | None = None  # when the status was last written (the controller's clock)
    held_since: float | None = None  # since when a step handover has been held unwritten
    refused: Refused | None = None  # the API server refused a child of this generation: the next pass says so
    failures: int = 0  # unexpected failures in a row: their retries back off
