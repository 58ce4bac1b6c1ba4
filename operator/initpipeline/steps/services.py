"""Readiness by protocol, for `initpipeline step wait`: a PostgreSQL or MySQL/MariaDB that answers a query
(not one that only accepts connections while it starts up or loads its grant tables), a Redis that answers
PING (not one still LOADING its dataset), a DNS name that resolves. Each probe returns None when ready,
else why not, in words that never carry a password."""

from __future__ import annotations

import socket
import ssl
import urllib.parse

from ..spec.redaction import redact
from .mysqlurl import TLS_ERROR, error_code, mysql_connect, parse_mysql_url, tls_failed
from .net import classify

REDIS_SCHEMES = ("redis", "rediss")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def postgres_probe(url: str, table: str | None, timeout: float) -> str | None:
    """Connect, authenticate and run a query; with a table, it must exist (a migration made it)."""
    import psycopg  # the runner image has it (the migration step's driver)

    password = urllib.parse.unquote(urllib.parse.urlsplit(url).password or "")
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout)), autocommit=True) as db:
            if table is None:
                db.execute("SELECT 1")
                return None
            row = db.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            return None if row and row[0] else f"table {table} does not exist yet"
    except psycopg.Error as exc:
        text = first_line(exc)
        # as for a TCP target: refused while nothing listens yet, and retried at the fast pace
        return "connection refused" if "Connection refused" in text else redact(text, password)


# MySQL's client and server error numbers that the message explains better than the text
_MYSQL_REASONS = {1045: "authentication refused", 1044: "access to the database refused",
                  1049: "the database does not exist", TLS_ERROR: "TLS refused"}
_MYSQL_REFUSED = (2002, 2003)  # cannot connect: nothing listens yet


def mysql_probe(url: str, table: str | None, timeout: float, ca_file: str | None = None) -> str | None:
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
            return None if row and row[0] else f"table {table} does not exist yet"
    except pymysql.MySQLError as exc:
        code = error_code(exc)
        text = redact(str(exc.args[1]) if len(exc.args) > 1 else first_line(exc), password)
        if code in _MYSQL_REFUSED and "refused" in text.lower():
            return "connection refused"
        if tls_failed(exc):
            code = TLS_ERROR
        reason = _MYSQL_REASONS.get(code)
        return f"{reason} ({code} {text})" if reason else f"{code} {text}" if code else text


def redis_probe(url: str, timeout: float) -> str | None:
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
                answer = reader.readline().decode(errors="replace").strip()
                if answer.startswith("-"):
                    return _redis_error(answer[1:], command[0])
            return None if answer == "+PONG" else f"unexpected answer to PING: {answer[:60]!r}"
    except OSError as exc:
        return redact(classify(exc)[1], password)


def _resp(command: list[str]) -> bytes:
    out = [f"*{len(command)}\r\n".encode()]
    for part in command:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _redis_error(text: str, command: str) -> str:
    code = text.split(" ", 1)[0]
    if code == "LOADING":
        return "Redis is loading its dataset (LOADING)"
    if code in ("WRONGPASS", "NOAUTH") or command == "AUTH":
        return f"authentication refused ({code})"
    return f"{command} answered an error: {text[:80]}"


def dns_probe(name: str) -> str | None:
    try:
        socket.getaddrinfo(name, None)
        return None
    except socket.gaierror as exc:
        return f"{name} does not resolve ({exc.strerror or exc})"
