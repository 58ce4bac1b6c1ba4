"""What in a migration would break the version still serving, or hold a busy table's writers behind a lock
(the rules: lintrules.py). Pure: SQL comes in as text; nothing connects to a database.

A statement allows a rule with a comment before or inside it, `-- initpipeline:allow drop-column`; a file
marked `-- initpipeline:after-rollout` runs once no Pod of the old version is left, so what would break
that version is no finding there (what locks still is)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .layouts import Folder, Migration
from .lintrules import BREAKS, RULES
from .sqllex import MYSQL, POSTGRESQL, Statement, Token, statements, words_of

_ALLOW = re.compile(r"initpipeline:allow\s+([a-z0-9-]+(?:\s*,\s*[a-z0-9-]+)*)")
UNKNOWN_RULE = "unknown-rule"
_CONSTRAINTS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "INDEX", "KEY", "FULLTEXT", "SPATIAL",
                "EXCLUDE", "PARTITION", "PERIOD"}
_NOT_COLUMNS = _CONSTRAINTS | {"DEFAULT"}
_VOLATILE = {"RANDOM", "GEN_RANDOM_UUID", "UUID_GENERATE_V1", "UUID_GENERATE_V1MC", "UUID_GENERATE_V4",
             "CLOCK_TIMESTAMP", "TIMEOFDAY", "NEXTVAL", "UUIDV7", "UUID_GENERATE_V7"}
_SERIAL = {"SERIAL", "BIGSERIAL", "SMALLSERIAL", "SERIAL2", "SERIAL4", "SERIAL8"}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    rule: str
    message: str        # what the statement does, to which object
    allowed: bool = False

    @property
    def breaks(self) -> bool:
        """Whether it breaks the version still serving (an allow comment naming no rule counts: a typo must
        not let a statement through)."""
        return self.rule == UNKNOWN_RULE or RULES[self.rule].kind == BREAKS

    def detail(self) -> str:
        """What the statement does, why it hurts, and the safe way."""
        if self.rule == UNKNOWN_RULE:
            return self.message
        rule = RULES[self.rule]
        return f"{self.message}: {rule.why}; instead: {rule.safe}"

    def render(self) -> str:
        status = " (allowed)" if self.allowed else ""
        return f"{self.file}:{self.line}: {self.rule}{status}: {self.detail()}"


def lint_folder(folder: Folder, dialect: str) -> list[Finding]:
    """Every finding of the folder's migrations, in the order they apply (undo files are not linted: they
    run only on a rollback, by hand)."""
    return lint_migrations((*folder.migrations, *folder.repeatables), dialect)


def lint_migrations(migrations: Iterable[Migration], dialect: str, *, after_rollout: bool = False) -> list[Finding]:
    """The findings of these migrations; after_rollout: they run once no Pod of the old version is left
    (as a file marked after-rollout does), so nothing breaks it."""
    found: list[Finding] = []
    for migration in migrations:
        for part in migration.up:
            found += lint_sql(part.sql, file=migration.name, dialect=dialect, first_line=part.line,
                              after_rollout=after_rollout or migration.after_rollout)
    return found


def lint_sql(sql: str, *, file: str, dialect: str, first_line: int = 1,
             after_rollout: bool = False) -> list[Finding]:
    """The findings of one file's SQL (first_line: where that SQL starts in the file)."""
    created: set[str] = set()  # tables made by this file: nobody else uses them yet
    found: list[Finding] = []
    for statement in statements(sql, dialect):
        allowed, unknown = _allows(statement)
        found += [Finding(file, statement.line + first_line - 1, UNKNOWN_RULE,
                          f"'initpipeline:allow {name}' names no rule (rules: {', '.join(RULES)})")
                  for name in unknown]
        for token, rule, message in _check(statement, dialect, created):
            if after_rollout and RULES[rule].kind == BREAKS:
                continue
            found.append(Finding(file, token.line + first_line - 1, rule, message, rule in allowed))
    return found


def _allows(statement: Statement) -> tuple[set[str], list[str]]:
    named = [name.strip() for comment in statement.comments for match in _ALLOW.finditer(comment)
             for name in match.group(1).split(",")]
    return {n for n in named if n in RULES}, [n for n in named if n not in RULES]


Hit = tuple[Token, str, str]  # the token to point at, the rule, what the statement does


def _check(statement: Statement, dialect: str, created: set[str]) -> Iterator[Hit]:
    words = statement.words()
    head = " ".join(words[:3])
    if words[:2] == ["CREATE", "TABLE"] or head.startswith("CREATE TEMPORARY TABLE") or \
            head.startswith("CREATE UNLOGGED TABLE"):
        name = _name_after(statement, words.index("TABLE") + 1, skip=("IF", "NOT", "EXISTS"))
        created.add(_table_key(name))
    elif words[:2] == ["ALTER", "TABLE"]:
        yield from _alter_table(statement, dialect, created)
    elif words[0] == "CREATE" and "INDEX" in words[:3] and dialect == POSTGRESQL:
        yield from _create_index(statement, words, created)
    elif (words[0] == "DROP" and words[1:2] in (["TABLE"], ["VIEW"])) or words[:3] == ["DROP", "MATERIALIZED", "VIEW"]:
        yield from _drop_table(statement, words, created)
    elif words[:2] == ["RENAME", "TABLE"] and dialect == MYSQL:
        yield statement.tokens[0], "rename-table", f"renames table {_name_after(statement, 2)}"
    else:
        yield from _maintenance(statement, words, dialect)


def _maintenance(statement: Statement, words: list[str], dialect: str) -> Iterator[Hit]:
    first = statement.tokens[0]
    if dialect == POSTGRESQL and words[0] == "VACUUM" and "FULL" in words[1:4]:
        yield first, "vacuum-full", "rewrites the table"
    elif dialect == POSTGRESQL and words[0] == "CLUSTER":
        yield first, "cluster", "rewrites the table in an index's order"
    elif dialect == MYSQL and words[0] == "OPTIMIZE" and "TABLE" in words[1:3]:
        yield first, "table-copy", "rebuilds the table"


def _table_key(name: str) -> str:
    """A table as the file's CREATE TABLE and later statements may both name it (public. or not)."""
    return name.removeprefix("public.")


def _name_after(statement: Statement, start: int, skip: tuple[str, ...] = ()) -> str:
    return _name_at(statement.tokens, start, skip)[0]


def _name_at(tokens: list[Token], start: int, skip: tuple[str, ...] = ()) -> tuple[str, int]:
    """The (possibly qualified) name at tokens[start:], after any of the words in skip, and the index after it."""
    i = start
    while i < len(tokens) and tokens[i].kind == "word" and tokens[i].upper in skip:
        i += 1
    parts = []
    while i < len(tokens) and tokens[i].kind in ("word", "ident"):
        parts.append(tokens[i].name)
        if i + 2 < len(tokens) and tokens[i + 1].text == ".":
            i += 2
        else:
            i += 1
            break
    return ".".join(parts), i


def _drop_table(statement: Statement, words: list[str], created: set[str]) -> Iterator[Hit]:
    kind = "view" if "VIEW" in words[:3] else "table"
    start = words.index("VIEW" if kind == "view" else "TABLE") + 1
    name = _name_after(statement, start, skip=("IF", "EXISTS"))
    if _table_key(name) not in created:
        yield statement.tokens[0], "drop-table", f"drops {kind} {name}"


def _create_index(statement: Statement, words: list[str], created: set[str]) -> Iterator[Hit]:
    if "CONCURRENTLY" in words or "ON" not in words:
        return
    table = _name_after(statement, words.index("ON") + 1, skip=("ONLY",))
    if _table_key(table) not in created:
        yield statement.tokens[0], "create-index", f"builds an index of table {table}"


def _actions(tokens: list[Token]) -> Iterator[list[Token]]:
    """An ALTER TABLE's actions: its tokens split at the commas outside parentheses."""
    depth, current = 0, list[Token]()
    for token in tokens:
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        if token.text == "," and depth == 0:
            yield current
            current = []
        else:
            current.append(token)
    if current:
        yield current


def _alter_table(statement: Statement, dialect: str, created: set[str]) -> Iterator[Hit]:
    tokens = statement.tokens
    table, i = _name_at(tokens, 2, skip=("IF", "EXISTS", "ONLY"))
    if _table_key(table) in created:
        return
    if i < len(tokens) and tokens[i].text == "*":
        i += 1
    words = statement.words()
    online = dialect == MYSQL and _declares_online(words)
    copies = False
    for action in _actions(tokens[i:]):
        for hit in _action(action, table, dialect):
            copies = copies or hit[1] == "change-column-type"
            yield hit
    if dialect == MYSQL and not online and (copies or _copying_option(words)):
        yield tokens[0], "table-copy", f"copies table {table}"


def _declares_online(words: list[str]) -> bool:
    """ALGORITHM=INPLACE or INSTANT, or LOCK=NONE: MySQL then refuses what it cannot do without a copy."""
    text = " ".join(words)
    return bool(re.search(r"ALGORITHM\s*=\s*(INPLACE|INSTANT)|LOCK\s*=\s*NONE", text))


def _copying_option(words: list[str]) -> bool:
    text = " ".join(words)
    return bool(re.search(r"ALGORITHM\s*=\s*COPY|CONVERT TO CHARACTER SET|CONVERT TO CHARSET|\bENGINE\s*=", text))


def _action(action: list[Token], table: str, dialect: str) -> Iterator[Hit]:
    words = words_of(action)
    verb = words[0] if words else ""
    handlers = {"ADD": _add, "DROP": _drop, "RENAME": _rename, "ALTER": _alter_column,
                "MODIFY": _modify, "CHANGE": _change}
    if verb in handlers:
        yield from handlers[verb](action, words, table, dialect)


def _skip(words: list[str], i: int, *optional: str) -> int:
    while i < len(words) and words[i] in optional:
        i += 1
    return i


def _column(action: list[Token], i: int, table: str) -> str:
    return f"{table}.{action[i].name}" if i < len(action) else table


def _add(action: list[Token], words: list[str], table: str, dialect: str) -> Iterator[Hit]:
    i = _skip(words, 1, "COLUMN")
    if i < len(words) and words[i] in _CONSTRAINTS:
        yield from _add_constraint(action, words, i, table, dialect)
        return
    i = _skip(words, i, "IF", "NOT", "EXISTS")
    column, definition = _column(action, i, table), words[i + 1:]
    text = " ".join(definition)
    if "NOT NULL" in text and "DEFAULT" not in definition and "GENERATED" not in definition \
            and "AUTO_INCREMENT" not in definition and not (definition and definition[0] in _SERIAL):
        yield action[0], "add-required-column", f"adds column {column} NOT NULL without a default"
    if dialect == POSTGRESQL and _rewrites(definition):
        yield action[0], "volatile-default", f"adds column {column} whose default is computed row by row"


def _rewrites(definition: list[str]) -> bool:
    """Whether adding a PostgreSQL column of this definition rewrites the table: a volatile default, a
    serial type, an identity or a stored generated column."""
    if definition and definition[0] in _SERIAL:
        return True
    if "GENERATED" in definition and ("IDENTITY" in definition or "STORED" in definition):
        return True
    if "DEFAULT" in definition:
        after = definition[definition.index("DEFAULT") + 1:]
        return any(word in _VOLATILE for word in after[:6])
    return False


def _add_constraint(action: list[Token], words: list[str], i: int, table: str, dialect: str) -> Iterator[Hit]:
    named = ""
    if words[i] == "CONSTRAINT":
        named = f" {action[i + 1].name}" if i + 1 < len(action) else ""
        i += 2
    kind = words[i] if i < len(words) else ""
    not_valid = dialect == POSTGRESQL and "NOT VALID" in " ".join(words)
    if kind == "FOREIGN" and not not_valid:
        yield action[0], "add-foreign-key", f"adds foreign key{named} to table {table}"
    elif kind == "CHECK" and not not_valid:
        yield action[0], "add-check-constraint", f"adds check constraint{named} to table {table}"
    elif kind in ("UNIQUE", "PRIMARY") and dialect == POSTGRESQL and "USING INDEX" not in " ".join(words):
        what = "primary key" if kind == "PRIMARY" else "unique"
        yield action[0], "add-unique-constraint", f"adds {what} constraint{named} to table {table}"


def _drop(action: list[Token], words: list[str], table: str, dialect: str) -> Iterator[Hit]:
    if len(words) > 1 and words[1] in _NOT_COLUMNS:
        return  # a constraint, an index, a key or (MySQL's ALTER ... DROP DEFAULT) a default
    i = _skip(words, 1, "COLUMN", "IF", "EXISTS")
    yield action[0], "drop-column", f"drops column {_column(action, i, table)}"


def _rename(action: list[Token], words: list[str], table: str, dialect: str) -> Iterator[Hit]:
    nxt = words[1] if len(words) > 1 else ""
    if nxt in ("TO", "AS"):
        yield action[0], "rename-table", f"renames table {table}"
    elif nxt not in ("INDEX", "KEY", "CONSTRAINT"):
        i = _skip(words, 1, "COLUMN")
        target = f" to {action[i + 2].name}" if i + 2 < len(action) else ""
        yield action[0], "rename-column", f"renames column {_column(action, i, table)}{target}"


def _alter_column(action: list[Token], words: list[str], table: str, dialect: str) -> Iterator[Hit]:
    i = _skip(words, 1, "COLUMN")
    if i < len(words) and words[i] in ("INDEX", "CONSTRAINT", "CHECK"):
        return
    column, rest = _column(action, i, table), " ".join(words[i + 1:])
    if rest.startswith(("TYPE", "SET DATA TYPE")):
        yield action[0], "change-column-type", f"changes the type of column {column}"
    elif rest.startswith("SET NOT NULL") and dialect == POSTGRESQL:
        yield action[0], "set-not-null", f"makes column {column} NOT NULL"
    elif rest.startswith("DROP DEFAULT"):
        yield action[0], "drop-default", f"drops the default of column {column}"


def _modify(action: list[Token], words: list[str], table: str, dialect: str) -> Iterator[Hit]:
    if dialect == MYSQL:
        i = _skip(words, 1, "COLUMN")
        yield action[0], "change-column-type", f"redefines column {_column(action, i, table)}"


def _change(action: list[Token], words: list[str], table: str, dialect: str) -> Iterator[Hit]:
    if dialect != MYSQL:
        return
    i = _skip(words, 1, "COLUMN")
    if i + 1 < len(action) and action[i].name != action[i + 1].name:
        yield action[0], "rename-column", f"renames column {_column(action, i, table)} to {action[i + 1].name}"
    else:
        yield action[0], "change-column-type", f"redefines column {_column(action, i, table)}"
