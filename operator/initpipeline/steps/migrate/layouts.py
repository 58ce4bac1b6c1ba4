"""What a migrations folder holds, by layout: which SQL applies, in which order, and what undoes it.

Pure: files come in as names and bytes. A folder that mixes layouts, a file that does not fit its
layout or two files of one version raise FolderError before anything runs, naming the files.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ...spec.names import MIGRATION_LAYOUTS
from .sqltext import flyway_checksum, flyway_placeholders

LAYOUTS = MIGRATION_LAYOUTS
GOLANG_MIGRATE, FLYWAY, DBMATE, PLAIN = MIGRATION_LAYOUTS

_GM_NAME = re.compile(r"^([0-9]+)_(.*)\.(up|down)\.sql$")
_FLYWAY_VERSIONED = re.compile(r"^([VU])([0-9]+(?:[._][0-9]+)*)__(.+)\.sql$")
_FLYWAY_REPEATABLE = re.compile(r"^R__(.+)\.sql$")
_FLYWAY_LOOKALIKE = re.compile(r"^[VURB][0-9._]*__")
_DBMATE_NAME = re.compile(r"^([0-9]+).*\.sql$")
# dbmate's own directive syntax: a line "-- migrate:up" or "-- migrate:down", options after a space.
_DBMATE_UP = re.compile(r"(?m)^--\s*migrate:up(\s*$|\s+\S+)")
_DBMATE_DOWN = re.compile(r"(?m)^--\s*migrate:down(\s*$|\s+\S+)")
_DBMATE_ANY = re.compile(r"(?m)^--\s*migrate:(up|down)\b")
# A plain file marks itself non-transactional with this line among its first comment lines.
PLAIN_NO_TRANSACTION = "-- initpipeline:no-transaction"
# A file of any layout marks itself for after the rollout (no Pod of the old version left) the same way.
AFTER_ROLLOUT = "-- initpipeline:after-rollout"


class FolderError(Exception):
    """The folder cannot be migrated as it is; nothing has run."""


@dataclass(frozen=True)
class SqlFile:
    name: str
    raw: bytes

    @property
    def text(self) -> str:
        """The SQL without a byte order mark, which PostgreSQL would take for part of the first word."""
        return self.raw.decode("utf-8").removeprefix("\ufeff")


@dataclass(frozen=True)
class Part:
    """SQL to run as one unit: a file, or one dbmate section."""

    sql: str
    transactional: bool = True
    line: int = 1  # where it starts in its file


@dataclass(frozen=True)
class Migration:
    """One version of the folder: what applies it and, where the layout has one, what undoes it."""

    version: str           # as the history table records it; the file name for plain
    order: tuple[Any, ...]  # sorts migrations the way the layout's tool does
    rank: tuple[Any, ...]   # compares versions (--to, "older than applied"): 1.0 == 1 in Flyway
    name: str              # the file that applies it
    description: str
    up: tuple[Part, ...]
    checksum: str = ""     # sha256 (plain) or Flyway's CRC32; "" where the tool keeps none
    down_name: str = ""    # the file that undoes it ("" when none)
    down: tuple[Part, ...] = ()
    down_checksum: str = ""
    repeatable: bool = False  # Flyway R__ files
    after_rollout: bool = False  # marked AFTER_ROLLOUT: applied by --when after-rollout only


@dataclass(frozen=True)
class Folder:
    layout: str
    migrations: tuple[Migration, ...]        # versioned, in order
    repeatables: tuple[Migration, ...] = ()  # Flyway R__, in description order
    notes: tuple[str, ...] = field(default=())

    def find(self, version: str) -> Migration | None:
        """The migration of this version in the layout's sense (Flyway: 1.0 is 1)."""
        rank = version_rank(self.layout, version)
        return next((m for m in self.migrations if m.rank == rank), None)


def natural_key(name: str) -> tuple[Any, ...]:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def flyway_version(text: str) -> tuple[int, ...]:
    """Flyway's version order: 1.1 == 1_1, 1.10 after 1.9, trailing zeros do not count (1.0 == 1)."""
    parts = [int(p) for p in re.split(r"[._]", text)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def version_rank(layout: str, text: str) -> tuple[Any, ...]:
    """How versions compare in a layout; text is a version as the files or the history write it."""
    if layout == FLYWAY:
        return flyway_version(text)
    if layout == PLAIN:
        return natural_key(text)
    return (int(text),)


def parse_folder(files: Iterable[SqlFile], layout: str | None) -> Folder:
    """The folder's migrations in the given layout, or in the one its files show when layout is None."""
    files = sorted(files, key=lambda f: f.name)
    sql = [f for f in files if f.name.endswith(".sql")]
    conf = {f.name: f for f in files if f.name.endswith(".sql.conf")}
    _check_utf8(sql)
    chosen = layout or detect_layout(sql)
    if conf and chosen != FLYWAY:
        raise FolderError(f"{', '.join(conf)}: .sql.conf files are Flyway's, and this folder's layout is {chosen}")
    parse = {GOLANG_MIGRATE: _golang_migrate, FLYWAY: lambda s: _flyway(s, conf), DBMATE: _dbmate, PLAIN: _plain}
    if chosen not in parse:
        raise FolderError(f"unknown layout {chosen!r}: expected one of {', '.join(LAYOUTS)}")
    return parse[chosen](sql)


def signals(f: SqlFile) -> list[str]:
    """The layouts whose own markers this file carries."""
    found = []
    if _GM_NAME.match(f.name):
        found.append(GOLANG_MIGRATE)
    if _FLYWAY_LOOKALIKE.match(f.name):
        found.append(FLYWAY)
    if _DBMATE_ANY.search(f.text):
        found.append(DBMATE)
    return found


def detect_layout(files: list[SqlFile]) -> str:
    """The one layout that the files' names and contents show; plain when none shows any."""
    marked: dict[str, list[str]] = defaultdict(list)
    unmarked = []
    for f in files:
        found = signals(f)
        for layout in found:
            marked[layout].append(f.name)
        if not found:
            unmarked.append(f.name)
    if not marked:
        return PLAIN
    if len(marked) == 1 and not unmarked:
        return next(iter(marked))
    groups = [f"{layout} ({_names(names)})" for layout, names in marked.items()]
    if unmarked:
        groups.append(f"no layout's markers ({_names(unmarked)})")
    raise FolderError("the folder mixes layouts: " + "; ".join(groups)
                      + ". Keep one layout per folder, or set the layout and remove the files that do not fit it")


def _names(names: list[str], limit: int = 6) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_utf8(files: list[SqlFile]) -> None:
    for f in files:
        try:
            f.raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FolderError(f"{f.name} is not UTF-8 text (byte {exc.start})") from None


def _misfits(files: list[SqlFile], fits: Any, layout: str, expected: str) -> None:
    wrong = [f.name for f in files if not fits(f)]
    if wrong:
        raise FolderError(f"{_names(wrong)}: not a {layout} file name; {layout} expects {expected}")


def _duplicates(kind: str, groups: dict[Any, list[str]]) -> None:
    dups = [names for names in groups.values() if len(names) > 1]
    if dups:
        raise FolderError("; ".join(f"{' and '.join(names)} have the same {kind}" for names in dups)
                          + ": keep one file per " + kind)


# --- golang-migrate -----------------------------------------------------------------------------

def _golang_migrate(files: list[SqlFile]) -> Folder:
    _misfits(files, lambda f: _GM_NAME.match(f.name), GOLANG_MIGRATE, "<version>_<name>.up.sql and .down.sql")
    ups: dict[int, list[SqlFile]] = defaultdict(list)
    downs: dict[int, list[SqlFile]] = defaultdict(list)
    for f in files:
        match = _GM_NAME.match(f.name)
        assert match
        version = int(match.group(1))
        if version >= 1 << 63:
            raise FolderError(f"{f.name}: version {version} does not fit PostgreSQL's bigint")
        (ups if match.group(3) == "up" else downs)[version].append(f)
    _duplicates("version", {v: [f.name for f in fs] for v, fs in ups.items()})
    _duplicates("version", {v: [f.name for f in fs] for v, fs in downs.items()})
    orphans = [fs[0].name for v, fs in downs.items() if v not in ups]
    if orphans:
        raise FolderError(f"{_names(orphans)}: a .down.sql file without its .up.sql")
    migrations = []
    for version in sorted(ups):
        up = ups[version][0]
        down = downs[version][0] if version in downs else None
        migrations.append(Migration(
            version=str(version), order=(version,), rank=(version,), name=up.name,
            description=_GM_NAME.match(up.name).group(2),  # type: ignore[union-attr]
            up=(Part(up.text),), down_name=down.name if down else "",
            down=(Part(down.text),) if down else (), after_rollout=marked(up.text, AFTER_ROLLOUT)))
    return Folder(GOLANG_MIGRATE, tuple(migrations))


# --- Flyway -------------------------------------------------------------------------------------

def _flyway_fits(f: SqlFile) -> bool:
    return bool(_FLYWAY_VERSIONED.match(f.name) or _FLYWAY_REPEATABLE.match(f.name))


def _flyway(files: list[SqlFile], conf: dict[str, SqlFile]) -> Folder:
    _flyway_refusals(files, conf)
    versioned: dict[tuple[int, ...], list[SqlFile]] = defaultdict(list)
    undo: dict[tuple[int, ...], list[SqlFile]] = defaultdict(list)
    repeatable: dict[str, list[SqlFile]] = defaultdict(list)
    for f in files:
        if match := _FLYWAY_VERSIONED.match(f.name):
            (versioned if match.group(1) == "V" else undo)[flyway_version(match.group(2))].append(f)
        elif match := _FLYWAY_REPEATABLE.match(f.name):
            repeatable[match.group(1).replace("_", " ")].append(f)
    _duplicates("version", {v: [f.name for f in fs] for v, fs in versioned.items()})
    _duplicates("undo version", {v: [f.name for f in fs] for v, fs in undo.items()})
    _duplicates("description", {d: [f.name for f in fs] for d, fs in repeatable.items()})
    orphans = [fs[0].name for v, fs in undo.items() if v not in versioned]
    if orphans:
        raise FolderError(f"{_names(orphans)}: an undo file without the V file of its version")
    migrations = []
    for key in sorted(versioned):
        f = versioned[key][0]
        match = _FLYWAY_VERSIONED.match(f.name)
        assert match
        migrations.append(_flyway_migration(f, conf, key, match.group(2).replace("_", "."),
                                            match.group(3).replace("_", " "), undo[key][0] if key in undo else None))
    repeatables = [_flyway_migration(repeatable[d][0], conf, (d,), "", d, None) for d in sorted(repeatable)]
    return Folder(FLYWAY, tuple(migrations), tuple(repeatables))


def _flyway_refusals(files: list[SqlFile], conf: dict[str, SqlFile]) -> None:
    """What of Flyway this runner does not do: baseline migrations, stray .conf files, placeholders."""
    baseline = [f.name for f in files if f.name.startswith("B") and _FLYWAY_LOOKALIKE.match(f.name)]
    if baseline:
        raise FolderError(f"{_names(baseline)}: Flyway baseline migrations (B prefix) are not supported; "
                          "apply them with Flyway, or rename them V")
    _misfits(files, _flyway_fits, FLYWAY, "V<version>__<description>.sql, U<version>__<description>.sql "
             "or R__<description>.sql (version: digits separated by . or _)")
    orphan_conf = [name for name in conf if not any(f.name + ".conf" == name for f in files)]
    if orphan_conf:
        raise FolderError(f"{_names(orphan_conf)}: a .sql.conf file without its .sql file")
    with_placeholders = [f"{f.name} ({', '.join(p)})" for f in files if (p := flyway_placeholders(f.text))]
    if with_placeholders:
        raise FolderError(f"Flyway placeholders are not expanded by this runner: {'; '.join(with_placeholders)}. "
                          "Write the values into the files, or run Flyway itself with an image step")


def _flyway_migration(f: SqlFile, conf: dict[str, SqlFile], order: tuple[Any, ...], version: str, description: str,
                      down: SqlFile | None) -> Migration:
    """A versioned migration (with its undo file, if any), or a repeatable one (no version)."""
    is_repeatable = not version
    return Migration(
        version=version, order=order, rank=order if not is_repeatable else (), name=f.name,
        description=description, up=(Part(f.text, _flyway_transactional(f, conf)),),
        checksum=str(flyway_checksum(f.raw)),
        down_name=down.name if down else "",
        down=(Part(down.text, _flyway_transactional(down, conf)),) if down else (),
        down_checksum=str(flyway_checksum(down.raw)) if down else "", repeatable=is_repeatable,
        after_rollout=marked(f.text, AFTER_ROLLOUT))


def _flyway_transactional(f: SqlFile, conf: dict[str, SqlFile]) -> bool:
    """Flyway's per-script configuration file (V1__x.sql.conf): executeInTransaction and encoding."""
    settings = conf.get(f.name + ".conf")
    if settings is None:
        return True
    transactional = True
    for number, line in enumerate(settings.text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "executeInTransaction" and value.lower() in ("true", "false"):
            transactional = value.lower() == "true"
        elif key == "encoding" and value.lower().replace("-", "") == "utf8":
            pass
        else:
            raise FolderError(f"{settings.name} line {number}: {line!r} is not supported "
                              "(only executeInTransaction=true|false and encoding=UTF-8)")
    return transactional


# --- dbmate -------------------------------------------------------------------------------------

def _dbmate(files: list[SqlFile]) -> Folder:
    _misfits(files, lambda f: _DBMATE_NAME.match(f.name), DBMATE, "<version>_<name>.sql (version: digits)")
    by_version: dict[str, list[str]] = defaultdict(list)
    for f in files:
        by_version[_dbmate_version(f.name)].append(f.name)
    _duplicates("version", by_version)
    migrations = []
    for f in files:  # dbmate applies in file name order
        version = _dbmate_version(f.name)
        ups, downs = _dbmate_sections(f)
        migrations.append(Migration(version=version, order=(f.name,), rank=(int(version),), name=f.name,
                                    description=f.name, up=ups, down_name=f.name, down=downs,
                                    after_rollout=marked(f.text, AFTER_ROLLOUT)))
    return Folder(DBMATE, tuple(migrations))


def _dbmate_version(name: str) -> str:
    match = _DBMATE_NAME.match(name)
    assert match  # checked by _misfits
    return match.group(1)


def _dbmate_sections(f: SqlFile) -> tuple[tuple[Part, ...], tuple[Part, ...]]:
    """The up and down parts of a dbmate file, the way dbmate reads them: one or more sections,
    each '-- migrate:up [options]' then '-- migrate:down [options]'; nothing but comments before."""
    text = f.text
    starts = [m.start() for m in _DBMATE_UP.finditer(text)]
    if not starts:
        raise FolderError(f"{f.name}: dbmate files start their SQL with '-- migrate:up'")
    before = text[:starts[0]]
    if any(line.strip() and not line.strip().startswith("--") for line in before.splitlines()):
        raise FolderError(f"{f.name}: statements before '-- migrate:up' (dbmate refuses them too)")
    ups, downs = [], []
    for i, start in enumerate(starts):
        section = text[start:starts[i + 1] if i + 1 < len(starts) else len(text)]
        down_marks = list(_DBMATE_DOWN.finditer(section))
        if len(down_marks) != 1:
            raise FolderError(f"{f.name}: each '-- migrate:up' needs exactly one '-- migrate:down' after it "
                              f"(section {i + 1} has {len(down_marks)})")
        up_text, down_text = section[:down_marks[0].start()], section[down_marks[0].start():]
        up_line = text.count("\n", 0, start) + 1
        ups.append(Part(up_text, _dbmate_transaction(f.name, up_text), up_line))
        downs.append(Part(down_text, _dbmate_transaction(f.name, down_text), up_line + up_text.count("\n")))
    return tuple(ups), tuple(downs)  # dbmate rolls a file's sections back in file order too


def _dbmate_transaction(name: str, block: str) -> bool:
    """The options on a section's directive line: '-- migrate:up transaction:false'."""
    options = _DBMATE_ANY.sub("", block.split("\n", 1)[0], count=1).split()
    transactional = True
    for option in options:
        key, _, value = option.partition(":")
        if key == "transaction" and value in ("true", "false"):
            transactional = value == "true"
        else:
            raise FolderError(f"{name}: unknown dbmate option {option!r} (dbmate knows transaction:false)")
    return transactional


# --- plain --------------------------------------------------------------------------------------

def _plain(files: list[SqlFile]) -> Folder:
    undoing = [f.name for f in files if f.name.endswith(".down.sql") or _DBMATE_DOWN.search(f.text)
               or (f.name.startswith("U") and _FLYWAY_VERSIONED.match(f.name))]
    if undoing:
        raise FolderError(f"{_names(undoing)}: undo files (.down.sql, '-- migrate:down', Flyway U files) "
                          "would run as migrations in the plain layout; set the layout of the tool they are for")
    migrations = []
    for f in sorted(files, key=lambda f: natural_key(f.name)):
        migrations.append(Migration(version=f.name, order=natural_key(f.name), rank=natural_key(f.name),
                                    name=f.name, description=f.name,
                                    up=(Part(f.text, not marked(f.text, PLAIN_NO_TRANSACTION)),),
                                    checksum=hashlib.sha256(f.raw).hexdigest(),
                                    after_rollout=marked(f.text, AFTER_ROLLOUT)))
    return Folder(PLAIN, tuple(migrations))


def marked(text: str, marker: str) -> bool:
    """Whether the marker line is among the file's first comment lines (before any statement)."""
    for line in text.splitlines():
        line = line.strip()
        if line.lower() == marker:
            return True
        if line and not line.startswith("--"):
            return False
    return False
