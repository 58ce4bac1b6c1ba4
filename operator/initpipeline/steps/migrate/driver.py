"""What the runner needs of a database: one Protocol that the PostgreSQL and MySQL drivers both are, and
the helpers they share (connecting with retries, taking the migration locks)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from ..common import Exit, StepError, format_seconds, log
from .history import LockKey
from .locks import GiveWay
from .plan import Action


class Driver(Protocol):
    @property
    def dialect(self) -> str:
        """The history tables' SQL dialect (history.POSTGRESQL or history.MYSQL)."""

    @property
    def errors(self) -> type[Exception]:
        """What the driver raises for a database error."""

    @property
    def conn(self) -> Any:
        """What the history ledgers execute their queries on."""

    def redact(self, text: str) -> str:
        """The text without the URL's password."""

    def own_lock(self, table: str) -> LockKey:
        """The runner's own lock for this history table."""

    def lock(self, keys: list[LockKey], timeout: float) -> None:
        """Take every lock, in order, within timeout (StepError LOCK_TIMEOUT)."""

    def atomic(self, *writes: Any) -> None:
        """Run the writes (callables of the connection) in one transaction."""

    def run(self, action: Action, ledger: Any, may_leave_transaction: bool, give_way: GiveWay) -> float:
        """Apply one action and record it in the ledger; returns the seconds it took."""

    def close(self) -> None:
        """Close the connection (which releases the session's locks)."""


def take_locks(keys: list[LockKey], timeout: float, try_lock: Callable[[LockKey], bool]) -> None:
    """Take every lock, in order, within timeout: try_lock(key) asks for one without waiting."""
    deadline = time.monotonic() + timeout
    for key in keys:
        interval, announced = 0.05, False
        while not try_lock(key):
            if not announced:
                log("another runner holds the migration lock; waiting for it")
                announced = True
            if time.monotonic() + interval > deadline:
                raise StepError(Exit.LOCK_TIMEOUT,
                                f"could not take the migration lock within {format_seconds(timeout)}")
            time.sleep(interval)
            interval = min(interval * 2, 1.0)


def connect_retrying(connect: Callable[[], Any], errors: type[Exception] | tuple[type[Exception], ...],
                     verdict: Callable[[Any], tuple[str, bool]], timeout: float) -> Any:
    """connect(), retried while the database is not up yet (starting, or its Service not routed).
    verdict(error) says why in words without a password, and whether waiting can cure it."""
    deadline = time.monotonic() + timeout
    interval, announced = 0.2, ""
    while True:
        try:
            return connect()
        except errors as exc:
            reason, retry = verdict(exc)
            if not retry or time.monotonic() + interval > deadline:
                raise StepError(Exit.DATABASE, f"cannot connect to the database: {reason}") from None
            if reason != announced:
                log(f"database not reachable yet ({reason}); retrying for up to {format_seconds(timeout)}")
                announced = reason
            time.sleep(interval)
            interval = min(interval * 2, 2.0)
