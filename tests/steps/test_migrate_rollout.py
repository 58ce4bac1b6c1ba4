"""Before and after the rollout, on a real PostgreSQL and a real MariaDB: a file that would break the version
still serving is refused before anything runs; a file marked after-rollout waits, with the files after it,
for `--when after-rollout`; one history table in every layout."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from initpipeline.steps.common import Exit
from tests.helpers import MariaDB, Postgres, mysql_rows, mysql_run, run_migrate, sql_rows, write_files

MARK = "-- initpipeline:after-rollout\n"


def columns(rows: list[tuple]) -> list[str]:  # type: ignore[type-arg]
    return sorted(r[0] for r in rows)


def pg_columns(db: Postgres) -> list[str]:
    return columns(sql_rows(db.app_url, "SELECT column_name FROM information_schema.columns WHERE table_name = "
                                        "'users'"))


@pytest.fixture
def maria(mariadb: MariaDB) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield mariadb.fresh(name)
    mysql_run(mariadb.url(), f"DROP DATABASE IF EXISTS `{name}`")


def maria_columns(url: str) -> list[str]:
    return columns(mysql_rows(url, "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                   "DATABASE() AND table_name = 'users'"))


@pytest.mark.postgres
def test_postgres_a_breaking_file_is_refused_before_anything_runs(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {"1_users.up.sql": "CREATE TABLE users (id int, name text);"})
    assert run_migrate(db.app_url, folder, tmp_path).code == 0
    write_files(folder, {"2_expand.up.sql": "ALTER TABLE users ADD COLUMN full_name text;",
                         "3_drop.up.sql": "UPDATE users SET full_name = name;\nALTER TABLE users DROP COLUMN name;"})
    refused = run_migrate(db.app_url, folder, tmp_path)
    assert refused.code == Exit.UNSAFE, refused.stderr
    assert refused.termination.startswith("migrate: refused before the rollout, nothing was run: "
                                          "3_drop.up.sql:2: drop-column: drops column users.name")
    assert pg_columns(db) == ["id", "name"]  # not even the harmless 2_expand ran
    assert sql_rows(db.app_url, "SELECT version, dirty FROM schema_migrations") == [(1, False)]

    warned = run_migrate(db.app_url, folder, tmp_path, "--lint", "warn")
    assert warned.code == 0, warned.stderr
    assert "warning: 3_drop.up.sql:2: drop-column: drops column users.name" in warned.stderr
    assert pg_columns(db) == ["full_name", "id"]


@pytest.mark.postgres
def test_postgres_an_allowed_statement_runs_and_locking_ones_are_warned(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {
        "001_users.sql": "CREATE TABLE users (id int, name text);",
        "002_more.sql": "ALTER TABLE users ADD COLUMN email text;\nCREATE INDEX users_email ON users (email);\n"
                        "-- initpipeline:allow drop-column: nothing reads it yet\nALTER TABLE users DROP COLUMN name;",
    })
    result = run_migrate(db.app_url, folder, tmp_path)
    assert result.code == 0, result.stderr
    assert "warning: 002_more.sql:2: create-index: builds an index of table users" in result.stderr
    assert "drop-column" not in result.stderr
    assert pg_columns(db) == ["email", "id"]


LAYOUTS = {
    "golang-migrate": ({"1_users.up.sql": "CREATE TABLE users (id int, name text, full_name text);",
                        "2_contract.up.sql": MARK + "ALTER TABLE users DROP COLUMN name;",
                        "3_next.up.sql": "ALTER TABLE users ADD COLUMN email text;"},
                       "SELECT version::text FROM schema_migrations", [("1",)], [("3",)]),
    "flyway": ({"V1__users.sql": "CREATE TABLE users (id int, name text, full_name text);",
                "V2__contract.sql": MARK + "ALTER TABLE users DROP COLUMN name;",
                "V3__next.sql": "ALTER TABLE users ADD COLUMN email text;"},
               "SELECT version FROM flyway_schema_history WHERE success ORDER BY installed_rank",
               [("1",)], [("1",), ("2",), ("3",)]),
    "dbmate": ({"1_users.sql": "-- migrate:up\nCREATE TABLE users (id int, name text, full_name text);\n"
                               "-- migrate:down\nDROP TABLE users;\n",
                "2_contract.sql": MARK + "-- migrate:up\nALTER TABLE users DROP COLUMN name;\n-- migrate:down\n",
                "3_next.sql": "-- migrate:up\nALTER TABLE users ADD COLUMN email text;\n-- migrate:down\n"},
               "SELECT version FROM schema_migrations ORDER BY version", [("1",)], [("1",), ("2",), ("3",)]),
    "plain": ({"001_users.sql": "CREATE TABLE users (id int, name text, full_name text);",
               "002_contract.sql": MARK + "ALTER TABLE users DROP COLUMN name;",
               "003_next.sql": "ALTER TABLE users ADD COLUMN email text;"},
              "SELECT name FROM initpipeline_schema_history ORDER BY name",
              [("001_users.sql",)], [("001_users.sql",), ("002_contract.sql",), ("003_next.sql",)]),
}


@pytest.mark.postgres
@pytest.mark.parametrize("layout", LAYOUTS)
def test_postgres_a_marked_file_waits_for_after_the_rollout_in_one_history(db: Postgres, tmp_path: Path,
                                                                          layout: str) -> None:
    files, history, before, after = LAYOUTS[layout]
    folder = write_files(tmp_path / "sql", files)
    first = run_migrate(db.app_url, folder, tmp_path)
    assert first.code == 0, first.stderr
    assert "held for after the rollout: " in first.termination and "and the 1 file(s) after it" in first.termination
    assert pg_columns(db) == ["full_name", "id", "name"]  # the file after the marked one waited too
    assert sql_rows(db.app_url, history) == before

    again = run_migrate(db.app_url, folder, tmp_path)  # another replica's run before the rollout: still held
    assert again.code == 0 and "applied 0 migration(s)" in again.termination

    contract = run_migrate(db.app_url, folder, tmp_path, "--when", "after-rollout")
    assert contract.code == 0, contract.stderr
    assert "applied 2 migration(s)" in contract.termination
    assert pg_columns(db) == ["email", "full_name", "id"]
    assert sql_rows(db.app_url, history) == after


def test_mariadb_a_breaking_file_is_refused_and_a_marked_one_waits(maria: str, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {
        "V1__users.sql": "CREATE TABLE users (id INT, name VARCHAR(80), age INT);",
        "V2__type.sql": "ALTER TABLE users MODIFY age BIGINT;",
    })
    refused = run_migrate(maria, folder, tmp_path)
    assert refused.code == Exit.UNSAFE, refused.stderr
    assert "V2__type.sql:1: change-column-type: redefines column users.age" in refused.termination
    assert mysql_rows(maria, "SHOW TABLES") == []  # nothing ran, not even V1, nor the history table

    write_files(folder, {"V2__type.sql": MARK + "ALTER TABLE users DROP COLUMN name;"})
    first = run_migrate(maria, folder, tmp_path)
    assert first.code == 0, first.stderr
    assert "held for after the rollout: V2__type.sql" in first.termination
    assert maria_columns(maria) == ["age", "id", "name"]
    contract = run_migrate(maria, folder, tmp_path, "--when", "after-rollout")
    assert contract.code == 0, contract.stderr
    assert maria_columns(maria) == ["age", "id"]
    assert mysql_rows(maria, "SELECT version FROM flyway_schema_history WHERE success ORDER BY installed_rank") == [
        ("1",), ("2",)]
