"""The migration step on golang-migrate, Flyway and dbmate folders, against a real PostgreSQL.

Databases "that the tool already took half-way" are built here with the tool's table exactly as the tool
writes it; tests/steps/test_migrate_tools.py runs the tools themselves.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import pytest

from initpipeline.steps.common import Exit
from tests.cases import BAD_FOLDERS, BadFolder
from tests.helpers import (
    Postgres,
    StepResult,
    run_migrate,
    run_migrate_together,
    sql_rows,
    sql_run,
    start_migrate,
    write_files,
)
from tests.migration_folders import DBMATE, FLYWAY, FLYWAY_ORDER, GOLANG_MIGRATE

pytestmark = pytest.mark.postgres
FLYWAY_HISTORY_DDL = """
CREATE TABLE "public"."flyway_schema_history" (
    "installed_rank" INT NOT NULL, "version" VARCHAR(50), "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL, "script" VARCHAR(1000) NOT NULL, "checksum" INTEGER,
    "installed_by" VARCHAR(100) NOT NULL, "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INTEGER NOT NULL, "success" BOOLEAN NOT NULL);
ALTER TABLE "public"."flyway_schema_history" ADD CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank");
CREATE INDEX "flyway_schema_history_s_idx" ON "public"."flyway_schema_history" ("success");
"""


def flyway_crc(text: str) -> int:
    """Flyway's checksum, written out independently of the runner's: CRC32 of the lines without breaks."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
    crc = zlib.crc32(b"".join(line.encode() for line in lines))
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def rows(db: Postgres, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    return sql_rows(db.app_url, sql)


def tables(db: Postgres) -> set[str]:
    return {r[0] for r in rows(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def migrate(db: Postgres, folder: Path, tmp: Path, *extra: str) -> StepResult:
    return run_migrate(db.app_url, folder, tmp, *extra)


# --- golang-migrate -----------------------------------------------------------------------------

def test_golang_migrate_applies_only_up_files_in_version_order(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", GOLANG_MIGRATE)
    result = migrate(db, folder, tmp_path)
    assert result.code == 0, result.stderr
    assert "layout golang-migrate (detected)" in result.stderr
    assert ("applied 5 migration(s)" in result.termination and "1_create_users.up.sql, 2_add_email.up.sql, "
            "3_seed_admin.up.sql, 10_users_by_email.up.sql, 11_note_version.up.sql" in result.termination)
    assert ".down.sql" not in result.stderr
    assert rows(db, "SELECT version, dirty FROM schema_migrations") == [(11, False)]
    # during its run, a migration sees the table as golang-migrate shows it: its own version, dirty
    assert rows(db, "SELECT version, dirty FROM migration_notes") == [(11, True)]
    assert rows(db, "SELECT name, email FROM users") == [("admin", "admin@example.com")]
    # CREATE INDEX CONCURRENTLY refuses a transaction: the runner ran it outside one, and the index is whole
    assert "10_users_by_email.up.sql cannot run inside a transaction" in result.stderr
    assert rows(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email'::regclass") == [(True,)]

    again = migrate(db, folder, tmp_path)
    assert again.code == 0 and "applied 0 migration(s)" in again.termination, again.stderr
    assert "5 already applied" in again.termination


def test_golang_migrate_continues_a_database_that_golang_migrate_took_half_way(db: Postgres, tmp_path: Path) -> None:
    """The reported data loss: the old runner ran 1_create_users.down.sql first on such a database."""
    sql_run(db.app_url, """
        CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);
        ALTER TABLE users ADD COLUMN email text;
        INSERT INTO users (name, email) VALUES ('alice', 'alice@example.com');
        CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null);
        INSERT INTO schema_migrations (version, dirty) VALUES (2, false);""")
    result = migrate(db, write_files(tmp_path / "sql", GOLANG_MIGRATE), tmp_path)
    assert result.code == 0, result.stderr
    assert "applied 3 migration(s)" in result.termination and "2 already applied" in result.termination
    assert "1_create_users" not in result.termination
    assert rows(db, "SELECT name FROM users ORDER BY id") == [("alice",), ("admin",)]
    assert rows(db, "SELECT version, dirty FROM schema_migrations") == [(11, False)]


def test_golang_migrate_dirty_database_is_refused(db: Postgres, tmp_path: Path) -> None:
    sql_run(db.app_url, """
        CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);
        CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null);
        INSERT INTO schema_migrations (version, dirty) VALUES (2, true);""")
    result = migrate(db, write_files(tmp_path / "sql", GOLANG_MIGRATE), tmp_path)
    assert result.code == Exit.DIRTY
    assert "schema_migrations says version 2 is dirty" in result.termination
    assert "migrate force 2" in result.termination and "Nothing was run" in result.termination
    assert rows(db, "SELECT count(*) FROM users") == [(0,)]
    assert rows(db, "SELECT version, dirty FROM schema_migrations") == [(2, True)]


def test_golang_migrate_version_without_a_file_is_refused(db: Postgres, tmp_path: Path) -> None:
    sql_run(db.app_url, "CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null);"
                        "INSERT INTO schema_migrations VALUES (5, false)")
    result = migrate(db, write_files(tmp_path / "sql", GOLANG_MIGRATE), tmp_path)
    assert result.code == Exit.DRIFT
    assert "schema_migrations says version 5, and no file of the folder has that version" in result.termination
    assert "users" not in tables(db)


def test_a_failing_file_rolls_back_and_leaves_the_version_clean(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {
        "1_a.up.sql": "CREATE TABLE a (id int);",
        "2_b.up.sql": "CREATE TABLE b (id int);\nINSERT INTO nowhere VALUES (1);",
    })
    result = migrate(db, folder, tmp_path)
    assert result.code == Exit.MIGRATION
    assert "migration 2_b.up.sql failed and was rolled back" in result.termination
    assert tables(db) == {"a", "schema_migrations"}
    assert rows(db, "SELECT version, dirty FROM schema_migrations") == [(1, False)]


def test_statement_failing_outside_a_transaction_leaves_golang_migrate_dirty(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {
        "1_t.up.sql": "CREATE TABLE t (a int, b int);",
        "2_indexes.up.sql": "CREATE INDEX CONCURRENTLY t_a ON t (a);\nCREATE INDEX CONCURRENTLY t_x ON t (x);",
    })
    result = migrate(db, folder, tmp_path)
    assert result.code == Exit.DIRTY
    assert "2_indexes.up.sql failed at statement 2 of 2, outside a transaction" in result.termination
    assert "the 1 statement(s) before it stay applied" in result.termination
    assert 'column "x" does not exist' in result.termination
    assert rows(db, "SELECT version, dirty FROM schema_migrations") == [(2, True)]
    assert rows(db, "SELECT count(*) FROM pg_indexes WHERE indexname = 't_a'") == [(1,)]
    again = migrate(db, folder, tmp_path)
    assert again.code == Exit.DIRTY and "version 2 is dirty" in again.termination


# --- Flyway -------------------------------------------------------------------------------------

def test_flyway_orders_versions_and_applies_repeatables_last(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", FLYWAY)
    result = migrate(db, folder, tmp_path)
    assert result.code == 0, result.stderr
    assert "layout flyway (detected)" in result.stderr
    assert ", ".join(FLYWAY_ORDER) in result.termination
    assert "U2__created.sql" not in result.stderr
    history = rows(db, "SELECT installed_rank, version, description, type, script, checksum, success, "
                       "installed_by, execution_time >= 0 FROM flyway_schema_history ORDER BY installed_rank")
    assert [(r[1], r[2], r[3], r[4]) for r in history] == [
        ("1", "init", "SQL", "V1__init.sql"), ("1.1", "add email", "SQL", "V1.1__add_email.sql"),
        ("1.2", "seed", "SQL", "V1_2__seed.sql"), ("1.10", "name index", "SQL", "V1.10__name_index.sql"),
        ("2", "created", "SQL", "V2__created.sql"), (None, "account names", "SQL", "R__account_names.sql")]
    assert [r[0] for r in history] == [1, 2, 3, 4, 5, 6]
    assert [r[5] for r in history] == [flyway_crc(FLYWAY[r[4]]) for r in history]
    assert all(r[6] and r[7] == "app" and r[8] for r in history)
    assert rows(db, "SELECT name FROM account_names") == [("ann",)]
    assert "created" in {r[0] for r in rows(db, "SELECT column_name FROM information_schema.columns "
                                                "WHERE table_name = 'accounts'")}

    again = migrate(db, folder, tmp_path)
    assert again.code == 0 and "applied 0 migration(s)" in again.termination, again.stderr
    write_files(folder, {"R__account_names.sql": "CREATE OR REPLACE VIEW account_names AS "
                                                 "SELECT name, email FROM accounts;\n"})
    changed = migrate(db, folder, tmp_path)
    assert changed.code == 0 and "applied 1 migration(s)" in changed.termination
    assert changed.termination.endswith(": R__account_names.sql; 5 already applied")
    assert rows(db, "SELECT count(*) FROM flyway_schema_history WHERE script = 'R__account_names.sql'") == [(2,)]


def _flyway_took_it_to_1_1(db: Postgres, *extra_rows: str) -> None:
    sql_run(db.app_url, FLYWAY_HISTORY_DDL + f"""
        CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);
        ALTER TABLE accounts ADD COLUMN email text;
        INSERT INTO accounts VALUES (7, 'kept', 'kept@example.com');
        INSERT INTO flyway_schema_history VALUES
          (1, '1', 'init', 'SQL', 'V1__init.sql', {flyway_crc(FLYWAY['V1__init.sql'])}, 'app', now(), 5, true),
          (2, '1.1', 'add email', 'SQL', 'V1.1__add_email.sql', {flyway_crc(FLYWAY['V1.1__add_email.sql'])},
           'app', now(), 3, true) {''.join(extra_rows)};""")


def test_flyway_continues_a_database_that_flyway_took_half_way(db: Postgres, tmp_path: Path) -> None:
    _flyway_took_it_to_1_1(db)
    result = migrate(db, write_files(tmp_path / "sql", FLYWAY), tmp_path)
    assert result.code == 0, result.stderr
    assert "applied 4 migration(s)" in result.termination
    assert ": V1_2__seed.sql, V1.10__name_index.sql, V2__created.sql, R__account_names.sql;" in result.termination
    assert "2 already applied" in result.termination
    assert rows(db, "SELECT name FROM accounts ORDER BY id") == [("ann",), ("kept",)]
    assert rows(db, "SELECT max(installed_rank), count(*) FROM flyway_schema_history") == [(6, 6)]


def test_flyway_failed_row_is_refused(db: Postgres, tmp_path: Path) -> None:
    _flyway_took_it_to_1_1(db, ", (3, '1.2', 'seed', 'SQL', 'V1_2__seed.sql', 1, 'app', now(), 1, false)")
    result = migrate(db, write_files(tmp_path / "sql", FLYWAY), tmp_path)
    assert result.code == Exit.DIRTY
    assert "records a failed migration to version 1.2 (V1_2__seed.sql)" in result.termination
    assert "flyway repair" in result.termination
    assert rows(db, "SELECT count(*) FROM accounts") == [(1,)]


def test_flyway_checksum_drift_is_refused(db: Postgres, tmp_path: Path) -> None:
    _flyway_took_it_to_1_1(db)
    changed = {**FLYWAY, "V1.1__add_email.sql": "ALTER TABLE accounts ADD COLUMN mail text;\n"}
    result = migrate(db, write_files(tmp_path / "sql", changed), tmp_path)
    assert result.code == Exit.DRIFT
    assert f"V1.1__add_email.sql was applied with checksum {flyway_crc(FLYWAY['V1.1__add_email.sql'])}" \
        in result.termination
    assert rows(db, "SELECT count(*) FROM flyway_schema_history") == [(2,)]


def test_flyway_line_endings_do_not_change_the_checksum(db: Postgres, tmp_path: Path) -> None:
    _flyway_took_it_to_1_1(db)
    crlf = {**FLYWAY, "V1__init.sql": FLYWAY["V1__init.sql"].replace("\n", "\r\n")}
    assert migrate(db, write_files(tmp_path / "sql", crlf), tmp_path).code == 0


def test_flyway_version_older_than_the_applied_ones_is_refused(db: Postgres, tmp_path: Path) -> None:
    _flyway_took_it_to_1_1(db)
    folder = write_files(tmp_path / "sql", {k: v for k, v in FLYWAY.items() if k.startswith("V1__")
                                            or k.startswith("V1.1")} | {"V1.0.5__late.sql": "SELECT 1;"})
    result = migrate(db, folder, tmp_path)
    assert result.code == Exit.DRIFT
    assert "V1.0.5__late.sql: older than the newest applied version 1.1 and never applied" in result.termination


def test_flyway_script_configuration_runs_a_file_outside_a_transaction(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {
        "V1__t.sql": "CREATE TABLE t (a int);",
        "V2__index.sql": "CREATE INDEX CONCURRENTLY t_a ON t (a);\nCREATE INDEX CONCURRENTLY t_a2 ON t (a);",
        "V2__index.sql.conf": "# Flyway's per-script configuration\nexecuteInTransaction=false\n",
    })
    result = migrate(db, folder, tmp_path)
    assert result.code == 0, result.stderr
    assert "cannot run inside a transaction" not in result.stderr  # it never tried one
    assert rows(db, "SELECT count(*) FROM pg_indexes WHERE tablename = 't'") == [(2,)]
    assert rows(db, "SELECT script, success FROM flyway_schema_history ORDER BY installed_rank") == [
        ("V1__t.sql", True), ("V2__index.sql", True)]


def test_flyway_statement_failing_outside_a_transaction_leaves_a_failed_row(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {
        "V1__t.sql": "CREATE TABLE t (a int);",
        "V2__index.sql": "CREATE INDEX CONCURRENTLY t_a ON t (a);\nCREATE INDEX CONCURRENTLY t_x ON t (x);",
    })
    result = migrate(db, folder, tmp_path)
    assert result.code == Exit.DIRTY
    assert "V2__index.sql failed at statement 2 of 2" in result.termination
    assert rows(db, "SELECT script, success FROM flyway_schema_history ORDER BY installed_rank") == [
        ("V1__t.sql", True), ("V2__index.sql", False)]
    again = migrate(db, folder, tmp_path)
    assert again.code == Exit.DIRTY and "failed migration to version 2" in again.termination


# --- dbmate -------------------------------------------------------------------------------------

def test_dbmate_applies_only_up_sections(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", DBMATE)
    result = migrate(db, folder, tmp_path)
    assert result.code == 0, result.stderr
    assert "layout dbmate (detected)" in result.stderr and "applied 3 migration(s)" in result.termination
    assert rows(db, "SELECT title FROM posts") == [("hello",)]
    assert rows(db, "SELECT version FROM schema_migrations ORDER BY version") == [
        ("20240101000000",), ("20240102000000",), ("20240103000000",)]
    assert rows(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'posts_title'::regclass") == [(True,)]
    assert migrate(db, folder, tmp_path).termination.startswith("applied 0 migration(s)")


def test_dbmate_continues_a_database_that_dbmate_took_half_way(db: Postgres, tmp_path: Path) -> None:
    sql_run(db.app_url, """
        CREATE TABLE posts (id serial PRIMARY KEY, title text NOT NULL);
        INSERT INTO posts (title) VALUES ('kept');
        CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY);
        INSERT INTO schema_migrations (version) VALUES ('20240101000000');""")
    result = migrate(db, write_files(tmp_path / "sql", DBMATE), tmp_path)
    assert result.code == 0, result.stderr
    assert "applied 2 migration(s)" in result.termination and "1 already applied" in result.termination
    assert rows(db, "SELECT title FROM posts ORDER BY id") == [("kept",), ("hello",)]


def test_dbmate_failure_outside_a_transaction_is_not_recorded(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {
        "1_t.sql": "-- migrate:up\nCREATE TABLE t (a int);\n-- migrate:down\nDROP TABLE t;\n",
        "2_i.sql": "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n"
                   "CREATE INDEX CONCURRENTLY t_x ON t (x);\n-- migrate:down\nDROP INDEX t_a;\n",
    })
    result = migrate(db, folder, tmp_path)
    assert result.code == Exit.DIRTY
    assert "2_i.sql failed at statement 2 of 2" in result.termination
    assert "dbmate keeps no record of a half-done migration" in result.termination
    assert rows(db, "SELECT version FROM schema_migrations") == [("1",)]


def test_dbmate_transactional_section_that_cannot_run_in_a_transaction(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {
        "1_t.sql": "-- migrate:up\nCREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n"
                   "-- migrate:down\nDROP TABLE t;\n"})
    result = migrate(db, folder, tmp_path)
    assert result.code == Exit.MIGRATION
    assert "failed and was rolled back" in result.termination and "transaction:false" in result.termination
    assert tables(db) == {"schema_migrations"}


# --- plain --------------------------------------------------------------------------------------

def test_plain_file_marked_non_transactional(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {
        "1_t.sql": "CREATE TABLE t (a int);",
        "2_index.sql": "-- initpipeline:no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (a);",
    })
    result = migrate(db, folder, tmp_path)
    assert result.code == 0, result.stderr
    assert rows(db, "SELECT name, dirty FROM initpipeline_schema_history ORDER BY name") == [
        ("1_t.sql", False), ("2_index.sql", False)]
    unmarked = write_files(tmp_path / "sql2", {"1_index.sql": "CREATE INDEX CONCURRENTLY t_b ON t (a);"})
    refused = migrate(db, unmarked, tmp_path, "--history-table", "other_history")
    assert refused.code == Exit.MIGRATION and "-- initpipeline:no-transaction" in refused.termination


def test_plain_history_of_an_earlier_release_keeps_its_files(db: Postgres, tmp_path: Path) -> None:
    """Flyway-named files that the plain runner applied must not be applied again as Flyway's."""
    sql_run(db.app_url, "CREATE TABLE initpipeline_schema_history (name text PRIMARY KEY, checksum text NOT NULL, "
                        "applied_at timestamptz NOT NULL DEFAULT now(), execution_ms integer NOT NULL);"
                        "INSERT INTO initpipeline_schema_history VALUES ('V1__init.sql', 'x', now(), 1)")
    folder = write_files(tmp_path / "sql", {"V1__init.sql": "CREATE TABLE accounts (id int);"})
    result = migrate(db, folder, tmp_path)
    assert result.code == Exit.DRIFT
    assert "records 1 of these files as applied by the plain layout (V1__init.sql)" in result.termination
    assert "accounts" not in tables(db)


def test_history_table_of_another_tool_is_refused(db: Postgres, tmp_path: Path) -> None:
    sql_run(db.app_url, "CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null)")
    result = migrate(db, write_files(tmp_path / "sql", DBMATE), tmp_path)
    assert result.code == Exit.DRIFT
    assert "schema_migrations exists but is not dbmate's history table" in result.termination
    assert "golang-migrate" in result.termination and "posts" not in tables(db)


# --- refusals before anything runs ---------------------------------------------------------------

@pytest.mark.parametrize("case", BAD_FOLDERS, ids=lambda c: c.id)
def test_bad_folder_is_refused_before_anything_runs(db: Postgres, tmp_path: Path, case: BadFolder) -> None:
    folder = write_files(tmp_path / "sql", case.files)
    result = migrate(db, folder, tmp_path, *case.args)
    assert result.code == Exit.LAYOUT, result.stderr
    assert case.message in result.termination and "nothing was run" in result.termination
    assert tables(db) == set()


# --- rollback -----------------------------------------------------------------------------------

def test_golang_migrate_rollback(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", GOLANG_MIGRATE)
    assert migrate(db, folder, tmp_path).code == 0
    result = migrate(db, folder, tmp_path, "--to", "1")
    assert result.code == 0, result.stderr
    assert result.termination.startswith("rolled back 4 migration(s) to 1")
    assert ("11_note_version.down.sql, 10_users_by_email.down.sql, 3_seed_admin.down.sql, 2_add_email.down.sql"
            in result.termination)
    assert rows(db, "SELECT version, dirty FROM schema_migrations") == [(1, False)]
    assert tables(db) == {"users", "schema_migrations"}
    assert rows(db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users'") == [(2,)]
    assert migrate(db, folder, tmp_path, "--to", "1").termination.startswith("nothing to roll back")
    assert migrate(db, folder, tmp_path, "--to", "0").code == 0
    assert rows(db, "SELECT count(*) FROM schema_migrations") == [(0,)] and tables(db) == {"schema_migrations"}
    assert migrate(db, folder, tmp_path).code == 0  # and forward again
    assert rows(db, "SELECT version, dirty FROM schema_migrations") == [(11, False)]


def test_flyway_rollback_with_undo_files(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", FLYWAY)
    assert migrate(db, folder, tmp_path).code == 0
    dry = migrate(db, folder, tmp_path, "--to", "1.10", "--dry-run")
    assert dry.code == 0 and dry.termination.startswith("would roll back 1 migration(s): U2__created.sql")
    result = migrate(db, folder, tmp_path, "--to", "1.10")
    assert result.code == 0 and "U2__created.sql" in result.termination, result.stderr
    assert rows(db, "SELECT version, type, script, success FROM flyway_schema_history "
                    "ORDER BY installed_rank DESC LIMIT 1") == [("2", "UNDO_SQL", "U2__created.sql", True)]
    assert "created" not in {r[0] for r in rows(db, "SELECT column_name FROM information_schema.columns "
                                                    "WHERE table_name = 'accounts'")}
    again = migrate(db, folder, tmp_path)  # an undone version applies again, as in Flyway
    assert again.code == 0 and ": V2__created.sql; 4 already applied" in again.termination


def test_dbmate_rollback(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", DBMATE)
    assert migrate(db, folder, tmp_path).code == 0
    result = migrate(db, folder, tmp_path, "--to", "20240101000000")
    assert result.code == 0, result.stderr
    assert "20240103000000_title_index.sql, 20240102000000_seed.sql" in result.termination
    assert rows(db, "SELECT version FROM schema_migrations") == [("20240101000000",)]
    assert rows(db, "SELECT count(*) FROM posts") == [(0,)]


def test_rollback_without_an_undo_file_undoes_nothing(db: Postgres, tmp_path: Path) -> None:
    files = {k: v for k, v in GOLANG_MIGRATE.items() if k != "2_add_email.down.sql"}
    folder = write_files(tmp_path / "sql", files)
    assert migrate(db, folder, tmp_path).code == 0
    result = migrate(db, folder, tmp_path, "--to", "1")
    assert result.code == Exit.LAYOUT
    assert "no undo file for 2_add_email.up.sql; nothing was undone" in result.termination
    assert rows(db, "SELECT version, dirty FROM schema_migrations") == [(11, False)]


@pytest.mark.parametrize("args,needle", [
    (["--layout", "plain", "--to", "1"], "the plain layout has no undo files"),
    (["--to", "7"], "--to 7: no file of the folder has that version"),
    (["--to", "latest"], "--to: expected a version"),
])
def test_rollback_usage_errors(db: Postgres, tmp_path: Path, args: list[str], needle: str) -> None:
    folder = write_files(tmp_path / "sql", {"1_a.up.sql": "CREATE TABLE a (id int);",
                                            "1_a.down.sql": "DROP TABLE a;"} if "plain" not in args
                         else {"1_a.sql": "CREATE TABLE a (id int);"})
    result = migrate(db, folder, tmp_path, *args)
    assert result.code == Exit.USAGE and needle in result.termination, result.stderr


# --- what never happens -------------------------------------------------------------------------

UNDO_MARKERS = {
    "golang-migrate": {"1_a.up.sql": "CREATE TABLE a (id int);", "1_a.down.sql": "CREATE TABLE undo_ran_1 (x int);",
                       "2_b.up.sql": "CREATE TABLE b (id int);", "2_b.down.sql": "CREATE TABLE undo_ran_2 (x int);"},
    "flyway": {"V1__a.sql": "CREATE TABLE a (id int);", "U1__a.sql": "CREATE TABLE undo_ran_1 (x int);",
               "V2__b.sql": "CREATE TABLE b (id int);", "U2__b.sql": "CREATE TABLE undo_ran_2 (x int);"},
    "dbmate": {"1_a.sql": "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nCREATE TABLE undo_ran_1 (x int);",
               "2_b.sql": "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\nCREATE TABLE undo_ran_2 (x int);"},
}


@pytest.mark.parametrize("layout", sorted(UNDO_MARKERS))
def test_no_undo_file_or_section_runs_without_to(db: Postgres, tmp_path: Path, layout: str) -> None:
    folder = write_files(tmp_path / "sql", UNDO_MARKERS[layout])
    for extra in ([], ["--dry-run"], ["--layout", layout], []):
        result = migrate(db, folder, tmp_path, *extra)
        assert result.code == 0, result.stderr
    assert {"a", "b"} <= tables(db) and not any(t.startswith("undo_ran") for t in tables(db))


def _slow_folder(layout: str) -> dict[str, str]:
    body = {n: f"SELECT pg_sleep(0.2);\nINSERT INTO runs VALUES ('{n}');" for n in range(2, 6)}
    if layout == "golang-migrate":
        return {"1_runs.up.sql": "CREATE TABLE runs (file text NOT NULL);",
                **{f"{n}_step.up.sql": sql for n, sql in body.items()}}
    if layout == "flyway":
        return {"V1__runs.sql": "CREATE TABLE runs (file text NOT NULL);",
                **{f"V1.{n}__step.sql": sql for n, sql in body.items()}}
    return {"1_runs.sql": "-- migrate:up\nCREATE TABLE runs (file text NOT NULL);\n-- migrate:down\n",
            **{f"{n}_step.sql": f"-- migrate:up\n{sql}\n-- migrate:down\n" for n, sql in body.items()}}


@pytest.mark.parametrize("layout,history", [("golang-migrate", "SELECT 1 FROM schema_migrations"),
                                            ("flyway", "SELECT 1 FROM flyway_schema_history"),
                                            ("dbmate", "SELECT 1 FROM schema_migrations")])
def test_five_runners_at_once_apply_each_file_once(db: Postgres, tmp_path: Path, layout: str, history: str) -> None:
    folder = write_files(tmp_path / "sql", _slow_folder(layout))
    outputs = run_migrate_together(db.app_url, folder, 5)
    assert [code for code, _ in outputs] == [0] * 5, outputs
    assert rows(db, "SELECT file, count(*) FROM runs GROUP BY file ORDER BY file") == [(str(n), 1) for n in range(2, 6)]
    assert len(rows(db, history)) == (1 if layout == "golang-migrate" else 5)
    assert sum(1 for _, err in outputs if "applied 5 migration(s)" in err) == 1
    assert any("another runner holds the migration lock" in err for _, err in outputs)


def test_a_connection_cut_mid_migration_applies_nothing(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {"1_a.up.sql": "CREATE TABLE a (id int);",
                                            "2_slow.up.sql": "CREATE TABLE b (id int);\nSELECT pg_sleep(30);"})
    runner = start_migrate(db.app_url, folder)
    try:
        deadline = time.monotonic() + 30
        while not rows(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name = 'initpipeline-migrate' AND query LIKE '%pg_sleep(30)%'"):
            assert time.monotonic() < deadline, "the slow migration did not start"
            time.sleep(0.05)
    finally:
        _, stderr = runner.communicate(timeout=60)
    assert runner.returncode == Exit.DATABASE, stderr
    assert "the connection to the database broke during 2_slow.up.sql" in stderr and "Traceback" not in stderr
    assert db.password not in stderr
    assert rows(db, "SELECT version, dirty FROM schema_migrations") == [(1, False)]
    assert tables(db) == {"a", "schema_migrations"}
