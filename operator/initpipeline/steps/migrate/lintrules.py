"""The lint rules: each one's stable id, what it finds, why that hurts a rolling update and the safe way.
The one source of the rules' documentation: the README's table is checked against it."""

from __future__ import annotations

from dataclasses import dataclass

BREAKS, LOCKS = "breaks", "locks"


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str       # BREAKS: the version still serving fails; LOCKS: a busy table waits
    dialects: str   # "postgresql", "mysql" or "postgresql, mysql"
    finds: str
    why: str
    safe: str


RULES = {rule.id: rule for rule in (
    Rule("drop-table", BREAKS, "postgresql, mysql", "DROP TABLE or DROP VIEW",
         "the version still serving reads and writes it until its last Pod is gone",
         "stop using it in one release; drop it in a file marked after-rollout"),
    Rule("drop-column", BREAKS, "postgresql, mysql", "ALTER TABLE ... DROP COLUMN",
         "the version still serving selects and inserts the column",
         "stop using it in one release; drop it in a file marked after-rollout"),
    Rule("rename-table", BREAKS, "postgresql, mysql", "ALTER TABLE ... RENAME TO, RENAME TABLE",
         "the version still serving queries the old name",
         "create the new table (or a view of the new name), write both, move reads, then drop the old "
         "after the rollout"),
    Rule("rename-column", BREAKS, "postgresql, mysql", "ALTER TABLE ... RENAME COLUMN, MySQL's CHANGE with a new name",
         "the version still serving queries the old name",
         "add the new column, write both and backfill, move reads; drop the old column after the rollout"),
    Rule("change-column-type", BREAKS, "postgresql, mysql", "ALTER COLUMN ... TYPE, MySQL's MODIFY and CHANGE",
         "the version still serving reads and writes the old type (and PostgreSQL rewrites the table under an "
         "exclusive lock)",
         "add a column of the new type, write both and backfill, move reads; drop the old one after the "
         "rollout"),
    Rule("set-not-null", BREAKS, "postgresql", "ALTER COLUMN ... SET NOT NULL",
         "the version still serving inserts rows without the column; and the table is scanned under an "
         "exclusive lock",
         "add CHECK (column IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it, then SET NOT NULL after the "
         "rollout (PostgreSQL 12 and later use the constraint and skip the scan)"),
    Rule("add-required-column", BREAKS, "postgresql, mysql", "ADD COLUMN ... NOT NULL without a DEFAULT",
         "the version still serving inserts rows without the column, which now fail",
         "add it with a DEFAULT, or nullable, and make it NOT NULL after the rollout"),
    Rule("drop-default", BREAKS, "postgresql, mysql", "ALTER COLUMN ... DROP DEFAULT",
         "the version still serving may insert rows that rely on the default",
         "drop the default in a file marked after-rollout"),
    Rule("create-index", LOCKS, "postgresql", "CREATE INDEX without CONCURRENTLY on a table of an earlier file",
         "writes to the table wait until the index is built",
         "CREATE INDEX CONCURRENTLY, in a file that runs outside a transaction "
         "('-- initpipeline:no-transaction' in the plain layout)"),
    Rule("add-unique-constraint", LOCKS, "postgresql", "ADD UNIQUE or PRIMARY KEY that builds its index",
         "reads and writes of the table wait until the index is built",
         "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX"),
    Rule("add-foreign-key", LOCKS, "postgresql, mysql", "ADD FOREIGN KEY that checks the existing rows",
         "writes to both tables wait while every row is checked (MySQL copies the table)",
         "PostgreSQL: ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a statement of its own; "
         "MySQL: an online schema change tool (gh-ost, pt-online-schema-change)"),
    Rule("add-check-constraint", LOCKS, "postgresql, mysql", "ADD CHECK that checks the existing rows",
         "writes to the table wait while every row is checked (MySQL copies the table)",
         "PostgreSQL: ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a statement of its own; "
         "MySQL: an online schema change tool"),
    Rule("volatile-default", LOCKS, "postgresql",
         "ADD COLUMN with a volatile DEFAULT (random(), gen_random_uuid(), clock_timestamp(), nextval()) "
         "or of a serial type",
         "the whole table is rewritten under an exclusive lock",
         "add the column without the default (or with a constant one), backfill in batches, then set the "
         "default"),
    Rule("vacuum-full", LOCKS, "postgresql", "VACUUM FULL",
         "the table is rewritten under an exclusive lock",
         "plain VACUUM, or pg_repack, outside the migration"),
    Rule("cluster", LOCKS, "postgresql", "CLUSTER",
         "the table is rewritten under an exclusive lock",
         "pg_repack --order-by, outside the migration"),
    Rule("table-copy", LOCKS, "mysql",
         "an ALTER TABLE that MySQL runs by copying the table: ALGORITHM=COPY, MODIFY or CHANGE of a column, "
         "CONVERT TO CHARACTER SET, ENGINE=, and OPTIMIZE TABLE",
         "writes to the table wait until the copy is done",
         "add ALGORITHM=INPLACE, LOCK=NONE (or ALGORITHM=INSTANT) so that MySQL refuses rather than copies, "
         "or use an online schema change tool (gh-ost, pt-online-schema-change)"),
)}
