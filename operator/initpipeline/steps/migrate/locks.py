"""Table locks that give way: a migration statement waits only briefly for a lock that live traffic holds,
because every query that arrives after it queues behind it; then its file is rolled back and retried later.

This module is the part that both databases share: the policy, who blocked us (in words without query
text, which may hold values), and the pacing of the retries within a budget.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from ...spec.lockwaits import LockWaits
from ..common import format_seconds, log

FIRST_PAUSE = 0.5
LONGEST_PAUSE = 30.0
# The table that SQL names first, for a message: ALTER TABLE t, CREATE INDEX i ON t, INSERT INTO t...
_TARGET = re.compile(r"\b(?:TABLE|ON|INTO|UPDATE|FROM)\s+(?:ONLY\s+)?(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
                     r"(`[^`]+`|\"[^\"]+\"|[A-Za-z0-9_$.]+)", re.IGNORECASE)
_COMMENTS = re.compile(r"/\*.*?\*/|(?:--|#)[^\n]*", re.DOTALL)


def named_table(sql: str) -> str:
    """The first table that sql names (outside comments), "" when none: a guess for the message where the
    database does not say which table a statement waited for."""
    found = _TARGET.search(_COMMENTS.sub(" ", sql))
    return found.group(1).strip('`"') if found else ""


@dataclass(frozen=True)
class LockPolicy:
    wait: float  # how long one statement waits for a lock; 0: as long as the database's own setting says
    budget: float  # how long a migration keeps retrying after it first gave way
    statement_timeout: float = 0  # how long one statement may run; 0: no limit


@dataclass(frozen=True)
class Blocker:
    """A session that held (or queued ahead for) the lock a migration statement waited for."""

    session: str  # "pid 4711" on PostgreSQL, "connection 12" on MySQL
    user: str = ""
    application: str = ""
    address: str = ""
    state: str = ""
    open_seconds: float | None = None  # how long its transaction has been open

    def describe(self) -> str:
        facts = [self.user or "user unknown"]
        if self.application:
            facts.append(repr(self.application))
        facts += [fact for fact in (self.address, self.state) if fact]
        if self.open_seconds is not None:
            facts.append(f"transaction open {self.open_seconds:.0f} s")
        return f"{self.session} ({', '.join(facts)})"


@dataclass(frozen=True)
class Wait:
    """What the database said about one statement that gave up waiting."""

    table: str  # the table it waited for, "" when unknown
    blockers: tuple[Blocker, ...]
    note: str = ""  # why the blockers are unknown (a missing privilege, say)

    def describe(self) -> str:
        held = ", ".join(b.describe() for b in self.blockers[:3]) or "by a session the runner cannot see"
        if len(self.blockers) > 3:
            held += f" and {len(self.blockers) - 3} more"
        if self.blockers:
            held = "by " + held
        note = f" ({self.note})" if self.note else ""
        return f"waiting for a lock on {self.table or 'a table'}: held {held}{note}"


class BudgetSpent(Exception):
    """The retry budget ran out: the caller ends the step, saying what stays of the file."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class GiveWay:
    """Counts the times a migration gave way to others' locks and paces its retries: pauses that double from
    0.5 s up to 30 s, each drawn from its upper half (jitter, so that replicas of a runner do not retry in step),
    until the budget, counted from the first time it gave way, is spent."""

    def __init__(self, policy: LockPolicy, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, draw: Callable[[], float] = random.random):
        self.policy, self._clock, self._sleep, self._draw = policy, clock, sleep, draw
        self.times = 0  # how many times a statement gave up waiting
        self.seconds = 0.0
        self._first: float | None = None

    def gave_way(self, label: str, wait: Wait, waited: float) -> None:
        """One statement of migration label gave up after waited seconds: pause before its retry, or raise
        BudgetSpent when the retry would start after the budget."""
        now = self._clock()
        if self._first is None:
            self._first = now - waited
        self.times += 1
        self.seconds += waited
        ceiling = min(FIRST_PAUSE * 2 ** (self.times - 1), LONGEST_PAUSE)
        pause = ceiling * (0.5 + self._draw() / 2)
        if now + pause - self._first > self.policy.budget:
            raise BudgetSpent(
                f"migration {label} {LockWaits(self.times, self.seconds).phrase()}, and its retry budget of "
                f"{format_seconds(self.policy.budget)} is spent; last {wait.describe()}")
        log(f"{label}: {wait.describe()}; retry {self.times} in {format_seconds(pause)}")
        self._sleep(pause)
        self.seconds += pause

    def summary(self) -> LockWaits | None:
        return LockWaits(self.times, self.seconds) if self.times else None
