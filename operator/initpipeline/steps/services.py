"""Readiness by protocol, for `initpipeline step wait`: a PostgreSQL or MySQL/MariaDB that answers a query
(not one that only accepts connections while it starts up or loads its grant tables), a Redis that answers
PING (not one still LOADING its dataset), a DNS name that resolves. Each probe returns None when ready,
else why not, in words that never carry a password, and how soon it is worth asking again."""

from __future__ import annotations

import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from enum import Enum

from ..spec.redaction import redact
from .mysqlurl import TLS_ERROR, error_code, mysql_connect, parse_mysql_url, tls_failed
from .net import classify

REDIS_SCHEMES = ("redis", "rediss")


class Pace(Enum):
    """How soon a target is asked again, by what its last answer says of the dependency."""

    REFUSED = "refused"    # nothing listens: free to ask again at once
    NOT_YET = "not yet"    # it answered that it is not ready (yet): a cheap answer to ask for again
    BACK_OFF = "back off"  # a timeout, TLS, a refused login, 429...: ask less and less often


@dataclass(frozen=True)
class NotReady:
    reason: str
    pace: Pace = Pace.BACK_OFF


REFUSED = NotReady("connection refused", Pace.REFUSED)


def failed(reason: str) -> NotReady:
    """A failure that classify() named: refused is free to ask again, the rest backs off."""
    return REFUSED if reason == REFUSED.reason else NotReady(reason)
# PostgreSQL's words (SQLSTATE 57P03, cannot_connect_now) while it starts, recovers or is in hot standby
# without connections yet: it answers, and will let the login in shortly.
_POSTGRES_NOT_YET = ("the database system is starting up", "the database system is not yet accepting connections",
                     "the database system is in recovery mode", "the database system is not accepting connections")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def postgres_probe(url: str, table: str | None, timeout: float) -> NotReady | None:
    """Connect, authenticate and run a query; with a table, it must exist (a migration made it)."""
    import psycopg  # the runner image has it (the migration step's driver)

    password = urllib.parse.unquote(urllib.parse.urlsplit(url).password or "")
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout)), autocommit=True) as db:
            if table is None:
                db.execute("SELECT 1")
                return None
            row = db.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            return None if row and row[0] else NotReady(f"table {table} does not exist yet", Pace.NOT_YET)
    except psycopg.Error as exc:
        text = first_line(exc)
        if "Connection refused" in text:  # as for a TCP target: nothing listens yet
            return REFUSED
        pace = Pace.NOT_YET if any(words in text for words in _POSTGRES_NOT_YET) else Pace.BACK_OFF
        return NotReady(redact(text, password), pace)


# MySQL's client and server error numbers that the message explains better than the text
_MYSQL_REASONS = {1045: "authentication refused", 1044: "access to the database refused",
                  1049: "the database does not exist", TLS_ERROR: "TLS refused"}
_MYSQL_REFUSED = (2002, 2003)  # cannot connect: nothing listens yet


def mysql_probe(url: str, table: str | None, timeout: float, ca_file: str | None = None) -> NotReady | None:
    """Connect, authenticate and run a query; with a table, it must exist in the URL's database (or in the
    schema that `schema.table` names)."""
    import pymysql

    password = parse_mysql_url(url).password
    try:
        db = mysql_connect(url, timeout, ca_file, read_timeout=timeout)
        with db, db.cursor() as cursor:
            cursor.execute("SELECT 1")
            if table is None:
                return None
            schema, _, name = table.rpartition(".")
            cursor.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
                           "COALESCE(NULLIF(%s, ''), DATABASE()) AND table_name = %s", (schema, name))
            row = cursor.fetchone()
            return None if row and row[0] else NotReady(f"table {table} does not exist yet", Pace.NOT_YET)
    except pymysql.MySQLError as exc:
        code = error_code(exc)
        text = redact(str(exc.args[1]) if len(exc.args) > 1 else first_line(exc), password)
        if code in _MYSQL_REFUSED and "refused" in text.lower():
            return REFUSED
        if tls_failed(exc):
            code = TLS_ERROR
        reason = _MYSQL_REASONS.get(code)
        return NotReady(f"{reason} ({code} {text})" if reason else f"{code} {text}" if code else text)


def redis_probe(url: str, timeout: float) -> NotReady | None:
    """AUTH (when the URL has a password) and PING over RESP, Redis's wire protocol; SELECT the URL's
    database when it names one."""
    parts = urllib.parse.urlsplit(url)
    password = urllib.parse.unquote(parts.password or "")
    user = urllib.parse.unquote(parts.username or "")
    commands: list[list[str]] = []
    if password:
        commands.append(["AUTH", user, password] if user else ["AUTH", password])
    database = parts.path.strip("/")
    if database and database != "0":
        commands.append(["SELECT", database])
    commands.append(["PING"])
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 6379), timeout=timeout) as raw:
            sock: socket.socket = raw
            if parts.scheme == "rediss":
                sock = ssl.create_default_context().wrap_socket(raw, server_hostname=parts.hostname)
            reader = sock.makefile("rb")
            for command in commands:
                sock.sendall(_resp(command))
                answer = reader.readline(512).decode(errors="replace").strip()  # a line, not a flood
                if answer.startswith("-"):
                    return _redis_error(answer[1:], command[0])
            return None if answer == "+PONG" else NotReady(f"unexpected answer to PING: {answer[:60]!r}")
    except OSError as exc:
        return failed(redact(classify(exc)[1], password))


def _resp(command: list[str]) -> bytes:
    out = [f"*{len(command)}\r\n".encode()]
    for part in command:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _redis_error(text: str, command: str) -> NotReady:
    code = text.split(" ", 1)[0]
    if code == "LOADING":
        return NotReady("Redis is loading its dataset (LOADING)", Pace.NOT_YET)
    if code in ("WRONGPASS", "NOAUTH") or command == "AUTH":
        return NotReady(f"authentication refused ({code})")
    return NotReady(f"{command} answered an error: {text[:80]}")


def dns_probe(name: str) -> NotReady | None:
    try:
        socket.getaddrinfo(name, None)
        return None
    except socket.gaierror as exc:
        # NXDOMAIN (or no address yet) is the resolver's answer, as CoreDNS gives it before the Service
        # exists; EAI_AGAIN and the rest say that no answer came
        answered = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME))
        pace = Pace.NOT_YET if answered else Pace.BACK_OFF
        return NotReady(f"{name} does not resolve ({exc.strerror or exc})", pace)
