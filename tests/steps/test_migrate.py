from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from initpipeline.steps.common import Exit
from initpipeline.steps.migrate import lock_key, natural_key
from tests.helpers import (
    CertificateAuthority,
    Postgres,
    run_migrate,
    run_migrate_together,
    run_step,
    sql_rows,
    write_files,
)

pytestmark = pytest.mark.postgres


SCHEMA = {
    "1_create_items.sql": "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);",
    "2_seed.sql": "INSERT INTO items (name) VALUES ('apple');\nINSERT INTO items (name) VALUES ('pear');",
    "10_add_price.sql": "ALTER TABLE items ADD COLUMN price numeric NOT NULL DEFAULT 0;",
}


def test_applies_in_natural_order_once(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", SCHEMA)
    first = run_migrate(db.app_url, folder, tmp_path)
    assert first.code == 0, first.stderr
    assert first.termination.startswith("applied 3 migration(s)")
    assert "1_create_items.sql, 2_seed.sql, 10_add_price.sql" in first.termination
    history = sql_rows(db.app_url, "SELECT name, checksum, applied_at IS NOT NULL FROM initpipeline_schema_history "
                        "ORDER BY applied_at, name")
    assert [h[0] for h in history] == ["1_create_items.sql", "2_seed.sql", "10_add_price.sql"]
    assert all(len(h[1]) == 64 and h[2] for h in history)
    assert sql_rows(db.app_url, "SELECT name, price FROM items ORDER BY id") == [("apple", 0), ("pear", 0)]

    again = run_migrate(db.app_url, folder, tmp_path)
    assert again.code == 0
    assert again.termination.startswith("applied 0 migration(s)") and "3 already applied" in again.termination
    assert sql_rows(db.app_url, "SELECT count(*) FROM items") == [(2,)]


def test_only_new_files_are_applied(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", SCHEMA)
    assert run_migrate(db.app_url, folder, tmp_path).code == 0
    write_files(folder, {"11_more.sql": "INSERT INTO items (name) VALUES ('fig');"})
    result = run_migrate(db.app_url, folder, tmp_path)
    assert result.code == 0 and "applied 1 migration(s)" in result.termination and "11_more.sql" in result.termination
    assert sql_rows(db.app_url, "SELECT count(*) FROM items") == [(3,)]


def test_five_runners_at_once_apply_each_file_exactly_once(db: Postgres, tmp_path: Path) -> None:
    files = {"1_log.sql": "CREATE TABLE runs (file text NOT NULL);"}
    for n in range(2, 7):
        # pg_sleep widens the window in which the runners overlap
        files[f"{n}_step.sql"] = f"SELECT pg_sleep(0.3);\nINSERT INTO runs VALUES ('{n}');"
    folder = write_files(tmp_path / "sql", files)
    outputs = run_migrate_together(db.app_url, folder, 5)
    assert [code for code, _ in outputs] == [0] * 5, outputs
    assert sql_rows(db.app_url, "SELECT file, count(*) FROM runs GROUP BY file ORDER BY file") == [
        (str(n), 1) for n in range(2, 7)]
    assert sql_rows(db.app_url, "SELECT count(*) FROM initpipeline_schema_history") == [(6,)]
    applied_counts = sorted(err.count("applied ") - err.count("already applied") for _, err in outputs)
    assert sum(1 for c in applied_counts if c > 0) == 1, "more than one runner applied migrations"
    assert any("another runner holds the migration lock" in err for _, err in outputs)


def test_edited_applied_file_is_drift(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", SCHEMA)
    assert run_migrate(db.app_url, folder, tmp_path).code == 0
    old = sql_rows(db.app_url, "SELECT checksum FROM initpipeline_schema_history WHERE name = '2_seed.sql'")[0][0]
    write_files(folder, {"2_seed.sql": "INSERT INTO items (name) VALUES ('plum');", "11_new.sql": "DROP TABLE items;"})
    result = run_migrate(db.app_url, folder, tmp_path)
    assert result.code == Exit.DRIFT
    assert f"2_seed.sql was applied with sha256 {old} but the file now has sha256" in result.termination
    assert sql_rows(db.app_url, "SELECT count(*) FROM items") == [(2,)]  # 11_new.sql was not applied
    assert sql_rows(db.app_url, "SELECT count(*) FROM initpipeline_schema_history") == [(3,)]


def test_failing_file_leaves_the_database_as_it_was(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", {
        "1_ok.sql": "CREATE TABLE a (id int);",
        "2_bad.sql": "CREATE TABLE b (id int);\nINSERT INTO b VALUES (1);\nINSERT INTO nowhere VALUES (1);",
        "3_never.sql": "CREATE TABLE c (id int);",
    })
    result = run_migrate(db.app_url, folder, tmp_path)
    assert result.code == Exit.MIGRATION
    assert "migration 2_bad.sql failed and was rolled back" in result.termination
    assert 'relation "nowhere" does not exist' in result.termination
    assert "SQLSTATE 42P01" in result.termination
    tables = {r[0] for r in sql_rows(db.app_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"a", "initpipeline_schema_history"}
    assert sql_rows(db.app_url, "SELECT name FROM initpipeline_schema_history") == [("1_ok.sql",)]
    assert db.password not in result.stderr + result.termination


def test_dry_run_changes_nothing(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", SCHEMA)
    result = run_migrate(db.app_url, folder, tmp_path, "--dry-run")
    assert result.code == 0
    assert result.termination.splitlines()[0] == \
        "would apply 3 migration(s): 1_create_items.sql, 2_seed.sql, 10_add_price.sql"
    assert sql_rows(db.app_url, "SELECT to_regclass('initpipeline_schema_history') IS NULL, "
                                "to_regclass('items') IS NULL") == [(True, True)]


def test_lock_timeout(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", SCHEMA)
    with psycopg.connect(db.app_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("initpipeline_schema_history"),))
        result = run_migrate(db.app_url, folder, tmp_path, "--lock-timeout", "1")
    assert result.code == Exit.LOCK_TIMEOUT
    assert "could not take the migration lock within 1.0s" in result.termination
    assert sql_rows(db.app_url, "SELECT to_regclass('items') IS NULL") == [(True,)]


def test_custom_history_table_in_a_schema(db: Postgres, tmp_path: Path) -> None:
    with psycopg.connect(db.app_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA ops")
    folder = write_files(tmp_path / "sql", SCHEMA)
    assert run_migrate(db.app_url, folder, tmp_path, "--history-table", "ops.migrations").code == 0
    assert sql_rows(db.app_url, "SELECT count(*) FROM ops.migrations") == [(3,)]


def test_configmap_mount_layout(db: Postgres, tmp_path: Path) -> None:
    """A mounted ConfigMap holds ..data and timestamped folders beside symlinks to the keys."""
    real = write_files(tmp_path / "cm" / "..2026_11_22_10_00_00.1", {"1_a.sql": "CREATE TABLE z (id int);"})
    (tmp_path / "cm" / "..data").symlink_to(real.name)
    (tmp_path / "cm" / "1_a.sql").symlink_to("..data/1_a.sql")
    (tmp_path / "cm" / "README").write_text("not sql")
    result = run_migrate(db.app_url, tmp_path / "cm", tmp_path)
    assert result.code == 0, result.stderr
    assert "applied 1 migration(s)" in result.termination and "ignoring files without .sql: README" in result.stderr


def test_verified_tls_with_the_steps_ca_bundle(db: Postgres, tmp_path: Path, ca: CertificateAuthority) -> None:
    folder = write_files(tmp_path / "sql", SCHEMA)
    verified = db.app_url.replace("127.0.0.1", "localhost") + "?sslmode=verify-full"
    result = run_migrate(verified, folder, tmp_path, "--ca-file", str(ca.ca_file))
    assert result.code == 0, result.stderr
    # without it, libpq looks for ~/.postgresql/root.crt, and a certificate problem is not waited out
    refused = run_migrate(verified, folder, tmp_path, "--connect-timeout", "30")
    assert refused.code == Exit.DATABASE and "root certificate file" in refused.termination, refused.termination
    assert "retrying" not in refused.stderr


def test_wrong_password_is_a_database_error_without_the_password(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", SCHEMA)
    url = db.app_url.replace(db.password, "Wrong-Secret-9")
    result = run_migrate(url, folder, tmp_path)
    assert result.code == Exit.DATABASE
    assert "cannot connect to the database" in result.termination
    assert "password authentication failed" in result.termination
    assert "Wrong-Secret-9" not in result.stderr + result.termination


def test_unreachable_database(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", SCHEMA)
    result = run_migrate("postgresql://app:pw-xyz@127.0.0.1:1/app", folder, tmp_path)
    assert result.code == Exit.DATABASE and "pw-xyz" not in result.stderr + result.termination


@pytest.mark.parametrize("args,env,code,needle", [
    (["--sql-dir", "/nonexistent"], {"DB_URL": "postgresql://x"}, Exit.SQL_DIR, "cannot read --sql-dir /nonexistent"),
    (["--sql-dir", "."], {}, Exit.USAGE, "environment variable DB_URL is empty or unset"),
    (["--sql-dir", ".", "--history-table", "Robert'); DROP TABLE x;--"], {"DB_URL": "postgresql://x"}, Exit.USAGE,
     "--history-table: expected a lower-case [schema.]table name"),
    (["--sql-dir", ".", "--lock-timeout", "-1"], {"DB_URL": "postgresql://x"}, Exit.USAGE, "--runner-lock-timeout"),
    (["--sql-dir", ".", "--table-lock-timeout", "-1"], {"DB_URL": "postgresql://x"}, Exit.USAGE,
     "--table-lock-timeout: must be 0 or more"),
])
def test_bad_arguments(tmp_path: Path, args: list[str], env: dict[str, str], code: int, needle: str) -> None:
    result = run_step("migrate", "--database-url-env", "DB_URL", *args, env={"DB_URL": "", **env}, tmp=tmp_path)
    assert result.code == code, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_natural_key() -> None:
    names = ["V10__x.sql", "V2__y.sql", "V1__z.sql", "V100__w.sql", "V9__v.sql"]
    assert sorted(names, key=natural_key) == ["V1__z.sql", "V2__y.sql", "V9__v.sql", "V10__x.sql", "V100__w.sql"]


def test_waits_for_a_database_that_comes_up_late(tmp_path: Path) -> None:
    """The runner retries while the server is down, then migrates (Flyway's connectRetries, built in)."""
    from tests.helpers import free_port, late_listener

    folder = write_files(tmp_path / "sql", SCHEMA)
    port = free_port()
    url = f"postgresql://app:pw-late@127.0.0.1:{port}/app"
    with late_listener(port, 0):  # accepts and closes: a server that is not ready
        result = run_migrate(url, folder, tmp_path, "--connect-timeout", "2")
    assert result.code == Exit.DATABASE
    assert 1.5 < result.seconds < 15
    assert "database not reachable yet" in result.stderr
    assert "pw-late" not in result.stderr + result.termination


def test_authentication_failure_is_not_retried(db: Postgres, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "sql", SCHEMA)
    url = db.app_url.replace(db.password, "Wrong-Secret-9")
    result = run_migrate(url, folder, tmp_path, "--connect-timeout", "30")
    assert result.code == Exit.DATABASE and result.seconds < 10
