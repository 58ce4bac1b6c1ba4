"""Pure text work on SQL files: statements, Flyway's checksum, Flyway's placeholders."""

from __future__ import annotations

import re
import zlib

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PLACEHOLDER = re.compile(r"\$\{[^}\n]*\}")


def split_statements(sql: str) -> list[str]:
    """The statements of sql, split at top-level semicolons.

    Quotes ('..', E'..', ".."), dollar quotes ($tag$..$tag$), -- and nested /* */ comments and
    SQL-standard function bodies (BEGIN ATOMIC .. END) keep their semicolons. Statements that hold
    only comments and blanks are dropped.
    """
    statements: list[str] = []
    start, i, n = 0, 0, len(sql)
    atomic_depth = 0  # inside BEGIN ATOMIC: CASE .. END nests, the last END closes the body
    previous_word = ""
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif ch == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            i = skip_quoted(sql, i, "'", backslash=escapes)
        elif ch == '"':
            i = skip_quoted(sql, i, '"', backslash=False)
        elif ch == "$" and (match := _DOLLAR_TAG.match(sql, i)) and not _in_word(sql, i):
            close = sql.find(match.group(0), match.end())
            i = n if close < 0 else close + len(match.group(0))
        elif ch == ";" and atomic_depth == 0:
            statements.append(sql[start:i + 1])
            start = i = i + 1
        elif (match := _WORD.match(sql, i)) and not _in_word(sql, i):
            word = match.group(0).upper()
            if (word == "ATOMIC" and previous_word == "BEGIN") or (atomic_depth and word == "CASE"):
                atomic_depth += 1
            elif atomic_depth and word == "END":
                atomic_depth -= 1
            previous_word = word
            i = match.end()
        else:
            i += 1
    statements.append(sql[start:])
    return [s.strip() for s in statements if has_code(s)]


def has_code(sql: str) -> bool:
    """Whether sql holds anything but comments and white space."""
    i, n = 0, len(sql)
    while i < n:
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif sql[i].isspace() or sql[i] == ";":
            i += 1
        else:
            return True
    return False


def _in_word(sql: str, i: int) -> bool:
    return i > 0 and (sql[i - 1].isalnum() or sql[i - 1] in "_$")


def _skip_block_comment(sql: str, i: int) -> int:
    depth, i = 1, i + 2
    while i < len(sql) and depth:
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    i += 1
    while i < len(sql):
        if backslash and sql[i] == "\\":
            i += 2
        elif sql[i] == quote:
            if sql.startswith(quote * 2, i):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return i


def flyway_checksum(raw: bytes) -> int:
    """Flyway's checksum of a file: CRC32 over its lines' UTF-8 bytes without line breaks and without
    a leading byte order mark, as a signed 32-bit integer. So line endings do not change it."""
    text = raw.decode("utf-8").removeprefix("\ufeff")
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # a final line break ends the last line, it does not start another
    crc = 0
    for line in lines:
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def flyway_placeholders(sql: str) -> list[str]:
    """Flyway placeholders (${name}) in sql, which Flyway would replace and this runner does not."""
    return sorted(set(_PLACEHOLDER.findall(sql)))
