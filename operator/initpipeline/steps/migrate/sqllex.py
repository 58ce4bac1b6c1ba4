"""SQL as the linter reads it: statements of tokens, each token with its line, in PostgreSQL's or MySQL's
lexical rules (quotes, comments, dollar quotes, DELIMITER lines). Pure; no statement is understood here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

POSTGRESQL, MYSQL = "postgresql", "mysql"  # as history.py names them
DIALECTS = (POSTGRESQL, MYSQL)

# One alternation per dialect; the first group that matches names the token's kind.
_COMMON = {
    "space": r"\s+",
    "comment": r"--[^\n]*|/\*(?:[^*]|\*(?!/))*(?:\*/|\Z)",
    "word": r"[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*",
    "number": r"[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?",
    "punct": r".",
}
_POSTGRES = {
    # the tag may be empty ($$); a group that did not take part would never match its back reference
    "dollar": r"\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*|)\$.*?(?:\$(?P=tag)\$|\Z)",
    "string": r"[eE]'(?:[^'\\]|\\.|'')*(?:'|\Z)|'(?:[^']|'')*(?:'|\Z)",
    "ident": r'"(?:[^"]|"")*(?:"|\Z)',
}
_MYSQL = {
    "delimiter": r"(?im:^[ \t]*DELIMITER[ \t]+(?P<delim>\S+)[ \t]*$)",
    "hash": r"#[^\n]*",
    "string": r"'(?:[^'\\]|\\.|'')*(?:'|\Z)|\"(?:[^\"\\]|\\.|\"\")*(?:\"|\Z)",
    "ident": r"`(?:[^`]|``)*(?:`|\Z)",
}


def _scanner(own: dict[str, str]) -> re.Pattern[str]:
    # the dialect's own kinds first (a dollar quote before a word), comments and words after
    kinds = {"space": _COMMON["space"], **own, **{k: v for k, v in _COMMON.items() if k != "space"}}
    return re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in kinds.items()), re.DOTALL)


_SCANNERS = {POSTGRESQL: _scanner(_POSTGRES), MYSQL: _scanner(_MYSQL)}


@dataclass(frozen=True)
class Token:
    kind: str   # word, ident, string, number, punct
    text: str   # as written
    line: int

    @property
    def upper(self) -> str:
        """A word in capitals; a quoted identifier without its quotes (its case kept)."""
        if self.kind == "ident":
            return self.text[1:-1]
        return self.text.upper()

    @property
    def name(self) -> str:
        """The token as a name: a quoted identifier unquoted, a word folded to lower case."""
        return self.text[1:-1] if self.kind == "ident" else self.text.lower()


@dataclass
class Statement:
    line: int                                   # where its first token is
    tokens: list[Token] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)  # the comments before it and inside it

    def words(self, start: int = 0) -> list[str]:
        return words_of(self.tokens[start:])


def words_of(tokens: list[Token]) -> list[str]:
    """Words in capitals, the other tokens as written: what the rules compare."""
    return [t.upper if t.kind == "word" else t.text for t in tokens]


def statements(sql: str, dialect: str) -> Iterator[Statement]:
    """The statements of sql, each ended by ';' (or by the DELIMITER that MySQL's client was told)."""
    scanner = _SCANNERS[dialect]
    delimiter, line, pos = ";", 1, 0
    current = Statement(line=0)
    while pos < len(sql):
        if delimiter != ";" and sql.startswith(delimiter, pos):
            yield from _ended(current)
            current, pos = Statement(line=0), pos + len(delimiter)
            continue
        match = scanner.match(sql, pos)
        assert match  # "punct" takes any one character
        kind, text = match.lastgroup or "punct", match.group(0)
        if kind == "delimiter":
            yield from _ended(current)
            current, delimiter = Statement(line=0), match.group("delim")
        elif kind in ("comment", "hash"):
            current.comments.append(text)
        elif kind == "punct" and text == ";" and delimiter == ";":
            yield from _ended(current)
            current = Statement(line=0)
        elif kind != "space":
            current.line = current.line or line
            current.tokens.append(Token("string" if kind == "dollar" else kind, text, line))
        line += text.count("\n")
        pos = match.end()
    yield from _ended(current)


def _ended(statement: Statement) -> Iterator[Statement]:
    if statement.tokens:
        yield statement
