"""The history tables, each kept the way its own tool keeps it, so a team can switch in either direction.

- golang-migrate: `schema_migrations (version bigint, dirty boolean)`, one row: the current version.
- Flyway: `flyway_schema_history`, one row per run of a script, with Flyway's columns and checksums.
- dbmate: `schema_migrations (version varchar)`, one row per applied version.
- plain: initpipeline's own `initpipeline_schema_history`, one row per file with its sha256.

`begin` records that an action has started (golang-migrate's dirty flag, a Flyway row with success
false, a plain row marked dirty; dbmate has no such state) and `finish` that it is done. On PostgreSQL both
run in the action's transaction when it has one, so a rolled-back action leaves no trace. MySQL commits
DDL at once, so there `begin` is committed first and `abandon` takes it back when nothing of the action
was applied.

Each table is kept in both dialects, `postgresql` and `mysql` (MariaDB too), with the columns and types
that its tool uses on that database.
"""

from __future__ import annotations

import zlib
from typing import Any

from ...spec.names import DEFAULT_HISTORY_TABLE
from .layouts import DBMATE, FLYWAY, GOLANG_MIGRATE, PLAIN, flyway_version
from .plan import Action, Applied, History

POSTGRESQL, MYSQL = "postgresql", "mysql"
LockKey = int | str  # a PostgreSQL advisory lock's key, a MySQL named lock's name

DEFAULT_TABLES = {GOLANG_MIGRATE: "schema_migrations", FLYWAY: "flyway_schema_history",
                  DBMATE: "schema_migrations", PLAIN: DEFAULT_HISTORY_TABLE}

_GOLANG_MIGRATE_LOCK_SALT = 1486364155
_FLYWAY_LOCK_MAGIC = (0x46 << 40) + (0x6C << 32) + (0x79 << 24) + (0x77 << 16) + (0x61 << 8) + 0x79


class ForeignTable(Exception):
    """The history table exists but is not this layout's."""


def _java_string_hash(text: str) -> int:
    """Java's String.hashCode: over UTF-16 code units, wrapping at 32 bits (Flyway's lock discriminator)."""
    data, value = text.encode("utf-16-be"), 0
    for i in range(0, len(data), 2):
        value = (31 * value + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


class Ledger:
    layout = ""
    columns: tuple[str, ...] = ()
    other_tool = ""

    def __init__(self, conn: Any, table: str, dialect: str = POSTGRESQL):
        self.conn, self.table, self.dialect = conn, table, dialect
        self.mysql = dialect == MYSQL
        self.schema, _, self.name = table.rpartition(".")
        # validated names ([schema.]table of lower-case letters, digits and _): quoting cannot be escaped
        self.mark = "`" if self.mysql else '"'
        self.quoted = ".".join(f"{self.mark}{part}{self.mark}" for part in table.split("."))

    def q(self, template: str) -> str:
        return template.format(t=self.quoted)

    def exists(self) -> bool:
        if self.mysql:
            row = self.conn.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
                                    "COALESCE(NULLIF(%s, ''), DATABASE()) AND table_name = %s",
                                    (self.schema, self.name)).fetchone()
        else:
            row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (self.quoted,)).fetchone()
        return bool(row and row[0])

    def existing_columns(self) -> set[str]:
        if self.mysql:
            rows = self.conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                     "COALESCE(NULLIF(%s, ''), DATABASE()) AND table_name = %s",
                                     (self.schema, self.name)).fetchall()
        else:
            rows = self.conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                                     "AND attnum > 0 AND NOT attisdropped", (self.quoted,)).fetchall()
        return {str(r[0]) for r in rows}

    def check_shape(self) -> None:
        have = self.existing_columns()
        if not set(self.columns) <= have:
            raise ForeignTable(f"{self.table} exists but is not {self.layout}'s history table: it has columns "
                               f"({', '.join(sorted(have))}), and {self.layout} keeps ({', '.join(self.columns)})"
                               f"{self.other_tool_hint(have)}. Set the layout that wrote it, or another historyTable")

    def other_tool_hint(self, have: set[str]) -> str:
        return ""

    def read(self) -> History:
        if not self.exists():
            return History(self.table)
        self.check_shape()
        return self._read()

    def _read(self) -> History:
        raise NotImplementedError

    def ensure(self) -> None:
        """Create the table as its tool creates it (the run holds the migration lock)."""
        if not self.exists():
            for statement in self.create_sql():
                self.conn.execute(self.q(statement))
        else:
            self.check_shape()

    def create_sql(self) -> list[str]:
        raise NotImplementedError

    def begin(self, action: Action) -> None:
        pass

    def abandon(self, action: Action) -> None:
        """Take back what `begin` recorded: nothing of the action was applied (MySQL)."""

    def finish(self, action: Action, millis: int) -> None:
        raise NotImplementedError

    def tool_lock_keys(self) -> list[LockKey]:
        """The locks that the tool itself takes, so that it and this runner never run at once."""
        return []

    def dirty_help(self, version: str) -> str:
        """What a person does about a half-done version."""
        raise NotImplementedError

    def literal(self, value: str) -> str:
        """value as an SQL string literal of this dialect, for SQL that the messages suggest: a file name
        chosen by whoever wrote the folder must not become SQL when a person copies the line."""
        if self.mysql:  # MySQL reads a backslash in a literal as an escape, unless NO_BACKSLASH_ESCAPES
            value = value.replace("\\", "\\\\")
        return "'" + value.replace("'", "''") + "'"


class GolangMigrateLedger(Ledger):
    layout = GOLANG_MIGRATE
    columns = ("version", "dirty")

    def other_tool_hint(self, have: set[str]) -> str:
        return " (a version column without dirty is dbmate's)" if "dirty" not in have and "version" in have else ""

    def __init__(self, conn: Any, table: str, dialect: str = POSTGRESQL):
        super().__init__(conn, table, dialect)
        self._before: tuple[Any, ...] | None = None

    def create_sql(self) -> list[str]:
        return ["CREATE TABLE {t} (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"]

    def _read(self) -> History:
        row = self.conn.execute(self.q("SELECT version, dirty FROM {t} LIMIT 1")).fetchone()
        if row is None:
            return History(self.table)
        version, dirty = str(row[0]), bool(row[1])
        if dirty:
            return History(self.table, current=version, dirty=(
                f"{self.table} says version {version} is dirty: a migration stopped half-way there. "
                f"{self.dirty_help(version)} Nothing was run"))
        return History(self.table, current=None if row[0] < 0 else version)

    def _set(self, version: str | None, dirty: bool) -> None:
        # golang-migrate's own way: empty the table, then one row (none for "no version", unless dirty).
        self.conn.execute(self.q("DELETE FROM {t}"))
        if version is not None or dirty:
            self.conn.execute(self.q("INSERT INTO {t} (version, dirty) VALUES (%s, %s)"),
                              (int(version) if version is not None else -1, dirty))

    def begin(self, action: Action) -> None:
        self._before = self.conn.execute(self.q("SELECT version, dirty FROM {t} LIMIT 1")).fetchone()
        self._set(action.record, True)

    def abandon(self, action: Action) -> None:
        self.conn.execute(self.q("DELETE FROM {t}"))
        if self._before is not None:
            self.conn.execute(self.q("INSERT INTO {t} (version, dirty) VALUES (%s, %s)"), tuple(self._before))

    def finish(self, action: Action, millis: int) -> None:
        self._set(action.record, False)

    def tool_lock_keys(self) -> list[LockKey]:
        if self.mysql:
            # golang-migrate's MySQL driver: GET_LOCK of a number made from "<database>:<table>"
            database = self.schema or self.conn.execute("SELECT DATABASE()").fetchone()[0]
            return [str((zlib.crc32(f"{database}:{self.name}".encode()) * _GOLANG_MIGRATE_LOCK_SALT) & 0xFFFFFFFF)]
        # golang-migrate names the database by the URL's path ("/app") when run from its command line, and
        # by current_database() ("app") as a library: take both.
        row = self.conn.execute("SELECT current_database(), current_schema()").fetchone()
        database, schema = row[0], self.schema or row[1]
        return [(zlib.crc32(f"{schema}\x00{self.name}\x00{name}".encode()) * _GOLANG_MIGRATE_LOCK_SALT) & 0xFFFFFFFF
                for name in (database, "/" + database)]

    def dirty_help(self, version: str) -> str:
        return ("Check the database and finish or undo by hand what that file left half-done; then record the "
                f"version that is true, with golang-migrate's `migrate force {version}` if its changes are complete "
                f"(UPDATE {self.quoted} SET dirty = false does the same), or force the version before it if they "
                "are undone.")


class FlywayLedger(Ledger):
    layout = FLYWAY
    columns = ("installed_rank", "version", "description", "type", "script", "checksum", "installed_by",
               "installed_on", "execution_time", "success")

    def __init__(self, conn: Any, table: str, dialect: str = POSTGRESQL):
        super().__init__(conn, table, dialect)
        self._ranks: dict[tuple[str, bool], int] = {}

    def create_sql(self) -> list[str]:
        mark = self.mark
        columns = ("installed_rank INT NOT NULL, version VARCHAR(50), description VARCHAR(200) NOT NULL,"
                   " type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INT,"
                   " installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
                   " execution_time INT NOT NULL, success BOOLEAN NOT NULL")
        if self.mysql:
            return ["CREATE TABLE {t} (" + columns + f", CONSTRAINT {mark}{self.name}_pk{mark} "
                    "PRIMARY KEY (installed_rank)) ENGINE=InnoDB",
                    f"CREATE INDEX {mark}{self.name}_s_idx{mark} ON {{t}} (success)"]
        return ["CREATE TABLE {t} (" + columns + ")",
                f"ALTER TABLE {{t}} ADD CONSTRAINT {mark}{self.name}_pk{mark} PRIMARY KEY (installed_rank)",
                f"CREATE INDEX {mark}{self.name}_s_idx{mark} ON {{t}} (success)"]

    def _read(self) -> History:
        rows = self.conn.execute(self.q(
            "SELECT version, description, type, script, checksum, success FROM {t} ORDER BY installed_rank")).fetchall()
        applied: dict[tuple[int, ...], Applied] = {}
        repeatables: dict[str, str] = {}
        failed: dict[str, str] = {}  # script -> what failed, until a later success of the same version clears it
        baseline = ""
        for version, description, kind, script, checksum, success in rows:
            subject = f"version {version}" if version else f"repeatable {description!r}"
            if kind == "SCHEMA":
                continue
            if not success:
                failed[subject] = script
                continue
            failed.pop(subject, None)
            if kind == "BASELINE":
                baseline = version
            elif kind == "UNDO_SQL" or kind == "DELETE":
                applied.pop(flyway_version(version), None) if version else None
            elif version:
                applied[flyway_version(version)] = Applied(version, script, "" if checksum is None else str(checksum))
            else:
                repeatables[description] = "" if checksum is None else str(checksum)
        dirty = ""
        if failed:
            subject, script = next(iter(failed.items()))
            dirty = (f"{self.table} records a failed migration to {subject} ({script}). "
                     f"{self.dirty_help(script)} Nothing was run")
        return History(self.table, tuple(applied.values()), dirty=dirty, baseline=baseline, repeatables=repeatables)

    def begin(self, action: Action) -> None:
        m = action.migration
        rank = int(self.conn.execute(self.q("SELECT coalesce(max(installed_rank), 0) + 1 FROM {t}")).fetchone()[0])
        user = "SUBSTRING_INDEX(CURRENT_USER(), '@', 1)" if self.mysql else "current_user"  # as Flyway records it
        self.conn.execute(self.q(
            "INSERT INTO {t} (installed_rank, version, description, type, script, checksum, installed_by,"
            f" execution_time, success) VALUES (%s, %s, %s, %s, %s, %s, left({user}, 100), 0, false)"),
            (rank, m.version or None, m.description[:200], "UNDO_SQL" if action.undo else "SQL", action.file[:1000],
             int(m.down_checksum if action.undo else m.checksum)))
        self._ranks[(action.file, action.undo)] = rank

    def abandon(self, action: Action) -> None:
        self.conn.execute(self.q("DELETE FROM {t} WHERE installed_rank = %s"),
                          (self._ranks.pop((action.file, action.undo)),))

    def finish(self, action: Action, millis: int) -> None:
        self.conn.execute(self.q("UPDATE {t} SET success = true, execution_time = %s, installed_on = now() "
                                 "WHERE installed_rank = %s"), (millis, self._ranks.pop((action.file, action.undo))))

    def tool_lock_keys(self) -> list[LockKey]:
        if self.mysql:
            # Flyway's MySQL named lock: "Flyway-" and the Java hash of the table's quoted name
            database = self.schema or self.conn.execute("SELECT DATABASE()").fetchone()[0]
            return [f"Flyway-{_java_string_hash(f'`{database}`.`{self.name}`')}"]
        schema = self.schema or self.conn.execute("SELECT current_schema()").fetchone()[0]
        return [_FLYWAY_LOCK_MAGIC + _java_string_hash(f'"{schema}"."{self.name}"')]

    def dirty_help(self, version: str) -> str:
        return ("Check the database and finish or undo by hand what it left half-done; then delete that row "
                "(as `flyway repair` does), and the next run applies the file again.")


class DbmateLedger(Ledger):
    layout = DBMATE
    columns = ("version",)

    def check_shape(self) -> None:
        super().check_shape()
        have = self.existing_columns()
        if "dirty" in have or "installed_rank" in have:
            raise ForeignTable(f"{self.table} exists but is not dbmate's history table: its columns "
                               f"({', '.join(sorted(have))}) are "
                               f"{'golang-migrate' if 'dirty' in have else 'Flyway'}'s. Set the layout that wrote it, "
                               "or another historyTable")

    def create_sql(self) -> list[str]:
        return ["CREATE TABLE {t} (version varchar(128) PRIMARY KEY)"]

    def _read(self) -> History:
        rows = self.conn.execute(self.q("SELECT version FROM {t}")).fetchall()
        return History(self.table, tuple(Applied(str(r[0])) for r in rows))

    def finish(self, action: Action, millis: int) -> None:
        if action.undo:
            self.conn.execute(self.q("DELETE FROM {t} WHERE version = %s"), (action.migration.version,))
        else:
            self.conn.execute(self.q("INSERT INTO {t} (version) VALUES (%s)"), (action.migration.version,))

    def dirty_help(self, version: str) -> str:
        return (f"dbmate keeps no record of a half-done migration, so {version} is not recorded as applied: undo by "
                "hand what it left half-done, or the next run fails on it when it starts it again.")


class PlainLedger(Ledger):
    layout = PLAIN
    columns = ("name", "checksum")

    def create_sql(self) -> list[str]:
        if self.mysql:  # a MySQL key cannot be of type text
            return ["CREATE TABLE {t} (name varchar(255) PRIMARY KEY, checksum varchar(64) NOT NULL, "
                    "applied_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, execution_ms integer NOT NULL, "
                    "dirty boolean NOT NULL DEFAULT false)"]
        return ["CREATE TABLE {t} (name text PRIMARY KEY, checksum text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now(), execution_ms integer NOT NULL, "
                "dirty boolean NOT NULL DEFAULT false)"]

    def ensure(self) -> None:
        super().ensure()
        if "dirty" not in self.existing_columns():  # a table of an earlier release
            self.conn.execute(self.q("ALTER TABLE {t} ADD COLUMN dirty boolean NOT NULL DEFAULT false"))

    def _read(self) -> History:
        has_dirty = "dirty" in self.existing_columns()
        rows = self.conn.execute(self.q(
            "SELECT name, checksum, " + ("dirty" if has_dirty else "false") + " FROM {t}")).fetchall()
        dirty = [name for name, _, is_dirty in rows if is_dirty]
        found = (f"{self.table} marks {dirty[0]} dirty: it stopped half-way outside a transaction. "
                 f"{self.dirty_help(dirty[0])} Nothing was run") if dirty else ""
        return History(self.table, tuple(Applied(name, name, checksum) for name, checksum, _ in rows), dirty=found)

    def begin(self, action: Action) -> None:
        self.conn.execute(self.q("INSERT INTO {t} (name, checksum, execution_ms, dirty) VALUES (%s, %s, 0, true)"),
                          (action.migration.name, action.migration.checksum))

    def abandon(self, action: Action) -> None:
        self.conn.execute(self.q("DELETE FROM {t} WHERE name = %s"), (action.migration.name,))

    def finish(self, action: Action, millis: int) -> None:
        self.conn.execute(self.q("UPDATE {t} SET dirty = false, execution_ms = %s, applied_at = now() "
                                 "WHERE name = %s"), (millis, action.migration.name))

    def dirty_help(self, version: str) -> str:
        return ("Check the database and finish or undo by hand what it left half-done; then "
                f"DELETE FROM {self.quoted} WHERE name = {self.literal(version)} to run it again, or "
                f"UPDATE {self.quoted} SET dirty = false WHERE name = {self.literal(version)} if it is complete.")


LEDGERS: dict[str, type[Ledger]] = {GOLANG_MIGRATE: GolangMigrateLedger, FLYWAY: FlywayLedger,
                                    DBMATE: DbmateLedger, PLAIN: PlainLedger}
