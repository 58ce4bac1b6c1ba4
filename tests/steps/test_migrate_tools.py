"""A database goes back and forth between the original tools (golang-migrate, dbmate, Flyway) and our runner.

The tools are the real ones, pinned under hack/tools/ and installed by hack/migration-tools.sh.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from initpipeline.steps.common import Exit
from tests.helpers import Postgres, migration_tool, run_migrate, run_tool, sql_rows, sql_run, write_files
from tests.migration_folders import DBMATE, FLYWAY, GOLANG_MIGRATE

pytestmark = pytest.mark.postgres


def _url(db: Postgres) -> str:
    return db.app_url + "?sslmode=disable"


def golang_migrate(db: Postgres, folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_tool(migration_tool("golang-migrate"), "-path", str(folder), "-database", _url(db), *args,
                    check=check)


def test_golang_migrate_and_our_runner_take_turns(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", GOLANG_MIGRATE)
    golang_migrate(db, folder, "up", "2")
    sql_run(db.app_url, "INSERT INTO users (name, email) VALUES ('alice', 'alice@example.com')")

    ours = run_migrate(db.app_url, folder, tmp_path)
    assert ours.code == 0, ours.stderr
    assert "applied 3 migration(s)" in ours.termination and "2 already applied" in ours.termination
    assert golang_migrate(db, folder, "version").stderr.strip() == "11"

    golang_migrate(db, folder, "down", "2")  # golang-migrate undoes what our runner applied
    assert sql_rows(db.app_url, "SELECT version, dirty FROM schema_migrations") == [(3, False)]
    again = run_migrate(db.app_url, folder, tmp_path)
    assert again.code == 0 and "applied 2 migration(s)" in again.termination, again.stderr
    assert sql_rows(db.app_url, "SELECT name FROM users ORDER BY id") == [("alice",), ("admin",)]

    back = run_migrate(db.app_url, folder, tmp_path, "--to", "1")  # and our rollback leaves what golang-migrate reads
    assert back.code == 0, back.stderr
    assert golang_migrate(db, folder, "version").stderr.strip() == "1"
    golang_migrate(db, folder, "up")
    assert golang_migrate(db, folder, "version").stderr.strip() == "11"


def test_a_database_golang_migrate_left_dirty_is_refused_until_forced(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {**GOLANG_MIGRATE, "3_seed_admin.up.sql": "INSERT INTO nowhere VALUES (1);"})
    failed = golang_migrate(db, folder, "up", check=False)
    assert failed.returncode != 0
    assert sql_rows(db.app_url, "SELECT version, dirty FROM schema_migrations") == [(3, True)]

    ours = run_migrate(db.app_url, folder, tmp_path)
    assert ours.code == Exit.DIRTY and "version 3 is dirty" in ours.termination

    golang_migrate(db, folder, "force", "2")  # what our message tells a person to do
    write_files(folder, {"3_seed_admin.up.sql": GOLANG_MIGRATE["3_seed_admin.up.sql"]})
    fixed = run_migrate(db.app_url, folder, tmp_path)
    assert fixed.code == 0 and "applied 3 migration(s)" in fixed.termination, fixed.stderr


def test_our_runner_waits_for_golang_migrates_lock(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {"1_slow.up.sql": "SELECT pg_sleep(3);\nCREATE TABLE slow (id int);"})
    tool = subprocess.Popen([str(migration_tool("golang-migrate")), "-path", str(folder), "-database", _url(db),
                             "up"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not sql_rows(db.app_url, "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3)%'"):
            assert time.monotonic() < deadline, "golang-migrate did not start its migration"
            time.sleep(0.05)
        ours = run_migrate(db.app_url, folder, tmp_path)
    finally:
        tool.communicate(timeout=60)
    assert tool.returncode == 0
    assert ours.code == 0 and "another runner holds the migration lock" in ours.stderr
    assert ours.termination.startswith("applied 0 migration(s)") and "1 already applied" in ours.termination



def dbmate(db: Postgres, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_tool(migration_tool("dbmate"), "--url", _url(db), "--migrations-dir", str(folder), "--no-dump-schema",
                    *args)


def test_dbmate_and_our_runner_take_turns(db: Postgres, tmp_path: Path) -> None:
    first = write_files(tmp_path / "first", {k: v for k, v in DBMATE.items() if k.startswith("20240101")})
    dbmate(db, first, "up")
    folder = write_files(tmp_path / "sql", DBMATE)
    ours = run_migrate(db.app_url, folder, tmp_path)
    assert ours.code == 0 and "applied 2 migration(s)" in ours.termination, ours.stderr
    status = dbmate(db, folder, "status").stdout
    assert "Applied: 3" in status and "Pending: 0" in status

    dbmate(db, folder, "rollback")  # dbmate undoes the index our runner made
    assert sql_rows(db.app_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'posts_title'") == [(0,)]
    again = run_migrate(db.app_url, folder, tmp_path)
    assert again.code == 0 and "20240103000000_title_index.sql" in again.termination, again.stderr
    back = run_migrate(db.app_url, folder, tmp_path, "--to", "20240101000000")
    assert back.code == 0, back.stderr
    assert "Applied: 1" in dbmate(db, folder, "status").stdout
    dbmate(db, folder, "migrate")
    assert sql_rows(db.app_url, "SELECT title FROM posts") == [("hello",)]



def flyway(db: Postgres, folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"FLYWAY_URL": f"jdbc:postgresql://127.0.0.1:{db.port}/app", "FLYWAY_USER": "app",
           "FLYWAY_PASSWORD": db.password}
    return run_tool(migration_tool("flyway-tool"), *args[:1], str(folder), *args[1:], env=env, check=check)


def test_flyway_and_our_runner_take_turns(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", FLYWAY)
    flyway(db, folder, "migrate", "1.1")
    ours = run_migrate(db.app_url, folder, tmp_path)  # would refuse on a checksum that is not Flyway's
    assert ours.code == 0, ours.stderr
    # Flyway applied the repeatable with its target already; the same checksum means it is not applied again
    assert ours.termination.startswith("applied 3 migration(s)")
    assert ": V1_2__seed.sql, V1.10__name_index.sql, V2__created.sql; 2 already applied" in ours.termination
    flyway(db, folder, "validate")  # Flyway accepts every row our runner wrote, checksums included
    info = flyway(db, folder, "info").stdout
    assert info.count(" SUCCESS") == 6, info

    write_files(folder, {"V3__more.sql": "ALTER TABLE accounts ADD COLUMN note text;\n",
                         "R__account_names.sql": "CREATE OR REPLACE VIEW account_names AS SELECT name, id "
                                                 "FROM accounts;\n"})
    assert "applied 2" in flyway(db, folder, "migrate").stdout  # and Flyway goes on after our runner
    again = run_migrate(db.app_url, folder, tmp_path)
    assert again.code == 0 and again.termination.startswith("applied 0 migration(s)"), again.stderr


def test_flyway_continues_what_our_runner_started(db: Postgres, tmp_path: Path) -> None:
    first_three = ("V1__init.sql", "V1.1__add_email.sql", "V1_2__seed.sql")
    start = write_files(tmp_path / "start", {k: v for k, v in FLYWAY.items() if k in first_three})
    ours = run_migrate(db.app_url, start, tmp_path)
    assert ours.code == 0 and "applied 3 migration(s)" in ours.termination, ours.stderr
    folder = write_files(tmp_path / "sql", FLYWAY)
    flyway(db, folder, "validate", check=False)  # pending versions fail validation; applied ones must not
    migrated = flyway(db, folder, "migrate")
    assert "applied 3" in migrated.stdout
    assert sql_rows(db.app_url, "SELECT count(*), bool_and(success) FROM flyway_schema_history") == [(6, True)]
