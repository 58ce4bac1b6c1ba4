"""`initpipeline step migrate`: apply a folder of SQL migrations to PostgreSQL, or to MySQL or MariaDB (a
mysql:// URL), each exactly once.

The folder's layout (golang-migrate, Flyway, dbmate or plain numbered files) decides which files apply,
in which order, which undo them, and which history table records them: the tool's own, kept as the tool
keeps it. Session locks (PostgreSQL's advisory locks, MySQL's named locks) serialise concurrent runners
(replicas, restarts) and the tool itself.
Undo files run only with --to.
"""

from __future__ import annotations

import argparse
import os
import stat
import time
import urllib.parse
from typing import Any

from ...spec.formats import MIGRATION_VERSION, SQL_IDENTIFIER
from ...spec.names import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_LOCK_RETRY_BUDGET,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_TABLE_LOCK_TIMEOUT,
)
from ..common import Exit, StepError, UsageError, finish, format_seconds, log, printable
from ..mysqlurl import MYSQL_SCHEMES
from .driver import Driver
from .history import DEFAULT_TABLES, LEDGERS, ForeignTable, Ledger
from .layouts import FLYWAY, GOLANG_MIGRATE, LAYOUTS, PLAIN, Folder, FolderError, SqlFile, natural_key, parse_folder
from .locks import GiveWay, LockPolicy
from .mysql import MySQLDatabase
from .plan import HELD, Plan, PlanError, plan_migrate, plan_rollback
from .postgres import PostgresDatabase, lock_key
from .rollout import BEFORE_ROLLOUT, LINT_BLOCK, LINT_CHOICES, WHEN, for_the_rollout

__all__ = ["add_parser", "lock_key", "natural_key", "run"]


def read_files(folder: str) -> list[SqlFile]:
    """The folder's *.sql and *.sql.conf files; hidden entries (a ConfigMap's ..data) skipped."""
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise StepError(Exit.SQL_DIR, f"cannot read --sql-dir {folder}: {exc.strerror}") from None
    wanted = [n for n in names if not n.startswith(".") and (n.endswith(".sql") or n.endswith(".sql.conf"))]
    for name in wanted:
        if printable(name) != name:  # its bytes are not UTF-8: no history table could record the name
            raise StepError(Exit.LAYOUT, f"{printable(name)} in --sql-dir: the file name is not UTF-8; nothing ran")
    # Every file is checked before any is read: a FIFO, socket or device would hang the runner or never end
    for name in sorted(wanted):
        path = os.path.join(folder, name)
        try:
            mode = os.stat(path).st_mode  # a ConfigMap's files are links to regular files: followed
        except OSError as exc:
            raise StepError(Exit.SQL_DIR, f"cannot read {path}: {exc.strerror}") from None
        if not stat.S_ISREG(mode):
            raise StepError(Exit.SQL_DIR, f"{path} is {_file_kind(mode)}, not a regular file; nothing ran")
    found = []
    for name in sorted(wanted):
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as handle:
                found.append(SqlFile(name, handle.read()))
        except OSError as exc:
            raise StepError(Exit.SQL_DIR, f"cannot read {path}: {exc.strerror}") from None
    ignored = sorted(n for n in names if not n.startswith(".") and n not in wanted)
    if ignored:
        log(f"ignoring files without .sql: {', '.join(ignored)}")
    return found


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "migrate", help="apply a folder of SQL migrations to PostgreSQL or MySQL/MariaDB exactly once",
        description="Apply the migrations of --sql-dir (golang-migrate, Flyway, dbmate or plain numbered files), "
                    "each once, recorded in the layout's own history table. Undo files run only with --to.")
    parser.add_argument("--sql-dir", required=True, metavar="DIR", help="folder of migration files")
    parser.add_argument("--database-url-env", required=True, metavar="NAME",
                        help="environment variable that holds the database URL: postgresql:// or mysql:// "
                             "(never logged)")
    parser.add_argument("--layout", choices=LAYOUTS, metavar="|".join(LAYOUTS),
                        help="the folder's layout (default: detected from its files)")
    parser.add_argument("--to", metavar="VERSION",
                        help="roll back: run the undo files of every applied version above VERSION, newest first "
                             "(0: all of them); applies nothing")
    parser.add_argument("--runner-lock-timeout", "--lock-timeout", dest="runner_lock_timeout", type=float,
                        default=float(DEFAULT_LOCK_TIMEOUT), metavar="SECONDS",
                        help="how long to wait for another runner of the same history table, such as a second "
                             "replica's (default: %(default)s; --lock-timeout is the old name)")
    parser.add_argument("--table-lock-timeout", type=float, default=float(DEFAULT_TABLE_LOCK_TIMEOUT),
                        metavar="SECONDS",
                        help="how long one statement waits for a table or row lock that others hold before it gives "
                             "way and its file is retried: live queries queue behind a waiting ALTER (default: "
                             "%(default)s; 0: as long as the database's own setting)")
    parser.add_argument("--lock-retry-budget", type=float, default=float(DEFAULT_LOCK_RETRY_BUDGET),
                        metavar="SECONDS",
                        help="how long to keep retrying after a statement first gave way, then exit "
                             f"{int(Exit.LOCK_BUDGET)} (default: %(default)s)")
    parser.add_argument("--statement-timeout", type=float, default=0.0, metavar="SECONDS",
                        help="end a statement that runs longer (default: 0, no limit: a backfill may take long)")
    parser.add_argument("--connect-timeout", type=float, default=float(DEFAULT_CONNECT_TIMEOUT), metavar="SECONDS",
                        help="keep retrying to connect while the database is unreachable (default: %(default)s)")
    parser.add_argument("--history-table", metavar="[SCHEMA.]TABLE",
                        help="the history table (default: the layout's own: " +
                             ", ".join(f"{k} {v}" for k, v in DEFAULT_TABLES.items()) + ")")
    parser.add_argument("--when", choices=WHEN, default=BEFORE_ROLLOUT,
                        help="before-rollout: apply the files up to the first one marked "
                             "'-- initpipeline:after-rollout'; after-rollout: apply every pending file "
                             "(default: %(default)s)")
    parser.add_argument("--lint", choices=LINT_CHOICES, default=LINT_BLOCK,
                        help="what to do before the rollout with a statement that would break the version still "
                             f"serving: block (exit {int(Exit.UNSAFE)}, nothing runs), warn (log it), off "
                             "(default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="list what would run, change nothing")
    parser.add_argument("--ca-file", metavar="PATH",
                        help="PEM CA certificates for a verified TLS connection (PostgreSQL sslmode=verify-ca or "
                             "verify-full, MySQL ssl-mode=VERIFY_CA or VERIFY_IDENTITY) when the URL names none")
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        url = _check_arguments(args)
        folder = parse_folder(read_files(args.sql_dir), args.layout)
    except FolderError as exc:
        return finish(Exit.LAYOUT, f"migrate: {exc}; nothing was run")
    except StepError as exc:
        return finish(exc.code, f"migrate: {exc.message}")
    for note in folder.notes:
        log(note)
    table = args.history_table or DEFAULT_TABLES[folder.layout]
    log(f"layout {folder.layout}{'' if args.layout else ' (detected)'}: {len(folder.migrations)} migration(s)"
        + (f", {len(folder.repeatables)} repeatable" if folder.repeatables else "") + f"; history in {table}")
    started = time.monotonic()
    db: Driver | None = None
    try:
        policy = LockPolicy(args.table_lock_timeout, args.lock_retry_budget, args.statement_timeout)
        db = connect(url, args.connect_timeout, args.ca_file, policy)
        ledger = LEDGERS[folder.layout](db.conn, table, db.dialect)
        if args.dry_run:
            return _dry_run(db, ledger, folder, args)
        db.lock([db.own_lock(table), *ledger.tool_lock_keys()], args.runner_lock_timeout)
        plan = _plan(db, ledger, folder, args)
        for note in plan.notes:
            log(note)
        if plan.actions:
            db.atomic(ledger.ensure)
        done, give_way = [], GiveWay(policy)
        try:
            for action in plan.actions:
                log(("undoing " if action.undo else "applying ") + action.file)
                took = db.run(action, ledger, folder.layout in (GOLANG_MIGRATE, FLYWAY), give_way)
                log(f"{'undid' if action.undo else 'applied'} {action.file} in {format_seconds(took)}")
                done.append(action.file)
        except StepError as exc:
            raise StepError(exc.code, _with_lock_waits(exc.message, give_way)) from None
        return finish(Exit.OK, _with_lock_waits(_summary(plan, done, args.to, time.monotonic() - started), give_way))
    except (PlanError, StepError) as exc:
        return finish(exc.code, f"migrate: {exc.message}")
    except Exception as exc:
        if db is None or not isinstance(exc, db.errors):
            raise
        # reading or writing the history failed: the connection broke, or a permission is missing
        return finish(Exit.DATABASE, f"migrate: {db.redact(str(exc).strip() or type(exc).__name__)}")
    finally:
        if db is not None:
            db.close()  # also releases the session's locks


def connect(url: str, timeout: float, ca_file: str | None = None,
            policy: LockPolicy | None = None) -> Driver:
    if urllib.parse.urlsplit(url).scheme in MYSQL_SCHEMES:
        return MySQLDatabase(url, timeout, ca_file, policy)
    return PostgresDatabase(url, timeout, ca_file, policy)


def _with_lock_waits(message: str, give_way: GiveWay) -> str:
    """The message with the lock waits that the operator reads back into the status (once)."""
    waits = give_way.summary()
    if waits is None or waits.phrase() in message:
        return message
    return f"{message}; {waits.phrase()}"


def _check_arguments(args: argparse.Namespace) -> str:
    if args.history_table is not None and not SQL_IDENTIFIER.match(args.history_table):
        raise UsageError(f"--history-table: expected a lower-case [schema.]table name, got {args.history_table!r}")
    for option, value in (("--runner-lock-timeout", args.runner_lock_timeout),
                          ("--connect-timeout", args.connect_timeout),
                          ("--table-lock-timeout", args.table_lock_timeout),
                          ("--lock-retry-budget", args.lock_retry_budget),
                          ("--statement-timeout", args.statement_timeout)):
        if value < 0:
            raise UsageError(f"{option}: must be 0 or more, got {value}")
    if args.to is not None and not MIGRATION_VERSION.match(args.to):
        raise UsageError(f"--to: expected a version such as 3, 1.2 or 20240101120000, got {args.to!r}")
    url = os.environ.get(args.database_url_env, "")
    if not url:
        raise UsageError(f"--database-url-env: environment variable {args.database_url_env} is empty or unset")
    return str(url)


def _plan(db: Driver, ledger: Ledger, folder: Folder, args: argparse.Namespace) -> Plan:
    try:
        history = ledger.read()
    except ForeignTable as exc:
        raise PlanError(Exit.DRIFT, str(exc)) from None
    if folder.layout != PLAIN and ledger.table != DEFAULT_TABLES[PLAIN]:
        _refuse_plain_history(db, folder)
    if args.to is not None:
        return plan_rollback(folder, history, args.to)
    return for_the_rollout(plan_migrate(folder, history), args.when, args.lint, db.dialect)


def _refuse_plain_history(db: Driver, folder: Folder) -> None:
    """Files that an earlier release's plain runner applied must not be applied again under a new layout."""
    plain = LEDGERS[PLAIN](db.conn, DEFAULT_TABLES[PLAIN], db.dialect)
    if not plain.exists():
        return
    recorded = {a.name for a in plain.read().applied}
    ours = [m.name for m in (*folder.migrations, *folder.repeatables) if m.name in recorded]
    if ours:
        raise PlanError(Exit.DRIFT, f"{DEFAULT_TABLES[PLAIN]} records {len(ours)} of these files as applied by the "
                                    f"plain layout ({', '.join(ours[:4])}{'...' if len(ours) > 4 else ''}): set "
                                    f"the layout to plain to go on as before; the {folder.layout} layout would "
                                    "apply them again")


def _summary(plan: Plan, done: list[str], target: str | None, seconds: float) -> str:
    if target is not None:
        if not plan.actions:
            return plan.notes[0]
        return f"rolled back {len(done)} migration(s) to {target} in {format_seconds(seconds)}: {', '.join(done)}"
    notes = "".join(f"; {note}" for note in plan.notes if note.startswith(("the database is at", HELD)))
    return (f"applied {len(done)} migration(s) in {format_seconds(seconds)}"
            + (f": {', '.join(done)}" if done else "") + f"; {plan.already} already applied" + notes)


def _dry_run(db: Driver, ledger: Ledger, folder: Folder, args: argparse.Namespace) -> int:
    target = args.to
    try:
        plan = _plan(db, ledger, folder, args)
    except PlanError as exc:
        return finish(exc.code, f"migrate: {exc.message}")
    verb = "roll back" if target is not None else "apply"
    names = [a.file for a in plan.actions]
    lines = [f"would {verb} {len(names)} migration(s)" + (f": {', '.join(names)}" if names else "")]
    if target is None:
        lines.append(f"{plan.already} already applied")
    lines += list(plan.notes)
    return finish(Exit.OK, "\n".join(lines))

