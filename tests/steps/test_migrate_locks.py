"""Table locks that give way, on the real PostgreSQL and MariaDB of the step tests: a report's long transaction
holds a table that a migration alters. The migration waits at most its table lock timeout each time, so the
app's queries on that table queue behind it for no longer than that; it is retried until the report ends, then
applies exactly once; its log names the blocker; a budget that runs out ends the step with its own exit code
and nothing half-applied; a CREATE INDEX CONCURRENTLY that gave way leaves no INVALID index behind."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from initpipeline.spec.lockwaits import parse_lock_waits
from initpipeline.steps.common import Exit
from tests.helpers import (
    MariaDB,
    Postgres,
    app_traffic,
    holding_transaction,
    mysql_rows,
    mysql_run,
    run_migrate,
    sql_rows,
    sql_run,
    write_files,
)

USERS = "CREATE TABLE users (id int PRIMARY KEY, name text);\nINSERT INTO users VALUES (1, 'ada'), (2, 'bob');\n"


def pg_select(url: str) -> Callable[[], Any]:
    return lambda: sql_rows(url, "SELECT count(*) FROM users")


# each layout's file and what its history table says once the file applied (exactly once)
LAYOUTS = {
    "golang-migrate": ("1_email.up.sql", "ALTER TABLE users ADD COLUMN email text;\n",
                       "SELECT version, dirty FROM schema_migrations", [(1, False)]),
    "flyway": ("V1__email.sql", "ALTER TABLE users ADD COLUMN email text;\n",
               "SELECT version, script, success FROM flyway_schema_history", [("1", "V1__email.sql", True)]),
    "dbmate": ("20240101000000_email.sql", "-- migrate:up\nALTER TABLE users ADD COLUMN email text;\n"
               "-- migrate:down\nALTER TABLE users DROP COLUMN email;\n",
               "SELECT version FROM schema_migrations", [("20240101000000",)]),
    "plain": ("001_email.sql", "ALTER TABLE users ADD COLUMN email text;\n",
              "SELECT name FROM initpipeline_schema_history", [("001_email.sql",)]),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_postgres_gives_way_to_a_long_transaction_and_applies_once_it_ends(db: Postgres, tmp_path: Path,
                                                                            layout: str) -> None:
    name, text, history, recorded = LAYOUTS[layout]
    sql_run(db.app_url, USERS)
    folder = write_files(tmp_path / "sql", {name: text})
    with holding_transaction(db.app_url, 5), app_traffic(pg_select(db.app_url)) as took:
        result = run_migrate(db.app_url, folder, tmp_path, "--table-lock-timeout", "0.5")
    assert result.code == 0, result.stderr
    # the app's queries waited behind the ALTER at most about its lock timeout, never for the report's 5 s
    assert took and max(took) < 2.5, took
    assert "waiting for a lock on users: held by pid " in result.stderr
    assert "'nightly-report'" in result.stderr and "transaction open" in result.stderr
    assert "SELECT count" not in result.stderr  # never the blocker's query text
    waits = parse_lock_waits(result.termination)
    assert waits is not None and waits.times >= 2 and waits.seconds > 3, result.termination
    assert sql_rows(db.app_url, history) == recorded
    assert sql_rows(db.app_url, "SELECT count(*) FROM information_schema.columns "
                                "WHERE table_name = 'users' AND column_name = 'email'") == [(1,)]


def test_postgres_without_a_table_lock_timeout_the_app_waits_for_the_report(db: Postgres, tmp_path: Path) -> None:
    """The control of the test above: the same report and ALTER with no lock timeout stall the app's queries."""
    sql_run(db.app_url, USERS)
    folder = write_files(tmp_path / "sql", {"1_email.up.sql": "ALTER TABLE users ADD COLUMN email text;\n"})
    with holding_transaction(db.app_url, 4):
        time.sleep(0.2)
        with app_traffic(pg_select(db.app_url)) as took:
            result = run_migrate(db.app_url, folder, tmp_path, "--table-lock-timeout", "0")
    assert result.code == 0, result.stderr
    assert max(took) > 2, took
    assert parse_lock_waits(result.termination) is None


def test_postgres_budget_spent_exits_27_with_nothing_applied(db: Postgres, tmp_path: Path) -> None:
    sql_run(db.app_url, USERS)
    folder = write_files(tmp_path / "sql", {
        "V1__seed.sql": "INSERT INTO users VALUES (3, 'cy');\nALTER TABLE users ADD COLUMN email text;\n"})
    with holding_transaction(db.app_url, 8):
        result = run_migrate(db.app_url, folder, tmp_path, "--table-lock-timeout", "0.3", "--lock-retry-budget", "2")
    assert result.code == Exit.LOCK_BUDGET == 27, result.stderr
    assert "retry budget of 2.0s is spent" in result.termination and "held by pid" in result.termination
    assert "nothing of it was applied" in result.termination
    assert parse_lock_waits(result.termination) is not None
    assert sql_rows(db.app_url, "SELECT count(*) FROM users") == [(2,)]
    assert sql_rows(db.app_url, "SELECT count(*) FROM flyway_schema_history WHERE version = '1'") == [(0,)]
    again = run_migrate(db.app_url, folder, tmp_path)  # nothing was left half-done: the next run applies it
    assert again.code == 0, again.stderr
    assert sql_rows(db.app_url, "SELECT count(*) FROM users") == [(3,)]


def test_postgres_concurrent_index_that_gave_way_is_dropped_and_retried(db: Postgres, tmp_path: Path) -> None:
    sql_run(db.app_url, USERS)
    folder = write_files(tmp_path / "sql", {
        "1_name_index.up.sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_name ON users (name);\n"})
    # CONCURRENTLY waits for the transactions that write the table (after it created the index, INVALID)
    with holding_transaction(db.app_url, 4, sql="UPDATE users SET name = name WHERE id = 1"):
        result = run_migrate(db.app_url, folder, tmp_path, "--table-lock-timeout", "0.5")
    assert result.code == 0, result.stderr
    assert "dropping the INVALID index users_name" in result.stderr
    assert sql_rows(db.app_url, "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                "WHERE c.relname = 'users_name'") == [(True,)]
    assert sql_rows(db.app_url, "SELECT version, dirty FROM schema_migrations") == [(1, False)]


# --- MariaDB: metadata locks -------------------------------------------------------------------

@pytest.fixture
def murl(mariadb: MariaDB) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    url = mariadb.fresh(name)
    mysql_run(url, "CREATE TABLE users (id int PRIMARY KEY, name varchar(20)) ENGINE=InnoDB; "
                   "INSERT INTO users VALUES (1, 'ada'), (2, 'bob')")
    yield url
    mysql_run(mariadb.url(), f"DROP DATABASE IF EXISTS `{name}`")


def test_mariadb_gives_way_to_a_metadata_lock_and_applies_once_it_ends(mariadb: MariaDB, murl: str,
                                                                       tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {"1_email.up.sql": "ALTER TABLE users ADD COLUMN email varchar(80);\n"})
    with holding_transaction(murl, 6), \
            app_traffic(lambda: mysql_rows(murl, "SELECT count(*) FROM users")) as took:
        result = run_migrate(murl, folder, tmp_path, "--table-lock-timeout", "1")
    assert result.code == 0, result.stderr
    assert took and max(took) < 3.5, took  # MySQL's lock waits are whole seconds: 1 s here
    assert "waiting for a lock on users: held by connection " in result.stderr, result.stderr
    assert "transaction open" in result.stderr
    waits = parse_lock_waits(result.termination)
    assert waits is not None and waits.times >= 2, result.termination
    assert mysql_rows(murl, "SELECT version, dirty FROM schema_migrations") == [(1, 0)]
    assert mysql_rows(murl, "SELECT count(*) FROM information_schema.columns WHERE table_schema = DATABASE() "
                            "AND table_name = 'users' AND column_name = 'email'") == [(1,)]


def test_mariadb_budget_spent_exits_27_with_nothing_applied(mariadb: MariaDB, murl: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {"1_email.up.sql": "ALTER TABLE users ADD COLUMN email varchar(80);\n"})
    with holding_transaction(murl, 7):
        result = run_migrate(murl, folder, tmp_path, "--table-lock-timeout", "1", "--lock-retry-budget", "2")
    assert result.code == Exit.LOCK_BUDGET, result.stderr
    assert "nothing of it was applied" in result.termination
    assert mysql_rows(murl, "SELECT count(*) FROM information_schema.columns WHERE table_schema = DATABASE() "
                            "AND table_name = 'users' AND column_name = 'email'") == [(0,)]
    # golang-migrate's table says nothing was begun: the next run applies the file
    assert mysql_rows(murl, "SELECT count(*) FROM schema_migrations WHERE dirty = 1") == [(0,)]
    again = run_migrate(murl, folder, tmp_path)
    assert again.code == 0, again.stderr


def test_your_own_tool_gets_the_lock_timeout_from_pgoptions(db: Postgres, tmp_path: Path) -> None:
    """What the README advises for a custom-command migration: PGOPTIONS in the step's env reaches a libpq
    client (psycopg here, as Django and Alembic use it), so its ALTER gives way instead of stalling the app."""
    import subprocess
    import sys

    sql_run(db.app_url, USERS)
    tool = "import os, psycopg\npsycopg.connect(os.environ['DATABASE_URL']).execute('ALTER TABLE users ADD x int')\n"
    with holding_transaction(db.app_url, 5):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", tool], capture_output=True, text=True, timeout=30, check=False,
                              env={"DATABASE_URL": db.app_url, "PGOPTIONS": "-c lock_timeout=500ms",
                                   "PATH": "/usr/bin:/bin"})
        took = time.monotonic() - started
    assert done.returncode != 0 and "lock timeout" in done.stderr, done.stderr
    assert took < 4, took  # gave way at once, while the report still held the table
