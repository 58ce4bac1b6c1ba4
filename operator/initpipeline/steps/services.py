"""Readiness by protocol, for `initpipeline step wait`: a PostgreSQL that answers a query (not one that
only accepts connections while it starts up), a Redis that answers PING (not one still LOADING its
dataset), a DNS name that resolves. Each probe returns None when ready, else why not, in words that never
carry a password."""

from __future__ import annotations

import socket
import ssl
import urllib.parse

from ..spec.redaction import redact
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
