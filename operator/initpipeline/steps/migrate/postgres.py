"""The connection to PostgreSQL: connecting with retries, the migration lock, and running one action."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..common import Exit, StepError, log, redact
from .driver import connect_retrying, take_locks
from .history import POSTGRESQL, Ledger, LockKey
from .layouts import DBMATE, PLAIN, PLAIN_NO_TRANSACTION
from .locks import Blocker, BudgetSpent, GiveWay, LockPolicy, Wait, named_table
from .plan import Action
from .sqltext import has_code, split_statements

CONNECT_TIMEOUT = 10
# Failures that waiting does not cure: report them at once.
PERMANENT_CONNECT_ERRORS = ("authentication failed", "does not exist", "no pg_hba.conf entry", "invalid",
                            "SSL", "certificate")
# SQLSTATE 25001: "cannot run inside a transaction block" (CREATE INDEX CONCURRENTLY, VACUUM...).
IN_TRANSACTION_BLOCK = "25001"
# SQLSTATE 55P03: lock_not_available, what a statement raises when lock_timeout ends its wait.
LOCK_NOT_AVAILABLE = "55P03"
# The index that a CREATE INDEX CONCURRENTLY names: when it fails, PostgreSQL leaves it behind, INVALID.
_CONCURRENT_INDEX = re.compile(r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"
                               r"(\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*)\s+ON\b", re.IGNORECASE)


def lock_key(table: str) -> int:
    """A stable signed 64-bit advisory-lock key per history table."""
    return int.from_bytes(hashlib.sha256(f"initpipeline:{table}".encode()).digest()[:8], "big", signed=True)


class PostgresDatabase:
    """The PostgreSQL driver (psycopg), a Driver."""

    dialect = POSTGRESQL

    def __init__(self, url: str, connect_timeout: float = 0, ca_file: str | None = None,
                 policy: LockPolicy | None = None):
        import psycopg

        self._psycopg, self.url, self.ca_file = psycopg, url, ca_file
        self.errors = psycopg.Error
        self.policy = policy or LockPolicy(wait=0, budget=0)
        self.conn = self._connect(connect_timeout, ca_file)
        # The session's own settings: a statement that waits for a table lock longer than this gives way
        if self.policy.wait:
            self.conn.execute(f"SET lock_timeout = {int(self.policy.wait * 1000)}")
        if self.policy.statement_timeout:
            self.conn.execute(f"SET statement_timeout = {int(self.policy.statement_timeout * 1000)}")
        self._watch: _BlockerWatch | None = None

    def _connect(self, timeout: float, ca_file: str | None, application: str = "initpipeline-migrate") -> Any:
        from psycopg.conninfo import conninfo_to_dict

        def verdict(exc: Any) -> tuple[str, bool]:
            text = str(exc).strip()
            reason = self.redact(" ".join(line.strip() for line in text.splitlines()) or type(exc).__name__)
            return reason, not any(marker in text for marker in PERMANENT_CONNECT_ERRORS)
        # the step's caBundle, unless the URL names its own root certificate
        extra = {"sslrootcert": ca_file} if ca_file and "sslrootcert" not in conninfo_to_dict(self.url) else {}
        return connect_retrying(lambda: self._psycopg.connect(
            self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name=application,
            **extra), self._psycopg.Error, verdict, timeout)

    def redact(self, text: str) -> str:
        password = ""
        try:
            from psycopg.conninfo import conninfo_to_dict

            password = str(conninfo_to_dict(self.url).get("password") or "")
        except Exception:
            pass
        return redact(text.strip(), password, self.url)

    def own_lock(self, table: str) -> LockKey:
        return lock_key(table)

    def lock(self, keys: list[LockKey], timeout: float) -> None:
        """Take every key's session advisory lock, in order, within timeout."""
        def try_lock(key: LockKey) -> bool:
            row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            return bool(row and row[0])
        take_locks(keys, timeout, try_lock)

    def _in_transaction(self) -> bool:
        return bool(self.conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE)

    def atomic(self, *writes: Any) -> None:
        """Run history writes in one transaction of their own."""
        self.conn.execute("BEGIN")
        try:
            for write in writes:
                write()
            self.conn.execute("COMMIT")
        except BaseException:
            if self._in_transaction():
                self.conn.execute("ROLLBACK")
            raise

    def run(self, action: Action, ledger: Ledger, may_leave_transaction: bool, give_way: GiveWay) -> float:
        """Run an action's parts and record it. A transactional part that fails leaves nothing behind;
        may_leave_transaction: a part that PostgreSQL refuses to run in a transaction (SQLSTATE 25001) runs
        again outside one, as golang-migrate and Flyway run such files. A statement that gives up waiting for
        a lock (lock_timeout) is retried, paced by give_way: the whole part in a transaction, or from that
        statement on outside one."""
        started = time.monotonic()
        parts = action.parts or ()
        for index, part in enumerate(parts):
            first, last = index == 0, index == len(parts) - 1
            if part.transactional:
                try:
                    self._retrying_transaction(action, ledger, part.sql, index, last, started, give_way)
                    continue
                except _RolledBack as failed:
                    if not (may_leave_transaction and failed.sqlstate == IN_TRANSACTION_BLOCK and first):
                        raise self._failure(action, ledger, failed, earlier_parts=index) from None
                    log(f"{action.label} cannot run inside a transaction ({failed.detail}); running it statement "
                        "by statement outside one, as its tool does")
            self._outside_transaction(action, ledger, part.sql, first, last, started, index, give_way)
        return time.monotonic() - started

    def _retrying_transaction(self, action: Action, ledger: Ledger, sql: str, index: int, last: bool,
                              started: float, give_way: GiveWay) -> None:
        while True:
            attempt = time.monotonic()
            try:
                with self._watching():
                    self._in_one_transaction(action, ledger, sql, index == 0, last, started)
                return
            except _RolledBack as failed:
                if failed.sqlstate != LOCK_NOT_AVAILABLE:
                    raise
                try:
                    give_way.gave_way(action.label, self._last_wait(sql), time.monotonic() - attempt)
                except BudgetSpent as spent:
                    if index:
                        raise StepError(Exit.DIRTY, (
                            f"{spent.message}. Section {index + 1} was rolled back, the {index} before it stay "
                            f"applied. {ledger.dirty_help(action.migration.version)}")) from None
                    raise StepError(Exit.LOCK_BUDGET, f"{spent.message}; it was rolled back, nothing of it "
                                                      "was applied") from None

    def _in_one_transaction(self, action: Action, ledger: Ledger, sql: str, first: bool, last: bool,
                            started: float) -> None:
        self.conn.execute("BEGIN")
        try:
            if first:
                ledger.begin(action)
            if has_code(sql):
                # No parameters: psycopg sends the SQL as one simple query, so it may hold many statements.
                self.conn.execute(sql.encode())
            ended_by_file = not self._in_transaction()
            if last:
                if ended_by_file:
                    self.atomic(lambda: ledger.finish(action, _millis(started)))
                else:
                    ledger.finish(action, _millis(started))
            if not ended_by_file:
                self.conn.execute("COMMIT")
        except self._psycopg.Error as exc:
            self._refuse_broken(action, exc)
            intact = self._in_transaction()  # False: the file's own COMMIT or ROLLBACK ended ours
            if intact:
                self.conn.execute("ROLLBACK")
                raise _RolledBack(exc, self.redact) from None
            raise StepError(Exit.DIRTY, self.redact(
                f"migration {action.label} failed after it ended the runner's transaction with a COMMIT or "
                f"ROLLBACK of its own, so what ran before that stays: {_describe(exc)}. "
                f"{ledger.dirty_help(action.migration.version)}")) from None

    def _outside_transaction(self, action: Action, ledger: Ledger, sql: str, first: bool, last: bool,
                             started: float, earlier_parts: int, give_way: GiveWay) -> None:
        if first:
            self.atomic(lambda: ledger.begin(action))
        statements = split_statements(sql)
        number, retrying = 1, False
        while number <= len(statements):
            statement, attempt = statements[number - 1], time.monotonic()
            try:
                with self._watching():
                    if retrying:
                        self._drop_invalid_index(statement)
                    self.conn.execute(statement.encode())
                number, retrying = number + 1, False
                continue
            except self._psycopg.Error as exc:
                self._refuse_broken(action, exc)
                if self._in_transaction():
                    self.conn.execute("ROLLBACK")
                kept = (f"the {number - 1} statement(s) before it stay applied" if number > 1
                        else "nothing of it was applied")
                if earlier_parts:
                    kept += f", and so do the {earlier_parts} section(s) before this one"
                recorded = "" if ledger.layout == DBMATE else f"{ledger.table} says so. "
                if getattr(exc, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise StepError(Exit.DIRTY, self.redact(
                        f"migration {action.label} failed at statement {number} of {len(statements)}, outside a "
                        f"transaction: {_describe(exc)}; {kept}. {recorded}"
                        f"{ledger.dirty_help(action.migration.version)}")) from None
            try:
                give_way.gave_way(action.label, self._last_wait(statement), time.monotonic() - attempt)
                retrying = True
            except BudgetSpent as spent:
                if first and number == 1:
                    self.atomic(lambda: ledger.abandon(action))
                    raise StepError(Exit.LOCK_BUDGET, f"{spent.message}; nothing of it was applied") from None
                raise StepError(Exit.DIRTY, (f"{spent.message}, at statement {number} of {len(statements)} outside "
                                             f"a transaction; {kept}. {recorded}"
                                             f"{ledger.dirty_help(action.migration.version)}")) from None
        if last:
            self.atomic(lambda: ledger.finish(action, _millis(started)))

    def _drop_invalid_index(self, statement: str) -> None:
        """A CREATE INDEX CONCURRENTLY that gave up leaves its index behind, INVALID, which the retry would
        collide with (or skip, with IF NOT EXISTS): drop it first, as PostgreSQL's docs advise."""
        named = _CONCURRENT_INDEX.match(statement)
        if not named:
            return
        row = self.conn.execute(
            "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.oid = to_regclass(%s) AND NOT i.indisvalid", (named.group(1),)).fetchone()
        if row:
            log(f"dropping the INVALID index {row[0]} that the statement left behind, before its retry")
            # a name that PostgreSQL itself printed as a regclass: quoted where it needs to be
            self.conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {row[0]}".encode())

    def _watching(self) -> _BlockerWatch:
        """Watch for blockers while a statement runs (a second session: the waiting one cannot ask)."""
        if self._watch is None:
            self._watch = _BlockerWatch(
                lambda: self._connect(CONNECT_TIMEOUT, self.ca_file, "initpipeline-migrate-watch"),
                self.conn.info.backend_pid, self.policy.wait or 1.0)
        return self._watch

    def _last_wait(self, sql: str) -> Wait:
        """What the watch saw; the table from the SQL when PostgreSQL did not say (CONCURRENTLY waits for
        transactions, not for a table's lock)."""
        seen = self._watch.last() if self._watch is not None else Wait("", ())
        return seen if seen.table else replace(seen, table=named_table(sql))

    def _refuse_broken(self, action: Action, exc: Any) -> None:
        """A connection that broke mid-way (the server restarted, a proxy cut it) cannot be asked anything."""
        if self.conn.broken:
            raise StepError(Exit.DATABASE, self.redact(
                f"the connection to the database broke during {action.label}: {_describe(exc)}. PostgreSQL rolls "
                "back a transaction that was in flight; the next run reads the history and goes on from there"))

    def _failure(self, action: Action, ledger: Ledger, failed: _RolledBack, earlier_parts: int) -> StepError:
        if earlier_parts:
            return StepError(Exit.DIRTY, (
                f"migration {action.label} failed in section {earlier_parts + 1}: {failed.detail}; that section was "
                f"rolled back, the {earlier_parts} before it stay applied. "
                f"{ledger.dirty_help(action.migration.version)}"))
        hint = ""
        if failed.sqlstate == IN_TRANSACTION_BLOCK:
            hint = {DBMATE: " Mark the section '-- migrate:up transaction:false', as dbmate requires.",
                    PLAIN: f" Put the line '{PLAIN_NO_TRANSACTION}' at the top of the file."}.get(
                ledger.layout, "")
        return StepError(Exit.MIGRATION, f"migration {action.label} failed and was rolled back: {failed.detail}{hint}")

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
        self.conn.close()  # also releases the session's advisory locks


class _BlockerWatch:
    """A thread with its own session that, while the runner's statement runs, asks PostgreSQL every quarter of
    the lock timeout who blocks it (pg_blocking_pids) and on which table it waits; the last answer stays for
    the message when the statement gives up. It reads only the catalog and pg_stat_activity (whose user,
    address and state columns of other users' sessions need the pg_read_all_stats role)."""

    def __init__(self, connect: Callable[[], Any], backend_pid: int, lock_wait: float):
        self._connect, self._pid = connect, backend_pid
        self._interval = max(0.05, min(0.25, lock_wait / 4))
        self._running = threading.Event()
        self._closed = False
        self._seen = Wait("", ())
        self._conn: Any = None
        self._thread = threading.Thread(target=self._loop, name="blocker-watch", daemon=True)
        self._thread.start()

    def __enter__(self) -> _BlockerWatch:
        self._seen = Wait("", ())
        self._running.set()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running.clear()

    def last(self) -> Wait:
        return self._seen

    def close(self) -> None:
        self._closed = True
        self._running.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        while True:
            self._running.wait()
            if self._closed:
                break
            time.sleep(self._interval)
            if not self._running.is_set() or self._closed:
                continue
            try:
                seen = self._sample()
            except Exception as exc:  # the watch only adds words to a message: never fail the migration
                seen = Wait("", (), note=f"cannot tell who: {type(exc).__name__}")
            if seen.table or seen.blockers or seen.note:
                self._seen = seen
        if self._conn is not None:
            self._conn.close()

    def _sample(self) -> Wait:
        if self._conn is None:
            self._conn = self._connect()
        rows = self._conn.execute(
            "SELECT b.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''), "
            "coalesce(host(a.client_addr), ''), coalesce(a.state, ''), "
            "extract(epoch FROM clock_timestamp() - a.xact_start)::float8 "
            "FROM unnest(pg_blocking_pids(%s)) AS b(pid) LEFT JOIN pg_stat_activity a ON a.pid = b.pid "
            "ORDER BY a.xact_start NULLS LAST", (self._pid,)).fetchall()
        if not rows:
            return Wait("", ())
        table = self._conn.execute(
            "SELECT relation::regclass::text FROM pg_locks WHERE pid = %s AND NOT granted AND relation IS NOT NULL "
            "LIMIT 1", (self._pid,)).fetchone()
        blockers = tuple(Blocker(f"pid {pid}", user, app, address, state, opened)
                         for pid, user, app, address, state, opened in rows)
        return Wait(table[0] if table else "", blockers)


class _RolledBack(Exception):
    def __init__(self, exc: Any, redact_text: Any):
        super().__init__()
        self.sqlstate = getattr(exc, "sqlstate", None) or ""
        self.detail = redact_text(_describe(exc))


def _describe(exc: Any) -> str:
    diag = getattr(exc, "diag", None)
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    state = f" (SQLSTATE {exc.sqlstate})" if getattr(exc, "sqlstate", None) else ""
    where = f"; {diag.context.strip().splitlines()[0]}" if diag is not None and diag.context else ""
    return f"{detail}{state}{where}"


def _millis(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
