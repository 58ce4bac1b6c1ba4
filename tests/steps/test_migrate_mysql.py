"""The migration step against a real MariaDB (Debian's): every layout and history table that it keeps on
PostgreSQL, one runner at a time by MySQL's named locks, drift, dry run, rollback, and what it does when a
file fails after MySQL has committed its DDL."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.parse
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from initpipeline.steps.common import Exit
from initpipeline.steps.migrate.mysql import mysql_chunks
from tests.helpers import (
    MariaDB,
    StepResult,
    migration_tool,
    mysql_rows,
    mysql_run,
    run_migrate,
    run_migrate_together,
    run_tool,
    write_files,
)
from tests.migration_folders import DBMATE_MYSQL, FLYWAY_MYSQL, GOLANG_MIGRATE_MYSQL

FLYWAY_MYSQL_ORDER = ["V1__init.sql", "V1.1__add_email.sql", "V1_2__seed.sql", "V1.10__name_index.sql",
                      "V2__audit.sql", "R__account_names.sql"]


@pytest.fixture
def url(mariadb: MariaDB) -> Iterator[str]:
    """A fresh database of the session's MariaDB for each test."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield mariadb.fresh(name)
    mysql_run(mariadb.url(), f"DROP DATABASE IF EXISTS `{name}`")


def rows(url: str, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    return mysql_rows(url, sql)


def tables(url: str) -> set[str]:
    return {r[0] for r in rows(url, "SELECT table_name FROM information_schema.tables "
                                    "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'")}


def migrate(url: str, folder: Path, tmp: Path, *extra: str) -> StepResult:
    return run_migrate(url, folder, tmp, *extra)


def flyway_crc(text: str) -> int:
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
    crc = zlib.crc32(b"".join(line.encode() for line in lines))
    return crc - (1 << 32) if crc >= 1 << 31 else crc


# --- golang-migrate -----------------------------------------------------------------------------

def test_golang_migrate_on_an_empty_database(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", GOLANG_MIGRATE_MYSQL)
    result = migrate(url, folder, tmp_path)
    assert result.code == 0, result.stderr
    assert "applied 5 migration(s)" in result.termination and ".down.sql" not in result.stderr
    assert rows(url, "SELECT version, dirty FROM schema_migrations") == [(10, 0)]
    # during its run, a migration sees golang-migrate's table as golang-migrate shows it: its version, dirty
    assert rows(url, "SELECT version, dirty FROM migration_notes") == [(10, 1)]
    assert rows(url, "SELECT name FROM users ORDER BY id") == [("admin",), ("ops",)]
    assert rows(url, "SELECT routine_name FROM information_schema.routines WHERE routine_schema = DATABASE()") == [
        ("count_users",)]
    again = migrate(url, folder, tmp_path)
    assert again.code == 0 and "applied 0 migration(s)" in again.termination and "5 already applied" in \
        again.termination


def test_golang_migrate_continues_where_golang_migrate_stopped(url: str, tmp_path: Path) -> None:
    mysql_run(url, """
        CREATE TABLE users (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL);
        ALTER TABLE users ADD COLUMN email varchar(200);
        INSERT INTO users (name, email) VALUES ('alice', 'alice@example.com');
        CREATE TABLE `schema_migrations` (version bigint not null primary key, dirty boolean not null);
        INSERT INTO schema_migrations VALUES (2, false);""")
    result = migrate(url, write_files(tmp_path / "sql", GOLANG_MIGRATE_MYSQL), tmp_path)
    assert result.code == 0, result.stderr
    assert "applied 3 migration(s)" in result.termination and "1_create_users" not in result.termination
    assert rows(url, "SELECT name FROM users ORDER BY id") == [("alice",), ("admin",), ("ops",)]


def test_golang_migrate_dirty_database_is_refused(url: str, tmp_path: Path) -> None:
    mysql_run(url, "CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null);"
                   "INSERT INTO schema_migrations VALUES (2, true)")
    result = migrate(url, write_files(tmp_path / "sql", GOLANG_MIGRATE_MYSQL), tmp_path)
    assert result.code == Exit.DIRTY and "version 2 is dirty" in result.termination
    assert tables(url) == {"schema_migrations"}


def test_a_failure_after_ddl_leaves_the_version_dirty(url: str, tmp_path: Path) -> None:
    """MySQL commits DDL at once: what ran before the failure stays, and the history says so."""
    folder = write_files(tmp_path / "sql", {
        "1_a.up.sql": "CREATE TABLE a (id int);",
        "2_b.up.sql": "CREATE TABLE b (id int);\nINSERT INTO nowhere VALUES (1);",
    })
    result = migrate(url, folder, tmp_path)
    assert result.code == Exit.DIRTY, result.stderr
    assert "2_b.up.sql failed: Table" in result.termination and "(MySQL error 1146)" in result.termination
    assert "MySQL commits DDL statements at once" in result.termination
    assert "migrate force 2" in result.termination
    assert tables(url) == {"a", "b", "schema_migrations"}
    assert rows(url, "SELECT version, dirty FROM schema_migrations") == [(2, 1)]
    again = migrate(url, folder, tmp_path)
    assert again.code == Exit.DIRTY and "version 2 is dirty" in again.termination


def test_a_failing_file_of_data_changes_is_rolled_back_whole(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {
        "1_a.up.sql": "CREATE TABLE a (id int PRIMARY KEY);",
        "2_rows.up.sql": "INSERT INTO a VALUES (1);\nINSERT INTO a VALUES (2);\nINSERT INTO a VALUES (1);",
    })
    result = migrate(url, folder, tmp_path)
    assert result.code == Exit.MIGRATION, result.stderr
    assert "migration 2_rows.up.sql failed and was rolled back: Duplicate entry" in result.termination
    assert rows(url, "SELECT COUNT(*) FROM a") == [(0,)]
    assert rows(url, "SELECT version, dirty FROM schema_migrations") == [(1, 0)]


def test_a_file_whose_first_statement_fails_changes_nothing(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {"1_a.up.sql": "CREATE TABLE a (id int);",
                                            "2_a_again.up.sql": "CREATE TABLE a (id int);\nCREATE TABLE c (id int);"})
    result = migrate(url, folder, tmp_path)
    assert result.code == Exit.MIGRATION, result.stderr
    assert "2_a_again.up.sql failed and changed nothing: its first statement failed: Table 'a' already exists" in \
        result.termination
    assert tables(url) == {"a", "schema_migrations"}
    assert rows(url, "SELECT version, dirty FROM schema_migrations") == [(1, 0)]


def test_golang_migrate_rollback(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", GOLANG_MIGRATE_MYSQL)
    assert migrate(url, folder, tmp_path).code == 0
    result = migrate(url, folder, tmp_path, "--to", "2")
    assert result.code == 0, result.stderr
    assert "10_note_version.down.sql, 4_count_users.down.sql, 3_seed.down.sql" in result.termination
    assert "rolled back 3 migration(s) to 2" in result.termination
    assert rows(url, "SELECT version, dirty FROM schema_migrations") == [(2, 0)]
    assert rows(url, "SELECT COUNT(*) FROM users") == [(0,)]
    assert tables(url) == {"users", "schema_migrations"}


# --- Flyway -------------------------------------------------------------------------------------

def test_flyway_orders_versions_honours_delimiter_and_records_flyways_columns(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", FLYWAY_MYSQL)
    result = migrate(url, folder, tmp_path)
    assert result.code == 0, result.stderr
    assert "applied 6 migration(s) in" in result.termination and ", ".join(FLYWAY_MYSQL_ORDER) in result.termination
    history = rows(url, "SELECT installed_rank, version, description, type, script, checksum, installed_by, success "
                        "FROM flyway_schema_history ORDER BY installed_rank")
    assert [(r[0], r[1], r[4], r[7]) for r in history] == [
        (i + 1, None if name.startswith("R") else name[1:].split("__")[0].replace("_", "."), name, 1)
        for i, name in enumerate(FLYWAY_MYSQL_ORDER)]
    assert [r[5] for r in history] == [flyway_crc(FLYWAY_MYSQL[name]) for name in FLYWAY_MYSQL_ORDER]
    assert {r[6] for r in history} == {"app"} and history[4][2] == "audit" and history[4][3] == "SQL"
    # the trigger made between DELIMITER lines works
    assert rows(url, "SELECT account FROM audit") == [(2,)]
    assert rows(url, "SELECT name FROM account_names ORDER BY name") == [("ann",), ("bob",)]
    columns = rows(url, "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                        "DATABASE() AND table_name = 'flyway_schema_history' ORDER BY ordinal_position")
    assert columns[0] == ("installed_rank", "int") and columns[-1] == ("success", "tinyint")
    again = migrate(url, folder, tmp_path)
    assert again.code == 0 and "applied 0 migration(s)" in again.termination, again.stderr


def test_flyway_checksum_drift_and_failed_rows_are_refused(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {k: FLYWAY_MYSQL[k] for k in ("V1__init.sql", "V1.1__add_email.sql")})
    assert migrate(url, folder, tmp_path).code == 0
    (folder / "V1__init.sql").write_text("CREATE TABLE accounts (id bigint PRIMARY KEY);\n")
    drift = migrate(url, folder, tmp_path)
    assert drift.code == Exit.DRIFT and "V1__init.sql" in drift.termination, drift.termination

    mysql_run(url, "DELETE FROM flyway_schema_history; DROP TABLE accounts")
    folder = write_files(tmp_path / "sql2", {"V1__init.sql": FLYWAY_MYSQL["V1__init.sql"],
                                             "V2__half.sql": "CREATE TABLE h (id int);\nINSERT INTO nope VALUES (1);"})
    failed = migrate(url, folder, tmp_path)
    assert failed.code == Exit.DIRTY, failed.stderr
    assert rows(url, "SELECT version, success FROM flyway_schema_history ORDER BY installed_rank") == [
        ("1", 1), ("2", 0)]
    again = migrate(url, folder, tmp_path)
    assert again.code == Exit.DIRTY and "records a failed migration to version 2" in again.termination


def test_flyway_rollback_with_undo_files(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", FLYWAY_MYSQL)
    assert migrate(url, folder, tmp_path).code == 0
    result = migrate(url, folder, tmp_path, "--to", "1.10")
    assert result.code == 0, result.stderr
    assert "rolled back 1 migration(s) to 1.10" in result.termination and "U2__audit.sql" in result.termination
    assert "audit" not in tables(url)
    last = rows(url, "SELECT version, type, script, success FROM flyway_schema_history ORDER BY installed_rank DESC "
                     "LIMIT 1")
    assert last == [("2", "UNDO_SQL", "U2__audit.sql", 1)]


# --- dbmate and plain ---------------------------------------------------------------------------

def test_dbmate_applies_up_sections_and_records_versions(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", DBMATE_MYSQL)
    result = migrate(url, folder, tmp_path)
    assert result.code == 0, result.stderr
    assert rows(url, "SELECT version FROM schema_migrations ORDER BY version") == [
        ("20240101000000",), ("20240102000000",), ("20240103000000",)]
    assert rows(url, "SELECT title FROM posts") == [("hello",)]
    assert rows(url, "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() "
                     "AND index_name = 'posts_title'") == [(1,)]
    back = migrate(url, folder, tmp_path, "--to", "20240101000000")
    assert back.code == 0, back.stderr
    assert rows(url, "SELECT COUNT(*) FROM posts") == [(0,)]
    assert rows(url, "SELECT version FROM schema_migrations") == [("20240101000000",)]


def test_plain_files_with_checksums_drift_and_dry_run(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {"001_t.sql": "CREATE TABLE t (id int);",
                                            "002_rows.sql": "INSERT INTO t VALUES (1), (2);"})
    dry = migrate(url, folder, tmp_path, "--dry-run")
    assert dry.code == 0 and "would apply 2 migration(s): 001_t.sql, 002_rows.sql" in dry.termination
    assert tables(url) == set()
    assert migrate(url, folder, tmp_path).code == 0
    assert [r[0] for r in rows(url, "SELECT name FROM initpipeline_schema_history ORDER BY name")] == [
        "001_t.sql", "002_rows.sql"]
    (folder / "002_rows.sql").write_text("INSERT INTO t VALUES (3);")
    drift = migrate(url, folder, tmp_path)
    assert drift.code == Exit.DRIFT and "002_rows.sql" in drift.termination, drift.termination


# --- one runner at a time -----------------------------------------------------------------------

@pytest.mark.parametrize("files", [GOLANG_MIGRATE_MYSQL, FLYWAY_MYSQL, DBMATE_MYSQL],
                         ids=["golang-migrate", "flyway", "dbmate"])
def test_five_runners_at_once_apply_each_file_once(url: str, tmp_path: Path, files: dict[str, str]) -> None:
    folder = write_files(tmp_path / "sql", files)
    results = run_migrate_together(url, folder, 5)
    assert [code for code, _ in results] == [0] * 5, results
    applied = [err.count("applying ") for _, err in results]
    assert sum(applied) == len([f for f in files if not (".down." in f or f.startswith("U"))]), applied


def test_the_tools_own_lock_holds_the_runner_back(mariadb: MariaDB, url: str, tmp_path: Path) -> None:
    """golang-migrate's MySQL lock, taken by another session (as golang-migrate does), makes the runner wait."""
    database = url.rsplit("/", 1)[1]
    name = str((zlib.crc32(f"{database}:schema_migrations".encode()) * 1486364155) & 0xFFFFFFFF)
    holder = pymysql.connect(unix_socket=str(mariadb.socket), user="app", password=mariadb.password)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", (name,))
            assert cursor.fetchone() == (1,)
        result = migrate(url, write_files(tmp_path / "sql", GOLANG_MIGRATE_MYSQL), tmp_path, "--lock-timeout", "1")
        assert result.code == Exit.LOCK_TIMEOUT, result.stderr
        assert tables(url) == set()
    finally:
        holder.close()
    assert migrate(url, write_files(tmp_path / "sql", GOLANG_MIGRATE_MYSQL), tmp_path).code == 0


def test_migrations_over_verified_tls(mariadb: MariaDB, url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {"1_a.up.sql": "CREATE TABLE a (id int);"})
    ca = Path(mysql_rows(url, "SELECT @@ssl_ca")[0][0])  # the CA that the server's certificate chains to
    verified = migrate(f"{url}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}", folder, tmp_path)
    assert verified.code == 0, verified.stderr
    # the step's caBundle (--ca-file) when the URL names no CA
    assert migrate(f"{url}?ssl-mode=VERIFY_IDENTITY", folder, tmp_path, "--ca-file", str(ca)).code == 0
    unknown = migrate(f"{url}?ssl-mode=VERIFY_IDENTITY", folder, tmp_path, "--connect-timeout", "30")
    assert unknown.code == Exit.DATABASE and "CERTIFICATE_VERIFY_FAILED" in unknown.termination, unknown.termination
    assert "retrying" not in unknown.stderr  # a certificate that does not verify is not waited out


def test_wrong_password_is_a_database_error_without_the_password(mariadb: MariaDB, tmp_path: Path) -> None:
    result = migrate(mariadb.url("not-the-password"), write_files(tmp_path / "sql", {"1_a.up.sql": "SELECT 1;"}),
                     tmp_path)
    assert result.code == Exit.DATABASE and "Access denied for user 'app'" in result.termination, result.termination
    assert "not-the-password" not in result.stderr + result.termination


def test_delimiter_chunks() -> None:
    sql = ("CREATE TABLE a (s text);\nINSERT INTO a VALUES ('x;y');\nDELIMITER //\n"
           "CREATE PROCEDURE p() BEGIN INSERT INTO a VALUES ('//'); SELECT 1; END//\n"
           "/* a comment // with the delimiter */\nCREATE PROCEDURE q() BEGIN SELECT 2; END //\ndelimiter ;\n"
           "CALL p();\n-- the end\n")
    assert mysql_chunks(sql) == [
        "CREATE TABLE a (s text);\nINSERT INTO a VALUES ('x;y');\n",
        "\nCREATE PROCEDURE p() BEGIN INSERT INTO a VALUES ('//'); SELECT 1; END",
        "\n/* a comment // with the delimiter */\nCREATE PROCEDURE q() BEGIN SELECT 2; END ",
        "\nCALL p();\n-- the end\n"]
    assert mysql_chunks("-- nothing but a comment\n") == []


# --- the tools themselves, on the same MariaDB ----------------------------------------------------

def _parts(url: str) -> urllib.parse.SplitResult:
    return urllib.parse.urlsplit(url)


def golang_dsn(url: str) -> str:
    p = _parts(url)
    return f"mysql://{p.username}:{p.password}@tcp({p.hostname}:{p.port}){p.path}"  # its driver's form


def golang_migrate(url: str, folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_tool(migration_tool("golang-migrate"), "-path", str(folder), "-database", golang_dsn(url), *args,
                    check=check)


def test_golang_migrate_and_our_runner_take_turns(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", GOLANG_MIGRATE_MYSQL)
    golang_migrate(url, folder, "up", "2")
    ours = run_migrate(url, folder, tmp_path)
    assert ours.code == 0 and "applied 3 migration(s)" in ours.termination, ours.stderr
    assert golang_migrate(url, folder, "version").stderr.strip() == "10"
    golang_migrate(url, folder, "down", "2")  # golang-migrate undoes what our runner applied
    assert rows(url, "SELECT version, dirty FROM schema_migrations") == [(3, 0)]
    back = run_migrate(url, folder, tmp_path, "--to", "1")
    assert back.code == 0, back.stderr
    assert golang_migrate(url, folder, "version").stderr.strip() == "1"
    golang_migrate(url, folder, "up")
    assert rows(url, "SELECT name FROM users ORDER BY id") == [("admin",), ("ops",)]


def test_our_runner_waits_for_golang_migrates_lock(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {"1_slow.up.sql": "SELECT SLEEP(3);\nCREATE TABLE slow (id int);"})
    tool = subprocess.Popen([str(migration_tool("golang-migrate")), "-path", str(folder), "-database",
                             golang_dsn(url), "up"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not rows(url, "SELECT 1 FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(3)%'"):
            assert time.monotonic() < deadline, "golang-migrate did not start its migration"
            time.sleep(0.05)
        ours = run_migrate(url, folder, tmp_path)
    finally:
        tool.communicate(timeout=60)
    assert tool.returncode == 0
    assert ours.code == 0 and "another runner holds the migration lock" in ours.stderr, ours.stderr
    assert ours.termination.startswith("applied 0 migration(s)") and "1 already applied" in ours.termination


def dbmate(url: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_tool(migration_tool("dbmate"), "--url", url, "--migrations-dir", str(folder), "--no-dump-schema",
                    *args)


def test_dbmate_and_our_runner_take_turns(url: str, tmp_path: Path) -> None:
    first = write_files(tmp_path / "first", {k: v for k, v in DBMATE_MYSQL.items() if k.startswith("20240101")})
    dbmate(url, first, "up")
    folder = write_files(tmp_path / "sql", DBMATE_MYSQL)
    ours = run_migrate(url, folder, tmp_path)
    assert ours.code == 0 and "applied 2 migration(s)" in ours.termination, ours.stderr
    status = dbmate(url, folder, "status").stdout
    assert "Applied: 3" in status and "Pending: 0" in status
    dbmate(url, folder, "rollback")  # dbmate undoes the index our runner made
    again = run_migrate(url, folder, tmp_path)
    assert again.code == 0 and "20240103000000_title_index.sql" in again.termination, again.stderr


def flyway_env(url: str) -> dict[str, str]:
    p = _parts(url)
    return {"FLYWAY_URL": f"jdbc:mariadb://{p.hostname}:{p.port}{p.path}?sslMode=disable",
            "FLYWAY_USER": p.username or "", "FLYWAY_PASSWORD": p.password or ""}


def flyway(url: str, folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_tool(migration_tool("flyway-tool"), *args[:1], str(folder), *args[1:], env=flyway_env(url),
                    check=check)


def test_flyway_and_our_runner_take_turns(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", FLYWAY_MYSQL)
    flyway(url, folder, "migrate", "1.1")
    ours = run_migrate(url, folder, tmp_path)  # would refuse on a checksum that is not Flyway's
    assert ours.code == 0, ours.stderr
    assert ": V1_2__seed.sql, V1.10__name_index.sql, V2__audit.sql; 2 already applied" in ours.termination
    flyway(url, folder, "validate")  # Flyway accepts every row our runner wrote, checksums included
    info = flyway(url, folder, "info").stdout
    assert info.count(" SUCCESS") == 6, info
    write_files(folder, {"V3__more.sql": "ALTER TABLE accounts ADD COLUMN note varchar(100);\n"})
    assert "applied 1" in flyway(url, folder, "migrate").stdout  # and Flyway goes on after our runner
    again = run_migrate(url, folder, tmp_path)
    assert again.code == 0 and again.termination.startswith("applied 0 migration(s)"), again.stderr


def test_our_runner_waits_for_flyways_lock(url: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {"V1__slow.sql": "SELECT SLEEP(4);\nCREATE TABLE slow (id int);\n"})
    tool = subprocess.Popen([str(migration_tool("flyway-tool")), "migrate", str(folder)],
                            env={**os.environ, **flyway_env(url)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not rows(url, "SELECT 1 FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(4)%'"):
            assert time.monotonic() < deadline, "Flyway did not start its migration"
            time.sleep(0.05)
        ours = run_migrate(url, folder, tmp_path)
    finally:
        out = tool.communicate(timeout=60)
    assert tool.returncode == 0, out
    assert ours.code == 0 and "another runner holds the migration lock" in ours.stderr, ours.stderr
    assert ours.termination.startswith("applied 0 migration(s)") and "1 already applied" in ours.termination
