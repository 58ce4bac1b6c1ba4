"""Network probes and error classification shared by `wait` and `download`."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .common import Exit, HttpOptions


def classify(exc: BaseException) -> tuple[Exit, str]:
    """An exit code and a short human reason for a network failure."""
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) and not isinstance(
        exc, urllib.error.HTTPError) else exc
    if isinstance(reason, socket.gaierror):
        return Exit.DNS, f"DNS lookup failed ({reason.strerror or reason})"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return Exit.TLS, f"TLS certificate not trusted ({reason.verify_message or reason.reason})"
    if isinstance(reason, ssl.SSLError):
        return Exit.TLS, f"TLS handshake failed ({reason.reason or reason})"
    if isinstance(reason, ConnectionRefusedError):
        return Exit.CONNECTION, "connection refused"
    if isinstance(reason, ConnectionResetError):
        return Exit.CONNECTION, "connection reset"
    if isinstance(reason, TimeoutError | socket.timeout):
        return Exit.CONNECTION, "timed out"
    if isinstance(reason, http.client.HTTPException):
        return Exit.CONNECTION, f"bad HTTP response ({type(reason).__name__})"
    if isinstance(reason, OSError):
        return Exit.CONNECTION, reason.strerror or str(reason)
    return Exit.CONNECTION, str(reason)


def split_host_port(text: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); ValueError names the problem."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port must be a number from 1 to 65535, got {port_text!r}")
    return host, int(port_text)


def tcp_probe(host: str, port: int, timeout: float) -> None:
    with socket.create_connection((host, port), timeout=timeout):
        pass


def split_userinfo(url: str) -> tuple[str, str | None]:
    """urllib cannot take user:password@ in a URL: move it into a Basic Authorization header."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    netloc = parts.netloc.rpartition("@")[2]
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"


def http_open(url: str, opts: HttpOptions, timeout: float, method: str = "GET") -> Any:
    """urlopen that returns error responses instead of raising for them."""
    url, basic = split_userinfo(url)
    headers = dict(opts.headers)
    if basic and "Authorization" not in headers:
        headers["Authorization"] = basic
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout, context=opts.ssl_context)
    except urllib.error.HTTPError as exc:
        return exc
