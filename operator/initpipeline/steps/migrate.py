"""`initpipeline step migrate`: apply versioned SQL files to PostgreSQL exactly once.

Files run in natural name order (2_x.sql before 10_y.sql), each in its own
transaction, recorded with its checksum in a history table. A session-level
advisory lock serialises concurrent runners (replicas, restarts).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from ..api import DEFAULT_CONNECT_TIMEOUT, DEFAULT_HISTORY_TABLE, DEFAULT_LOCK_TIMEOUT
from ..validation import SQL_IDENTIFIER
from .common import Exit, StepError, UsageError, finish, format_seconds, log, redact

CONNECT_TIMEOUT = 10


@dataclass(frozen=True)
class Migration:
    name: str
    path: str
    checksum: str


def natural_key(name: str) -> list[Any]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def read_migrations(folder: str) -> list[Migration]:
    """*.sql files of folder in natural order; hidden entries (a ConfigMap's ..data) skipped."""
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise StepError(Exit.SQL_DIR, f"cannot read --sql-dir {folder}: {exc.strerror}") from None
    found = []
    for name in sorted((n for n in names if n.endswith(".sql") and not n.startswith(".")), key=natural_key):
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as handle:
                found.append(Migration(name, path, hashlib.sha256(handle.read()).hexdigest()))
        except OSError as exc:
            raise StepError(Exit.SQL_DIR, f"cannot read {path}: {exc.strerror}") from None
    ignored = sorted(n for n in names if not n.endswith(".sql") and not n.startswith("."))
    if ignored:
        log(f"ignoring files without .sql: {', '.join(ignored)}")
    return found


def lock_key(table: str) -> int:
    """A stable signed 64-bit advisory-lock key per history table."""
    return int.from_bytes(hashlib.sha256(f"initpipeline:{table}".encode()).digest()[:8], "big", signed=True)


# Failures that waiting does not cure: report them at once.
PERMANENT_CONNECT_ERRORS = ("authentication failed", "does not exist", "no pg_hba.conf entry", "invalid",
                            "SSL", "certificate")


def _password_of(url: str) -> str:
    try:
        from psycopg.conninfo import conninfo_to_dict

        return str(conninfo_to_dict(url).get("password") or "")
    except Exception:
        return ""


class Runner:
    def __init__(self, url: str, table: str, connect_timeout: float = 0):
        import psycopg
        from psycopg import sql

        self._psycopg, self._sql, self.url, self.table = psycopg, sql, url, table
        self.ident = sql.Identifier(*table.split("."))
        self.password = _password_of(url)
        self.conn = self._connect(connect_timeout)

    def _connect(self, timeout: float) -> Any:
        """Connect, retrying while the database is not up yet (starting, or its Service not routed)."""
        deadline = time.monotonic() + timeout
        interval, announced = 0.2, ""
        while True:
            try:
                return self._psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                             application_name="initpipeline-migrate")
            except self._psycopg.Error as exc:
                reason = self.redact(str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__)
                permanent = any(marker in str(exc) for marker in PERMANENT_CONNECT_ERRORS)
                if permanent or time.monotonic() + interval > deadline:
                    raise StepError(Exit.DATABASE, f"cannot connect to the database: {self.redact(str(exc))}") from None
                if reason != announced:
                    log(f"database not reachable yet ({reason}); retrying for up to {format_seconds(timeout)}")
                    announced = reason
                time.sleep(interval)
                interval = min(interval * 2, 2.0)

    def redact(self, text: str) -> str:
        password = ""
        try:
            from psycopg.conninfo import conninfo_to_dict

            password = str(conninfo_to_dict(self.url).get("password") or "")
        except Exception:
            pass
        return redact(text.strip(), password, self.url)

    def lock(self, timeout: float) -> None:
        key = lock_key(self.table)
        deadline = time.monotonic() + timeout
        interval, announced = 0.05, False
        while True:
            row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if row and row[0]:
                return
            if not announced:
                log("another runner holds the migration lock; waiting for it")
                announced = True
            if time.monotonic() + interval > deadline:
                raise StepError(Exit.LOCK_TIMEOUT,
                                f"could not take the migration lock within {format_seconds(timeout)}")
            time.sleep(interval)
            interval = min(interval * 2, 1.0)

    def table_exists(self) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (self.table,)).fetchone()
        return bool(row and row[0])

    def ensure_table(self) -> None:
        self.conn.execute(self._sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, checksum text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now(), execution_ms integer NOT NULL)").format(self.ident))

    def applied(self) -> dict[str, str]:
        if not self.table_exists():
            return {}
        rows = self.conn.execute(self._sql.SQL("SELECT name, checksum FROM {}").format(self.ident)).fetchall()
        return {name: checksum for name, checksum in rows}

    def apply(self, migration: Migration) -> float:
        with open(migration.path, encoding="utf-8") as handle:
            text = handle.read()
        started = time.monotonic()
        try:
            with self.conn.transaction():
                # No parameters: psycopg sends the file as one simple query, so it may hold many statements.
                self.conn.execute(text.encode())
                self.conn.execute(self._sql.SQL("INSERT INTO {} (name, checksum, execution_ms) VALUES (%s, %s, %s)")
                                  .format(self.ident),
                                  (migration.name, migration.checksum, int((time.monotonic() - started) * 1000)))
        except self._psycopg.Error as exc:
            diag = getattr(exc, "diag", None)
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            state = f" (SQLSTATE {exc.sqlstate})" if getattr(exc, "sqlstate", None) else ""
            where = f"; {diag.context.strip().splitlines()[0]}" if diag is not None and diag.context else ""
            raise StepError(Exit.MIGRATION, self.redact(
                f"migration {migration.name} failed and was rolled back: {detail}{state}{where}")) from None
        return time.monotonic() - started

    def close(self) -> None:
        self.conn.close()


def find_drift(files: list[Migration], applied: dict[str, str]) -> list[str]:
    return [f"{m.name} was applied with sha256 {applied[m.name]} but the file now has sha256 {m.checksum}"
            for m in files if m.name in applied and applied[m.name] != m.checksum]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "migrate", help="apply versioned SQL files to PostgreSQL exactly once",
        description="Apply the *.sql files of --sql-dir in natural name order, each once and in its own transaction.")
    parser.add_argument("--sql-dir", required=True, metavar="DIR", help="folder of *.sql files")
    parser.add_argument("--database-url-env", required=True, metavar="NAME",
                        help="environment variable that holds the PostgreSQL URL (never logged)")
    parser.add_argument("--lock-timeout", type=float, default=float(DEFAULT_LOCK_TIMEOUT), metavar="SECONDS",
                        help="how long to wait for another runner's lock (default: %(default)s)")
    parser.add_argument("--connect-timeout", type=float, default=float(DEFAULT_CONNECT_TIMEOUT), metavar="SECONDS",
                        help="keep retrying to connect while the database is unreachable (default: %(default)s)")
    parser.add_argument("--history-table", default=DEFAULT_HISTORY_TABLE, metavar="[SCHEMA.]TABLE",
                        help="where applied migrations are recorded (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be applied, change nothing")
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        if not SQL_IDENTIFIER.match(args.history_table):
            raise UsageError(f"--history-table: expected a lower-case [schema.]table name, got {args.history_table!r}")
        for option, value in (("--lock-timeout", args.lock_timeout), ("--connect-timeout", args.connect_timeout)):
            if value < 0:
                raise UsageError(f"{option}: must be 0 or more, got {value}")
        url = os.environ.get(args.database_url_env, "")
        if not url:
            raise UsageError(f"--database-url-env: environment variable {args.database_url_env} is empty or unset")
        files = read_migrations(args.sql_dir)
    except StepError as exc:
        return finish(exc.code, f"migrate: {exc.message}")
    started = time.monotonic()
    runner: Runner | None = None
    try:
        runner = Runner(url, args.history_table, args.connect_timeout)
        if args.dry_run:
            return _dry_run(runner, files)
        runner.lock(args.lock_timeout)
        runner.ensure_table()
        applied = runner.applied()
        drift = find_drift(files, applied)
        if drift:
            raise StepError(Exit.DRIFT, "refusing to migrate: applied files have changed:\n" + "\n".join(drift))
        missing = sorted(set(applied) - {m.name for m in files}, key=natural_key)
        if missing:
            log(f"recorded as applied but not in --sql-dir (left alone): {', '.join(missing)}")
        pending = [m for m in files if m.name not in applied]
        done = []
        for migration in pending:
            log(f"applying {migration.name}")
            took = runner.apply(migration)
            log(f"applied {migration.name} in {format_seconds(took)}")
            done.append(migration.name)
        summary = (f"applied {len(done)} migration(s) in {format_seconds(time.monotonic() - started)}"
                   + (f": {', '.join(done)}" if done else "") + f"; {len(files) - len(pending)} already applied")
        return finish(Exit.OK, summary)
    except StepError as exc:
        return finish(exc.code, f"migrate: {exc.message}")
    finally:
        if runner is not None:
            runner.close()  # also releases the session's advisory lock


def _dry_run(runner: Runner, files: list[Migration]) -> int:
    applied = runner.applied()
    drift = find_drift(files, applied)
    pending = [m.name for m in files if m.name not in applied]
    lines = [f"would apply {len(pending)} migration(s)" + (f": {', '.join(pending)}" if pending else ""),
             f"{len(files) - len(pending)} already applied"]
    if drift:
        return finish(Exit.DRIFT, "\n".join([*lines, "drift (a real run would refuse):", *drift]))
    return finish(Exit.OK, "\n".join(lines))
