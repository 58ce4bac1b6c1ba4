"""The migration linter: every rule on PostgreSQL and MySQL, what it must not find, the allow and
after-rollout comments, and the before-rollout order rule."""

from __future__ import annotations

import pytest

from initpipeline.steps.common import Exit
from initpipeline.steps.migrate.layouts import Folder, SqlFile, parse_folder
from initpipeline.steps.migrate.lint import UNKNOWN_RULE, lint_folder, lint_sql
from initpipeline.steps.migrate.lintrules import BREAKS, RULES
from initpipeline.steps.migrate.plan import Applied, History, PlanError, plan_migrate
from initpipeline.steps.migrate.rollout import AFTER_ROLLOUT, BEFORE_ROLLOUT, for_the_rollout
from initpipeline.steps.migrate.sqllex import MYSQL, POSTGRESQL, statements

PG, MY = POSTGRESQL, MYSQL

# (dialect, SQL, the rule it must find, words of the message). An existing table: `users` (no CREATE here).
FOUND = [
    (PG, "DROP TABLE users;", "drop-table", "drops table users"),
    (MY, "DROP TABLE IF EXISTS `users`;", "drop-table", "drops table users"),
    (PG, "DROP VIEW active_users;", "drop-table", "drops view active_users"),
    (PG, "ALTER TABLE users DROP COLUMN name;", "drop-column", "users.name"),
    (PG, "ALTER TABLE IF EXISTS ONLY public.users DROP COLUMN IF EXISTS name;", "drop-column", "public.users.name"),
    (MY, "ALTER TABLE users DROP name;", "drop-column", "users.name"),
    (PG, "ALTER TABLE users RENAME TO people;", "rename-table", "renames table users"),
    (MY, "RENAME TABLE users TO people;", "rename-table", "renames table users"),
    (PG, "ALTER TABLE users RENAME COLUMN name TO full_name;", "rename-column", "users.name to full_name"),
    (PG, "ALTER TABLE users RENAME name TO full_name;", "rename-column", "users.name"),
    (MY, "ALTER TABLE users RENAME COLUMN name TO full_name;", "rename-column", "users.name"),
    (MY, "ALTER TABLE users CHANGE name full_name VARCHAR(80);", "rename-column", "users.name to full_name"),
    (PG, "ALTER TABLE users ALTER COLUMN age TYPE bigint;", "change-column-type", "users.age"),
    (PG, "ALTER TABLE users ALTER age SET DATA TYPE bigint USING age::bigint;", "change-column-type", "users.age"),
    (MY, "ALTER TABLE users MODIFY COLUMN age BIGINT;", "change-column-type", "users.age"),
    (MY, "ALTER TABLE users CHANGE age age BIGINT;", "change-column-type", "users.age"),
    (PG, "ALTER TABLE users ALTER COLUMN email SET NOT NULL;", "set-not-null", "users.email"),
    (PG, "ALTER TABLE users ADD COLUMN email text NOT NULL;", "add-required-column", "users.email"),
    (MY, "ALTER TABLE users ADD email VARCHAR(80) NOT NULL;", "add-required-column", "users.email"),
    (PG, "ALTER TABLE users ALTER COLUMN plan DROP DEFAULT;", "drop-default", "users.plan"),
    (MY, "ALTER TABLE users ALTER plan DROP DEFAULT;", "drop-default", "users.plan"),
    (PG, "CREATE INDEX users_email ON users (email);", "create-index", "table users"),
    (PG, "CREATE UNIQUE INDEX IF NOT EXISTS users_email ON ONLY app.users (email);", "create-index", "app.users"),
    (PG, "ALTER TABLE users ADD CONSTRAINT users_email UNIQUE (email);", "add-unique-constraint", "users_email"),
    (PG, "ALTER TABLE users ADD PRIMARY KEY (id);", "add-unique-constraint", "primary"),
    (PG, "ALTER TABLE users ADD CONSTRAINT fk_org FOREIGN KEY (org_id) REFERENCES orgs (id);", "add-foreign-key",
     "fk_org"),
    (MY, "ALTER TABLE users ADD FOREIGN KEY (org_id) REFERENCES orgs (id);", "add-foreign-key", "users"),
    (PG, "ALTER TABLE users ADD CONSTRAINT adult CHECK (age >= 18);", "add-check-constraint", "adult"),
    (MY, "ALTER TABLE users ADD CHECK (age >= 18);", "add-check-constraint", "users"),
    (PG, "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();", "volatile-default", "users.token"),
    (PG, "ALTER TABLE users ADD COLUMN seq bigserial;", "volatile-default", "users.seq"),
    (PG, "ALTER TABLE users ADD COLUMN n int GENERATED ALWAYS AS IDENTITY;", "volatile-default", "users.n"),
    (PG, "ALTER TABLE users ADD COLUMN t timestamptz DEFAULT clock_timestamp();", "volatile-default", "users.t"),
    (PG, "VACUUM FULL users;", "vacuum-full", "rewrites"),
    (PG, "VACUUM (FULL, ANALYZE) users;", "vacuum-full", "rewrites"),
    (PG, "CLUSTER users USING users_pkey;", "cluster", "rewrites"),
    (MY, "ALTER TABLE users ALGORITHM=COPY, ADD COLUMN x INT;", "table-copy", "copies table users"),
    (MY, "ALTER TABLE users CONVERT TO CHARACTER SET utf8mb4;", "table-copy", "copies table users"),
    (MY, "ALTER TABLE users ENGINE=InnoDB;", "table-copy", "copies table users"),
    (MY, "ALTER TABLE users MODIFY age BIGINT;", "table-copy", "copies table users"),
    (MY, "OPTIMIZE TABLE users;", "table-copy", "rebuilds"),
]

# What no rule may find: safe ways, tables made by the same file, SQL in strings and function bodies.
CLEAN = [
    (PG, "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\nCREATE INDEX ON users (email);\n"
         "ALTER TABLE users ADD CONSTRAINT u UNIQUE (email);\nALTER TABLE users DROP COLUMN email;"),
    (PG, "CREATE INDEX CONCURRENTLY users_email ON users (email);"),
    (PG, "CREATE TABLE public.t (a int);\nCREATE INDEX ON t (a);\nALTER TABLE \"t\" ADD UNIQUE (a);"),
    (PG, "ALTER TABLE users ADD COLUMN plan text DEFAULT 'free' NOT NULL;"),
    (PG, "ALTER TABLE users ADD COLUMN created timestamptz DEFAULT now();"),
    (PG, "ALTER TABLE users ADD COLUMN note text;"),
    (PG, "ALTER TABLE users ADD CONSTRAINT fk FOREIGN KEY (org) REFERENCES orgs (id) NOT VALID;\n"
         "ALTER TABLE users VALIDATE CONSTRAINT fk;"),
    (PG, "ALTER TABLE users ADD CONSTRAINT adult CHECK (age >= 18) NOT VALID;"),
    (PG, "ALTER TABLE users ADD CONSTRAINT u UNIQUE USING INDEX users_email;"),
    (PG, "ALTER TABLE users ALTER COLUMN email DROP NOT NULL, ALTER COLUMN plan SET DEFAULT 'free';"),
    (PG, "ALTER TABLE users DROP CONSTRAINT users_email, RENAME CONSTRAINT a TO b;"),
    (PG, "VACUUM users; ANALYZE users;"),
    (PG, "INSERT INTO notes VALUES ('ALTER TABLE users DROP COLUMN name;');"),
    (PG, "CREATE FUNCTION f() RETURNS void AS $$ BEGIN DROP TABLE users; END $$ LANGUAGE plpgsql;\n"
         "CREATE FUNCTION g() RETURNS void AS $body$ ALTER TABLE users DROP COLUMN x $body$ LANGUAGE sql;"),
    (PG, "-- DROP TABLE users;\n/* ALTER TABLE users DROP COLUMN name; */ SELECT 1;"),
    (MY, "ALTER TABLE users ADD COLUMN x INT NOT NULL DEFAULT 0, ALGORITHM=INSTANT;"),
    (MY, "ALTER TABLE users ADD COLUMN x INT, ALGORITHM=INPLACE, LOCK=NONE;"),
    (MY, "ALTER TABLE users ADD INDEX users_email (email);\nCREATE INDEX i ON users (email);"),
    (MY, "ALTER TABLE users DROP INDEX i, DROP FOREIGN KEY fk, DROP PRIMARY KEY;"),
    (MY, "DELIMITER //\nCREATE PROCEDURE p() BEGIN ALTER TABLE users DROP name; END //\nDELIMITER ;\nSELECT 1;"),
    (MY, "# DROP TABLE users;\nINSERT INTO t VALUES ('it''s; DROP TABLE users', \"a\\\" DROP TABLE users\");"),
]


@pytest.mark.parametrize("dialect,sql,rule,words", FOUND, ids=lambda v: v if isinstance(v, str) and
                         len(v) < 30 else None)
def test_each_rule_finds_its_statement(dialect: str, sql: str, rule: str, words: str) -> None:
    found = lint_sql(sql, file="1.sql", dialect=dialect)
    assert [f.rule for f in found if f.rule == rule] == [rule], found
    [finding] = [f for f in found if f.rule == rule]
    assert words in finding.message
    assert not finding.allowed


def test_every_rule_has_a_case_in_each_of_its_dialects() -> None:
    covered = {(rule, dialect) for dialect, _, rule, _ in FOUND}
    for rule in RULES.values():
        for dialect in rule.dialects.split(", "):
            assert (rule.id, dialect) in covered, (rule.id, dialect)


@pytest.mark.parametrize("dialect,sql", CLEAN)
def test_safe_statements_have_no_finding(dialect: str, sql: str) -> None:
    assert lint_sql(sql, file="1.sql", dialect=dialect) == []


def test_a_rule_of_one_dialect_is_not_applied_to_the_other() -> None:
    assert lint_sql("CREATE INDEX i ON users (email);", file="1.sql", dialect=MY) == []
    assert lint_sql("ALTER TABLE users MODIFY age BIGINT;", file="1.sql", dialect=PG) == []


def test_findings_name_the_line_of_the_action_in_the_file() -> None:
    sql = "-- expand\nSELECT 1;\n\nALTER TABLE users\n  ADD COLUMN a int,\n  DROP COLUMN b;\n"
    [finding] = lint_sql(sql, file="7.sql", dialect=PG, first_line=3)
    assert (finding.file, finding.line, finding.rule) == ("7.sql", 8, "drop-column")
    assert finding.render().startswith("7.sql:8: drop-column: drops column users.b: ")
    assert RULES["drop-column"].safe in finding.render()


def test_an_allow_comment_before_or_inside_the_statement_allows_only_the_rules_it_names() -> None:
    sql = ("-- initpipeline:allow drop-column, rename-column\nALTER TABLE users DROP COLUMN a;\n"
           "ALTER TABLE users /* initpipeline:allow drop-table */ DROP COLUMN b;\n"
           "ALTER TABLE users RENAME COLUMN c TO d; -- initpipeline:allow rename-column\n"
           "ALTER TABLE users RENAME COLUMN e TO f;\n")
    found = lint_sql(sql, file="1.sql", dialect=PG)
    assert [(f.line, f.rule, f.allowed) for f in found] == [
        (2, "drop-column", True), (3, "drop-column", False), (4, "rename-column", False),
        (5, "rename-column", True)]  # a comment after the ';' belongs to the next statement


def test_an_allow_comment_that_names_no_rule_is_a_finding_that_breaks() -> None:
    found = lint_sql("-- initpipeline:allow drop-colum\nALTER TABLE users DROP COLUMN a;", file="1.sql", dialect=PG)
    assert [(f.rule, f.allowed, f.breaks) for f in found] == [(UNKNOWN_RULE, False, True),
                                                             ("drop-column", False, True)]
    assert "'initpipeline:allow drop-colum' names no rule" in found[0].message


def test_a_file_marked_after_rollout_keeps_only_what_locks() -> None:
    sql = "ALTER TABLE users DROP COLUMN a;\nCREATE INDEX i ON users (b);\n"
    found = lint_sql(sql, file="1.sql", dialect=PG, after_rollout=True)
    assert [f.rule for f in found] == ["create-index"]
    assert not found[0].breaks


def folder_of(texts: dict[str, str], layout: str | None = None) -> Folder:
    return parse_folder([SqlFile(name, text.encode()) for name, text in texts.items()], layout)


@pytest.mark.parametrize("layout,names,marked", [
    ("golang-migrate", ["1_a.up.sql", "2_b.up.sql", "3_c.up.sql"], "-- initpipeline:after-rollout\n"),
    ("flyway", ["V1__a.sql", "V2__b.sql", "V3__c.sql"], "-- initpipeline:after-rollout\n"),
    ("dbmate", ["1_a.sql", "2_b.sql", "3_c.sql"], "-- initpipeline:after-rollout\n"),
    ("plain", ["001_a.sql", "002_b.sql", "003_c.sql"], "-- initpipeline:after-rollout\n"),
])
def test_the_marker_and_the_lines_in_every_layout(layout: str, names: list[str], marked: str) -> None:
    def body(sql: str) -> str:
        return f"-- migrate:up\n{sql}\n-- migrate:down\nSELECT 1;\n" if layout == "dbmate" else f"{sql}\n"
    contents = [body("CREATE TABLE t (a int, b int);"), marked + body("ALTER TABLE t DROP COLUMN b;"),
                body("SELECT 1;\nALTER TABLE t RENAME COLUMN a TO c;")]
    folder = folder_of(dict(zip(names, contents, strict=True)), layout)
    assert [m.after_rollout for m in folder.migrations] == [False, True, False]
    found = lint_folder(folder, PG)
    assert [(f.file, f.line, f.rule) for f in found] == [(names[2], 3 if layout == "dbmate" else 2, "rename-column")]


def test_the_before_rollout_run_stops_at_the_first_marked_file_and_the_after_rollout_run_applies_the_rest() -> None:
    folder = folder_of({
        "1_a.up.sql": "CREATE TABLE t (a int, b int);",
        "2_b.up.sql": "-- initpipeline:after-rollout\nALTER TABLE t DROP COLUMN b;",
        "3_c.up.sql": "ALTER TABLE t ADD COLUMN c int;",
    })
    plan = plan_migrate(folder, History("schema_migrations"))
    before = for_the_rollout(plan, BEFORE_ROLLOUT, "block", PG)
    assert [a.file for a in before.actions] == ["1_a.up.sql"]
    assert "held for after the rollout: 2_b.up.sql (marked after-rollout) and the 1 file(s) after it" in before.notes
    after = for_the_rollout(plan, AFTER_ROLLOUT, "block", PG)
    assert [a.file for a in after.actions] == ["1_a.up.sql", "2_b.up.sql", "3_c.up.sql"]


def test_the_before_rollout_run_refuses_a_breaking_statement_unless_warned_or_allowed() -> None:
    folder = folder_of({"1_a.up.sql": "ALTER TABLE t ADD COLUMN c int;",
                        "2_b.up.sql": "SELECT 1;\nALTER TABLE t DROP COLUMN b;"})
    plan = plan_migrate(folder, History("schema_migrations"))
    with pytest.raises(PlanError) as refused:
        for_the_rollout(plan, BEFORE_ROLLOUT, "block", PG)
    assert refused.value.code == Exit.UNSAFE
    assert "nothing was run: 2_b.up.sql:2: drop-column: drops column t.b" in refused.value.message
    assert len(for_the_rollout(plan, BEFORE_ROLLOUT, "warn", PG).actions) == 2
    assert len(for_the_rollout(plan, BEFORE_ROLLOUT, "off", PG).actions) == 2
    assert len(for_the_rollout(plan, AFTER_ROLLOUT, "block", PG).actions) == 2  # nothing old serves then


def test_files_already_applied_are_not_linted_again() -> None:
    folder = folder_of({"1_a.up.sql": "ALTER TABLE t DROP COLUMN b;"})
    plan = plan_migrate(folder, History("schema_migrations", current="1", applied=(Applied("1"),)))
    assert for_the_rollout(plan, BEFORE_ROLLOUT, "block", PG).actions == ()


def test_the_lexer_keeps_mysql_and_postgresql_quotes_and_counts_lines() -> None:
    pg = list(statements("SELECT 'a;b', \"c;d\", E'\\';' ;\nSELECT $x$ ; $x$;\n\nSELECT 2", PG))
    assert [s.line for s in pg] == [1, 2, 4]
    my = list(statements("SELECT 'a\\';b', `c;d`;\nDELIMITER $$\nSELECT 1; SELECT 2$$\nDELIMITER ;\nSELECT 3;", MY))
    assert [(s.line, len(s.tokens)) for s in my] == [(1, 4), (3, 5), (5, 2)]


def test_rules_are_documented_with_what_they_find_why_and_instead() -> None:
    for rule in RULES.values():
        assert rule.finds and rule.why and rule.safe and rule.kind in (BREAKS, "locks")
        assert set(rule.dialects.split(", ")) <= {PG, MY}
