"""The connection to MySQL or MariaDB (a mysql:// URL): connecting with retries, named locks, and running
one action with what MySQL allows.

What differs from PostgreSQL, and what the runner does about it:
- MySQL commits DDL (CREATE, ALTER, DROP...) at once, before and after the statement, even inside a
  transaction, and even when the statement fails. So a file runs in a transaction, which keeps a file of
  data changes all or nothing; once a DDL statement has run, what ran before the failure stays. The
  runner then leaves the history saying so (golang-migrate's dirty flag, a failed Flyway row, a dirty plain
  row; dbmate records nothing) and exits 26, as on PostgreSQL for a file outside a transaction. A file
  whose first statement fails, or whose transaction was still open, leaves nothing: exit 20.
- A file goes to the server as one multi-statement request, as golang-migrate and dbmate send it, so the
  server's own parser splits it (stored procedures need no DELIMITER). `DELIMITER` lines, a mysql client
  command that Flyway understands, are honoured: the statements between them are sent one by one.
- Locks are named locks (GET_LOCK), server-wide, so their names carry the database's name.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from typing import Any

from ..common import Exit, StepError, log, redact
from ..mysqlurl import error_code, mysql_connect, parse_mysql_url, tls_failed
from .driver import connect_retrying, take_locks
from .history import MYSQL, Ledger, LockKey
from .layouts import DBMATE
from .locks import Blocker, BudgetSpent, GiveWay, LockPolicy, Wait, named_table
from .plan import Action
from .sqltext import skip_quoted

CONNECT_TIMEOUT = 10
# Client errors that waiting cures: the server is not up or not reachable yet, or restarting.
RETRIED_ERRORS = {2002, 2003, 2006, 2013, 1040, 1053}
# ER_LOCK_WAIT_TIMEOUT: a metadata lock (lock_wait_timeout) or a row lock (innodb_lock_wait_timeout) not granted
LOCK_WAIT_TIMEOUT = 1205
ACCESS_DENIED = (1227, 1142, 1044)  # a privilege is missing (PROCESS, to see others' sessions)
_DDL = re.compile(r"(?:^|;)\s*(?:CREATE|ALTER|DROP|RENAME|TRUNCATE)\b", re.IGNORECASE | re.MULTILINE)
_DELIMITER = re.compile(r"^[ \t]*DELIMITER[ \t]+(\S+)[ \t]*$", re.IGNORECASE | re.MULTILINE)


def own_lock_name(database: str, table: str) -> str:
    """The runner's named lock for one history table (at most 64 characters, as MySQL allows)."""
    return "initpipeline-" + hashlib.sha256(f"{database}.{table}".encode()).hexdigest()[:40]


def mysql_chunks(sql: str) -> list[str]:
    """What to send, in order: the text between DELIMITER lines as one request while the delimiter is ';',
    else split at the custom delimiter into single statements. Blank pieces are dropped."""
    chunks: list[str] = []
    delimiter, start = ";", 0
    for match in _DELIMITER.finditer(sql):
        chunks += _pieces(sql[start:match.start()], delimiter)
        delimiter, start = match.group(1), match.end()
    chunks += _pieces(sql[start:], delimiter)
    return [c for c in chunks if _has_code(c)]


def _pieces(text: str, delimiter: str) -> list[str]:
    if delimiter == ";":
        return [text]
    pieces, start, i = [], 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"`":
            i = skip_quoted(text, i, ch, backslash=ch != "`")
        elif text.startswith("--", i) or ch == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
        elif text.startswith(delimiter, i):
            pieces.append(text[start:i])
            start = i = i + len(delimiter)
        else:
            i += 1
    pieces.append(text[start:])
    return pieces


def _has_code(text: str) -> bool:
    """Whether text holds more than blanks and comments."""
    stripped = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    stripped = re.sub(r"(--|#)[^\n]*", " ", stripped)
    return bool(stripped.strip(" \t\r\n;"))


class _Connection:
    """psycopg's conn.execute(...).fetchone() over a PyMySQL connection, for the history tables."""

    def __init__(self, raw: Any):
        self.raw = raw

    def execute(self, query: str, params: tuple[Any, ...] | None = None) -> Any:
        cursor = self.raw.cursor()
        cursor.execute(query, params)
        return cursor


class MySQLDatabase:
    """The MySQL and MariaDB driver (PyMySQL), a Driver."""

    dialect = MYSQL

    def __init__(self, url: str, connect_timeout: float = 0, ca_file: str | None = None,
                 policy: LockPolicy | None = None):
        import pymysql

        self._pymysql, self.url = pymysql, url
        self.errors = pymysql.MySQLError
        try:
            target = parse_mysql_url(url)
        except ValueError as exc:
            raise StepError(Exit.DATABASE, f"the database URL is not usable: {exc}") from None
        self.password, self.database = target.password, target.database
        if not self.database:
            raise StepError(Exit.DATABASE, f"the database URL names no database: {self.redact(url)}")
        self.raw = self._connect(connect_timeout, ca_file)
        self.conn = _Connection(self.raw)
        self.policy = policy or LockPolicy(wait=0, budget=0)
        self._apply_policy()

    def _apply_policy(self) -> None:
        """The session's own lock waits (whole seconds, at least 1, as MySQL takes them) and statement limit."""
        if self.policy.wait:
            seconds = max(1, math.ceil(self.policy.wait))
            self.conn.execute(f"SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds}")
        if self.policy.statement_timeout:
            version = str(self.conn.execute("SELECT VERSION()").fetchone()[0])
            if "mariadb" in version.lower():
                self.conn.execute(f"SET SESSION max_statement_time = {float(self.policy.statement_timeout)}")
            else:  # MySQL limits only SELECT statements, in milliseconds
                self.conn.execute(f"SET SESSION max_execution_time = {int(self.policy.statement_timeout * 1000)}")
                log("the statement timeout applies only to SELECT statements on MySQL (max_execution_time)")

    def _connect(self, timeout: float, ca_file: str | None) -> Any:
        from pymysql.constants import CLIENT

        def verdict(exc: Any) -> tuple[str, bool]:
            return self.redact(_describe(exc)), error_code(exc) in RETRIED_ERRORS and not tls_failed(exc)
        return connect_retrying(lambda: mysql_connect(
            self.url, CONNECT_TIMEOUT, ca_file, client_flag=CLIENT.MULTI_STATEMENTS,
            program_name="initpipeline-migrate"),
            self._pymysql.MySQLError, verdict, timeout)

    def redact(self, text: str) -> str:
        return redact(text.strip(), self.password, self.url)

    def own_lock(self, table: str) -> LockKey:
        return own_lock_name(self.database, table)

    def lock(self, keys: list[LockKey], timeout: float) -> None:
        """Take every named lock, in order, within timeout (they are the session's until it ends)."""
        def try_lock(key: LockKey) -> bool:
            row = self.conn.execute("SELECT GET_LOCK(%s, 0)", (str(key),)).fetchone()
            return bool(row and row[0] == 1)
        take_locks(keys, timeout, try_lock)

    def atomic(self, *writes: Any) -> None:
        """Run history writes in one transaction of their own."""
        self.raw.begin()
        try:
            for write in writes:
                write()
            self.raw.commit()
        except BaseException:
            self.raw.rollback()
            raise

    def _in_transaction(self) -> bool:
        row = self.conn.execute("SELECT @@in_transaction").fetchone()
        return bool(row and row[0])

    def _send(self, chunk: str) -> int:
        """Run one request; the results it gave before an error (or all of them)."""
        cursor = self.raw.cursor()
        done = 0
        try:
            cursor.execute(chunk)
            done += 1
            while cursor.nextset():
                done += 1
        except self._pymysql.MySQLError as exc:
            raise _Failed(exc, done) from None
        return done

    def run(self, action: Action, ledger: Ledger, may_leave_transaction: bool, give_way: GiveWay) -> float:
        """Run an action's parts and record it; see the module's words on DDL. A part that gave up waiting for
        a lock is retried, paced by give_way, when nothing of it stays (rolled back, or its first statement)."""
        started = time.monotonic()
        self.atomic(lambda: ledger.begin(action))
        for index, part in enumerate(action.parts or ()):
            while not self._run_part(action, ledger, index, part.sql, part.transactional, give_way):
                pass
        millis = int((time.monotonic() - started) * 1000)
        self.atomic(lambda: ledger.finish(action, millis))
        return time.monotonic() - started

    def _run_part(self, action: Action, ledger: Ledger, index: int, sql: str, transactional: bool,
                  give_way: GiveWay) -> bool:
        """Whether the part ran; False: it gave way to a lock, left nothing, and is to be run again."""
        ran, attempt = 0, time.monotonic()
        if transactional:
            self.raw.begin()
        try:
            for chunk in mysql_chunks(sql):
                ran += self._send(chunk)
            if transactional:
                self.raw.commit()
            return True
        except _Failed as failed:
            self._refuse_broken(action, failed.exc)
            rolled_back = transactional and self._in_transaction()
            if rolled_back:
                self.raw.rollback()
            ran += failed.done
            # retried only when surely nothing stays: a DDL statement before the failure committed itself
            surely_nothing = ran == 0 or (rolled_back and not _DDL.search(sql))
            if error_code(failed.exc) == LOCK_WAIT_TIMEOUT and surely_nothing:
                self._give_way(action, ledger, index, self._wait(sql, ran), give_way, attempt)
                return False
            raise self._failure(action, ledger, index, failed.exc, rolled_back, ran) from None

    def _give_way(self, action: Action, ledger: Ledger, index: int, wait: Wait, give_way: GiveWay,
                  attempt: float) -> None:
        """The part gave way to a lock and left nothing: it runs again, unless the retry budget is spent."""
        try:
            give_way.gave_way(action.label, wait, time.monotonic() - attempt)
        except BudgetSpent as spent:
            if index == 0:
                self.atomic(lambda: ledger.abandon(action))
                raise StepError(Exit.LOCK_BUDGET, f"{spent.message}; nothing of it was applied") from None
            raise StepError(Exit.DIRTY, (
                f"{spent.message}; the {index} section(s) before this one stay applied. "
                f"{ledger.dirty_help(action.migration.version)}")) from None

    def _failure(self, action: Action, ledger: Ledger, index: int, exc: Any, rolled_back: bool,
                 ran: int) -> StepError:
        """The error of a part that failed: nothing stays (the migration is abandoned), or some of it does."""
        nothing_stays = rolled_back or ran == 0
        if index == 0 and nothing_stays:
            self.atomic(lambda: ledger.abandon(action))
            how = "was rolled back" if rolled_back and ran else "changed nothing: its first statement failed"
            return StepError(Exit.MIGRATION, f"migration {action.label} failed and {how}: "
                                             f"{self.redact(_describe(exc))}")
        kept = (f"the {index} section(s) before this one stay applied" if index and nothing_stays
                else "what ran of it before the failure stays applied: MySQL commits DDL statements at once")
        recorded = "" if ledger.layout == DBMATE else f"{ledger.table} says so. "
        return StepError(Exit.DIRTY, self.redact(
            f"migration {action.label} failed: {_describe(exc)}; {kept}. {recorded}"
            f"{ledger.dirty_help(action.migration.version)}"))

    def _wait(self, sql: str, ran: int) -> Wait:
        """Who holds locks now, asked after the statement gave up: the sessions with an open transaction
        (InnoDB's list, which shows metadata-lock holders too, as their transactions hold them), oldest first.
        Without the PROCESS privilege MySQL shows only this user's own sessions."""
        table = named_table(sql) if ran == 0 else ""  # MySQL does not say which table it waited for
        try:
            rows = self.conn.execute(
                "SELECT p.ID, p.USER, p.HOST, p.COMMAND, TIMESTAMPDIFF(SECOND, t.trx_started, NOW()) "
                "FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p "
                "ON p.ID = t.trx_mysql_thread_id WHERE p.ID <> CONNECTION_ID() ORDER BY t.trx_started").fetchall()
        except self._pymysql.MySQLError as exc:
            reason = ("the PROCESS privilege is missing" if error_code(exc) in ACCESS_DENIED
                      else self.redact(_describe(exc)))
            return Wait(table, (), note=f"cannot tell who: {reason}")
        blockers = tuple(Blocker(f"connection {cid}", str(user or ""), "", str(host or "").rsplit(":", 1)[0],
                                 str(command or "").lower(), float(opened) if opened is not None else None)
                         for cid, user, host, command, opened in rows)
        return Wait(table, blockers)

    def _refuse_broken(self, action: Action, exc: Any) -> None:
        code = exc.args[0] if exc.args else 0
        if code in (2006, 2013):  # server has gone away, lost connection
            raise StepError(Exit.DATABASE, self.redact(
                f"the connection to the database broke during {action.label}: {_describe(exc)}. What a DDL "
                "statement did stays; the history says what is known. Check the database before the next run"))

    def close(self) -> None:
        self.raw.close()  # also releases the session's named locks


class _Failed(Exception):
    def __init__(self, exc: Any, done: int):
        super().__init__()
        self.exc, self.done = exc, done


def _describe(exc: Any) -> str:
    if len(exc.args) >= 2:
        return f"{exc.args[1]} (MySQL error {exc.args[0]})"
    return str(exc) or type(exc).__name__
