"""The migration runner's pure parts: reading a folder by layout, planning a run, splitting SQL."""

from __future__ import annotations

import itertools

import pytest

from initpipeline.steps.common import Exit
from initpipeline.steps.migrate.layouts import FolderError, SqlFile, parse_folder
from initpipeline.steps.migrate.plan import Applied, History, PlanError, plan_migrate, plan_rollback
from initpipeline.steps.migrate.sqltext import flyway_checksum, split_statements
from tests.cases import BAD_FOLDERS, BadFolder


def folder(files: dict[str, str], layout: str | None = None):  # type: ignore[no-untyped-def]
    return parse_folder([SqlFile(name, text.encode()) for name, text in files.items()], layout)


@pytest.mark.parametrize("case", BAD_FOLDERS, ids=lambda c: c.id)
def test_bad_folders_are_refused_naming_the_files(case: BadFolder) -> None:
    with pytest.raises(FolderError) as refused:
        folder(case.files, case.layout)
    assert case.message in str(refused.value)


@pytest.mark.parametrize("files,layout", [
    ({"1_a.up.sql": "", "1_a.down.sql": ""}, "golang-migrate"),
    ({"V1__a.sql": "", "R__b.sql": ""}, "flyway"),
    ({"1_a.sql": "-- migrate:up\n-- migrate:down\n"}, "dbmate"),
    ({"1_a.sql": "", "2_b.sql": "", "V1__legacy.sql": ""}, None),  # mixed: a V file among plain ones
    ({"001_init.sql": "", "README.sql": ""}, "plain"),
])
def test_layout_is_detected_from_names_and_contents(files: dict[str, str], layout: str | None) -> None:
    if layout is None:
        with pytest.raises(FolderError, match="mixes layouts"):
            folder(files)
    else:
        assert folder(files).layout == layout


def test_golang_migrate_orders_by_number_and_pairs_down_files() -> None:
    parsed = folder({"10_c.up.sql": "C", "2_b.up.sql": "B", "2_b.down.sql": "-B", "1_a.up.sql": "A"})
    assert [(m.version, m.name, m.down_name) for m in parsed.migrations] == [
        ("1", "1_a.up.sql", ""), ("2", "2_b.up.sql", "2_b.down.sql"), ("10", "10_c.up.sql", "")]
    assert [m.up[0].sql for m in parsed.migrations] == ["A", "B", "C"]


def test_flyway_orders_as_versions_and_keeps_repeatables_apart() -> None:
    parsed = folder({"V1.10__j.sql": "", "V1.9__i.sql": "", "V1_1__b.sql": "", "V1__a.sql": "", "V2__k.sql": "",
                     "R__z_view.sql": "", "R__a_view.sql": "", "U2__k.sql": "undo"})
    assert [m.version for m in parsed.migrations] == ["1", "1.1", "1.9", "1.10", "2"]
    assert [m.description for m in parsed.repeatables] == ["a view", "z view"]
    assert parsed.migrations[-1].down_name == "U2__k.sql"


def test_dbmate_sections_and_options() -> None:
    text = ("-- a comment first is fine\n-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\n"
            "-- migrate:down\nDROP INDEX i;\n-- migrate:up\nSELECT 2;\n-- migrate:down transaction:false\nSELECT -2;\n")
    (m,) = folder({"20240101_x.sql": text}).migrations
    assert m.version == "20240101"
    assert [(p.transactional, "CONCURRENTLY" in p.sql or "SELECT 2" in p.sql) for p in m.up] == [(False, True),
                                                                                                (True, True)]
    assert [p.transactional for p in m.down] == [True, False]
    assert all("DROP INDEX" not in p.sql for p in m.up)
    with pytest.raises(FolderError, match="unknown dbmate option 'transaction:maybe'"):
        folder({"1_x.sql": "-- migrate:up transaction:maybe\n-- migrate:down\n"})


def test_plain_keeps_natural_order_and_its_no_transaction_mark() -> None:
    parsed = folder({"10_c.sql": "C", "2_b.sql": "-- initpipeline:no-transaction\nB", "1_a.sql": "A"})
    assert [m.name for m in parsed.migrations] == ["1_a.sql", "2_b.sql", "10_c.sql"]
    assert [m.up[0].transactional for m in parsed.migrations] == [True, False, True]


def test_byte_order_mark_is_not_sql() -> None:
    (m,) = parse_folder([SqlFile("1_a.sql", b"\xef\xbb\xbfSELECT 1;")], None).migrations
    assert m.up[0].sql == "SELECT 1;"


# --- planning -----------------------------------------------------------------------------------

GM = {f"{v}_m{v}.up.sql": f"up {v}" for v in (1, 2, 3)} | {f"{v}_m{v}.down.sql": f"down {v}" for v in (1, 2, 3)}


def test_golang_migrate_plan_continues_after_the_current_version() -> None:
    plan = plan_migrate(folder(GM), History("schema_migrations", current="2"))
    assert [(a.file, a.record, a.undo) for a in plan.actions] == [("3_m3.up.sql", "3", False)]
    assert plan.already == 2


def test_golang_migrate_database_ahead_of_the_folder_is_left_alone() -> None:
    plan = plan_migrate(folder(GM), History("schema_migrations", current="9"))
    assert plan.actions == () and "newer than this folder's latest (3)" in plan.notes[0]


def test_golang_migrate_rollback_records_the_version_before() -> None:
    plan = plan_rollback(folder(GM), History("schema_migrations", current="3"), "1")
    assert [(a.file, a.record) for a in plan.actions] == [("3_m3.down.sql", "2"), ("2_m2.down.sql", "1")]
    everything = plan_rollback(folder(GM), History("schema_migrations", current="3"), "0")
    assert [a.record for a in everything.actions] == ["2", "1", None]


def test_flyway_plan_uses_version_identity_and_baseline() -> None:
    fly = folder({"V1__a.sql": "a", "V1.1__b.sql": "b", "V2__c.sql": "c", "R__v.sql": "v"})
    history = History("flyway_schema_history", (Applied("1.0", "V1__a.sql", fly.migrations[0].checksum),),
                      repeatables={"v": fly.repeatables[0].checksum})
    assert [a.file for a in plan_migrate(fly, history).actions] == ["V1.1__b.sql", "V2__c.sql"]
    baselined = plan_migrate(fly, History("flyway_schema_history", baseline="1.1"))
    assert [a.file for a in baselined.actions] == ["V2__c.sql", "R__v.sql"]
    assert "at or below the baseline 1.1 (not applied): V1__a.sql, V1.1__b.sql" in baselined.notes


def test_dirty_history_is_refused_before_planning() -> None:
    with pytest.raises(PlanError) as refused:
        plan_migrate(folder(GM), History("schema_migrations", current="2", dirty="version 2 is dirty"))
    assert refused.value.code == Exit.DIRTY


def test_no_plan_without_a_target_ever_undoes() -> None:
    """Every layout, every history a folder can have: plan_migrate applies and never undoes."""
    folders = [folder(GM),
               folder({"V1__a.sql": "", "U1__a.sql": "", "V2__b.sql": "", "U2__b.sql": "", "R__r.sql": ""}),
               folder({f"{v}_x.sql": "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n" for v in (1, 2, 3)})]
    checked = 0
    for parsed in folders:
        versions = [m.version for m in parsed.migrations]
        for size in range(len(versions) + 1):
            for chosen in itertools.combinations(versions, size):
                applied = tuple(Applied(v, checksum="") for v in chosen)
                current = chosen[-1] if chosen else None
                history = History("t", applied, current=current if parsed.layout == "golang-migrate" else None)
                try:
                    plan = plan_migrate(parsed, history)
                except PlanError:
                    continue  # refusing is fine; undoing is not
                assert not any(a.undo for a in plan.actions)
                up_files = {m.name for m in parsed.migrations}
                down_files = {m.down_name for m in parsed.migrations if m.down_name} - up_files
                assert not {a.file for a in plan.actions} & down_files
                checked += 1
    assert checked > 10


# --- SQL text -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sql,expected", [
    ("SELECT 1; SELECT 2;", ["SELECT 1;", "SELECT 2;"]),
    ("INSERT INTO t VALUES ('a;b', 'it''s');\nSELECT 2", ["INSERT INTO t VALUES ('a;b', 'it''s');", "SELECT 2"]),
    ("SELECT E'\\';' ; SELECT 3;", ["SELECT E'\\';' ;", "SELECT 3;"]),
    ('CREATE TABLE "a;b" (x int);', ['CREATE TABLE "a;b" (x int);']),
    ("CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;\nSELECT f();",
     ["CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;", "SELECT f();"]),
    ("DO $$ BEGIN PERFORM 1; END $$;", ["DO $$ BEGIN PERFORM 1; END $$;"]),
    ("-- a; comment\nSELECT 1; /* x; /* nested; */ y; */ SELECT 2;",
     ["-- a; comment\nSELECT 1;", "/* x; /* nested; */ y; */ SELECT 2;"]),
    ("CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END;"
     " SELECT 3;", ["CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; "
                    "SELECT 2; END;", "SELECT 3;"]),
    ("SELECT $1; -- only comments after\n;\n  ", ["SELECT $1;"]),
])
def test_split_statements(sql: str, expected: list[str]) -> None:
    assert split_statements(sql) == expected


def test_flyway_checksum_ignores_line_endings_and_the_byte_order_mark() -> None:
    base = flyway_checksum(b"CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n")
    assert base == flyway_checksum(b"CREATE TABLE a (id int);\r\nINSERT INTO a VALUES (1);")
    assert base == flyway_checksum(b"\xef\xbb\xbfCREATE TABLE a (id int);\rINSERT INTO a VALUES (1);\n")
    # Flyway drops line breaks before hashing, so even a blank line leaves the checksum as it is
    assert base == flyway_checksum(b"CREATE TABLE a (id int);\n\nINSERT INTO a VALUES (1);\n")
    assert base != flyway_checksum(b"CREATE TABLE a (id int);\nINSERT INTO a VALUES (2);\n")
    assert -(1 << 31) <= base < 1 << 31
