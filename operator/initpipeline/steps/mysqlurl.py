"""A mysql:// URL (MySQL or MariaDB) as PyMySQL connects with it, TLS included: shared by the wait step's
`mysql` target and the migration runner.

    mysql://user:password@host:3306/database?ssl-mode=VERIFY_IDENTITY&ssl-ca=/path/ca.pem

`ssl-mode` works as in MySQL's own clients: PREFERRED (the default: TLS when the server offers it,
unverified), DISABLED, REQUIRED (TLS or no connection, unverified), VERIFY_CA (the certificate must chain
to `ssl-ca`, else to the system's CAs) and VERIFY_IDENTITY (that, and it must name the host). Other query
parameters (a Go driver's `parseTime=true`, say) are ignored.
"""

from __future__ import annotations

import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

MYSQL_SCHEMES = ("mysql", "mariadb")
SSL_MODES = ("DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
# MySQL's client error for a TLS connection that could not be made (CR_SSL_CONNECTION_ERROR)
TLS_ERROR = 2026


@dataclass(frozen=True)
class MySQLUrl:
    host: str
    port: int
    user: str
    password: str
    database: str
    ssl_mode: str = "PREFERRED"
    ssl_ca: str | None = None


def parse_mysql_url(url: str) -> MySQLUrl:
    """The parts of a mysql:// URL; ValueError naming what is wrong (never the password)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in MYSQL_SCHEMES:
        raise ValueError(f"expected a {' or '.join(s + '://' for s in MYSQL_SCHEMES)} URL")
    query = {k.lower(): v for k, v in urllib.parse.parse_qsl(parts.query)}
    mode = query.get("ssl-mode", query.get("sslmode", "PREFERRED")).upper()
    if mode not in SSL_MODES:
        raise ValueError(f"ssl-mode must be one of {', '.join(SSL_MODES)}, got {mode!r}")
    try:
        port = parts.port or 3306
    except ValueError:
        raise ValueError("the port is not a number from 1 to 65535") from None
    return MySQLUrl(host=parts.hostname or "localhost", port=port, user=urllib.parse.unquote(parts.username or ""),
                    password=urllib.parse.unquote(parts.password or ""),
                    database=urllib.parse.unquote(parts.path.strip("/")), ssl_mode=mode,
                    ssl_ca=query.get("ssl-ca") or None)


def tls_context(target: MySQLUrl, ca_file: str | None = None) -> ssl.SSLContext | None:
    """What PyMySQL gets as `ssl`: None for DISABLED."""
    if target.ssl_mode == "DISABLED":
        return None
    if target.ssl_mode in ("PREFERRED", "REQUIRED"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context(cafile=target.ssl_ca or ca_file)
    context.check_hostname = target.ssl_mode == "VERIFY_IDENTITY"
    return context


def error_code(exc: BaseException) -> int:
    """A PyMySQL error's MySQL error number (0 when it has none)."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0


def tls_failed(exc: BaseException) -> bool:
    """Whether a connect error is TLS's: PyMySQL reports a failed handshake or certificate check as a failed
    connection (2003), with the ssl module's words in it."""
    text = str(exc).lower()
    return error_code(exc) == TLS_ERROR or "ssl" in text or "certificate" in text


def mysql_connect(url: str, connect_timeout: float, ca_file: str | None = None, read_timeout: float | None = None,
                  **options: Any) -> Any:
    """A PyMySQL connection (autocommit, utf8mb4) to the URL's database, with its TLS settings. A server that
    offers no TLS when the URL requires it is refused with MySQL's client error 2026."""
    import pymysql

    target = parse_mysql_url(url)

    def connect(context: ssl.SSLContext | None) -> Any:
        # ssl_disabled: PyMySQL 1.2 tries TLS by itself when it is given no context
        return pymysql.connect(host=target.host, port=target.port, user=target.user, password=target.password,
                               database=target.database or None, connect_timeout=max(1, round(connect_timeout)),
                               read_timeout=read_timeout, autocommit=True, charset="utf8mb4", ssl=context,
                               ssl_disabled=context is None, **options)
    try:
        # given a context, PyMySQL refuses a server that offers no TLS (error 2026)
        return connect(tls_context(target, ca_file))
    except pymysql.err.OperationalError as exc:
        if target.ssl_mode != "PREFERRED" or not exc.args or exc.args[0] != TLS_ERROR:
            raise
        return connect(None)  # PREFERRED goes on without
