"""How a migration step reports the table locks it gave way to: one phrase of its termination message,
written by the runner and read back by the operator (status.steps[].lockWaits and the metrics)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PHRASE = re.compile(r"gave way to table locks (\d+) time\(s\), ([0-9]+(?:\.[0-9]+)?) s in all")


@dataclass(frozen=True)
class LockWaits:
    times: int  # how many times a statement gave up waiting for a lock (each retried, unless the budget ran out)
    seconds: float  # how long the step waited for locks and paused before retries, in all

    def phrase(self) -> str:
        return f"gave way to table locks {self.times} time(s), {self.seconds:.1f} s in all"


def parse_lock_waits(message: str | None) -> LockWaits | None:
    """The lock waits that a termination message reports; None when it reports none."""
    found = _PHRASE.search(message or "")
    return LockWaits(int(found.group(1)), float(found.group(2))) if found else None
