"""Network probes and error classification shared by `wait` and `download`."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..spec.redaction import redact
from .common import Exit, HttpOptions

HTTP_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
CHUNK = 64 * 1024


class RedirectRefused(urllib.error.URLError):
    """A redirect that is not followed (to another scheme than http(s), or from https to http)."""


def classify(exc: BaseException) -> tuple[Exit, str]:
    """An exit code and a short human reason for a network failure."""
    reason: Any = exc.reason if isinstance(exc, urllib.error.URLError) and not isinstance(
        exc, urllib.error.HTTPError) else exc
    if isinstance(exc, RedirectRefused):
        return Exit.REDIRECT, str(exc.reason)
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


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(the URL without user info, user, password), the last two unquoted; None where absent."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    netloc = parts.netloc.rpartition("@")[2]
    user = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), user, password


def split_userinfo(url: str) -> tuple[str, str | None]:
    """urllib cannot take user:password@ in a URL: move it into a Basic Authorization header."""
    bare, user, password = split_credentials(url)
    if user is None and password is None:
        return url, None
    token = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
    return bare, f"Basic {token}"


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in: what credentials are scoped to."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)


def redirect_refusal(current: str, target: str, code: int) -> str | None:
    """Why a redirect from current to target (absolute) is not followed, or None: the rule that wait,
    download and git-clone share."""
    scheme = urllib.parse.urlsplit(target).scheme.lower()
    if scheme not in HTTP_SCHEMES:
        return f"HTTP {code} redirect to {redact(target)!r} refused: only http and https are followed"
    if urllib.parse.urlsplit(current).scheme.lower() == "https" and scheme == "http":
        return (f"HTTP {code} redirect from https to plain http ({redact(target)}) refused: the credentials "
                "and the answer would travel unencrypted")
    return None


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to http(s), never from https to http, and to another origin (scheme, host or
    port) without the credentials: the headers of --header* and the URL's user info are for the origin they
    were given for, as curl does without --location-trusted."""

    def __init__(self, secret_headers: set[str]):
        self.secret_headers = {name.lower() for name in secret_headers}
        self.left_origin: str | None = None  # where the credentials were dropped, for the reason shown

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        refusal = redirect_refusal(req.full_url, newurl, code)
        if refusal:
            raise RedirectRefused(refusal)
        url, _ = split_userinfo(newurl)  # user info in a Location is never sent
        new = super().redirect_request(req, fp, code, msg, headers, url)
        if new is not None and origin(url) != origin(req.full_url):
            for name in list(new.headers):
                if name.lower() in self.secret_headers:
                    del new.headers[name]
            scheme, host, port = origin(url)
            self.left_origin = f"{scheme}://{host}:{port}"
        return new


def http_open(url: str, opts: HttpOptions, timeout: float, method: str = "GET") -> Any:
    """urlopen that returns error responses instead of raising for them, and follows redirects safely
    (see _Redirects). The response's `left_origin` says where a redirect took it without credentials."""
    url, basic = split_userinfo(url)
    headers = dict(opts.headers)
    if basic and "Authorization" not in headers:
        headers["Authorization"] = basic
    request = urllib.request.Request(url, method=method, headers=headers)
    redirects = _Redirects(set(headers))
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=opts.ssl_context), redirects)
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        response = exc
    response.left_origin = redirects.left_origin
    return response


def left_origin_note(response: Any) -> str:
    """', from ORIGIN (...)' when a redirect took the request to another origin without its credentials: the
    reason of a 401 or 403 there."""
    where = getattr(response, "left_origin", None)
    return f", from {where} (a redirect led there without the credentials)" if where else ""


def read_body(response: Any, limit: int, deadline: float) -> bytes:
    """At most limit + 1 bytes of a body, read as they arrive (a body that trickles a byte at a time
    still sees the deadline, which a read of a whole block would not); TimeoutError once it passes."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        if time.monotonic() >= deadline:
            raise TimeoutError("the deadline passed while the body was read")
        chunk = response.read1(min(CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
