"""The operator's own Kubernetes client: the few writes it makes, as JSON over HTTPS.

Why not the `kubernetes` package here: importing it (with the pydantic models it now builds on)
costs the operator about 40 MB of its memory before the first pipeline, and every response turns
into model objects first. The operator sends and receives plain dicts anyway, so a keep-alive
connection per thread and `json` are all it needs. It connects with the same ConnectionInfo that
kopf's login handler returns, so both speak to the same server with the same credentials. The
command line (`status`, `logs`) keeps the `kubernetes` package: it reads every kind of kubeconfig.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import kopf

Obj = dict[str, Any]
TOKEN_REREAD = 60.0  # seconds: a projected service-account token is rotated in its file
TIMEOUT = 30.0  # seconds for one request: a hung connection must not hold a reconcile thread


class ApiError(Exception):
    """The API server refused a request (an HTTP status >= 400)."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.body = status, reason, body

    @property
    def message(self) -> str:
        """The Status object's message, else the body as it came."""
        try:
            parsed = json.loads(self.body or "{}")
        except ValueError:
            return self.body
        return str(parsed.get("message", self.body)) if isinstance(parsed, dict) else self.body


def _data(value: str | bytes) -> bytes:
    """A kubeconfig's `*-data` field: base64 of PEM."""
    return base64.b64decode(value)


def _private_file(folder: str, name: str, data: str | bytes | None) -> str | None:
    """Embedded `*-data` written to a file only this user can read; None without data."""
    if not data:
        return None
    path = os.path.join(folder, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
        f.write(_data(data))
    return path


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=os.fsdecode(info.ca_path) if info.ca_path else None,
        cadata=_data(info.ca_data).decode() if info.ca_data else None)
    if info.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if info.certificate_path or info.certificate_data:
        # ssl loads a client certificate from files only: embedded data goes through private temp files
        with tempfile.TemporaryDirectory() as folder:
            cert = _private_file(folder, "cert.pem", info.certificate_data) or info.certificate_path
            key = _private_file(folder, "key.pem", info.private_key_data) or info.private_key_path
            context.load_cert_chain(os.fsdecode(cert or ""), os.fsdecode(key) if key else None)
    return context


class KubeApi:
    """JSON requests to one API server; one keep-alive connection per calling thread."""

    def __init__(self, info: kopf.ConnectionInfo, token_path: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        url = urllib.parse.urlsplit(info.server)
        self.host, self.port = url.hostname or "localhost", url.port or (443 if url.scheme == "https" else 80)
        self.https = url.scheme == "https"
        self.prefix = url.path.rstrip("/")
        self.context = _ssl_context(info) if self.https else None
        self.token, self.token_path, self.token_read = info.token, token_path, clock()
        self.clock = clock  # seconds: when to read a rotated token again
        self.basic = (base64.b64encode(f"{info.username}:{info.password}".encode()).decode()
                      if info.username and info.password else None)
        self.local = threading.local()

    def _authorization(self) -> str | None:
        if self.token_path and self.clock() - self.token_read > TOKEN_REREAD:
            try:
                with open(self.token_path, encoding="utf-8") as f:
                    self.token = f.read().strip() or self.token
            except OSError:
                pass  # keep the token we have; a 401 will say if it is no good
            self.token_read = self.clock()
        if self.token:
            return f"Bearer {self.token}"
        return f"Basic {self.basic}" if self.basic else None

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it served a request before (the server may have closed
        it since: API servers close idle keep-alive connections)."""
        conn: http.client.HTTPConnection | None = getattr(self.local, "conn", None)
        if conn is not None:
            return conn, True
        conn = self._new_connection(TIMEOUT)
        self.local.conn = conn
        return conn, False

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self.local.conn = None

    def _new_connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "initpipeline-operator"}
        auth = self._authorization()
        if auth:
            headers["Authorization"] = auth
        return headers

    def watch(self, path: str, params: dict[str, str], seconds: int) -> Iterator[Obj]:
        """The events of one watch request ({type, object}), on a connection of its own, until the API server
        ends it after `seconds`. ApiError when the server refuses the request."""
        query = urllib.parse.urlencode({**params, "watch": "1", "timeoutSeconds": str(seconds)})
        url = f"{self.prefix}{path}?{query}"
        conn = self._new_connection(seconds + TIMEOUT)
        try:
            conn.request("GET", url, headers=self._headers())
            response = conn.getresponse()
            if response.status >= 400:
                raise ApiError(response.status, response.reason, response.read().decode("utf-8", "replace"))
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()

    def request(self, method: str, path: str, body: Obj | None = None, params: dict[str, str] | None = None) -> Obj:
        """The response's JSON object; ApiError for a status of 400 and up. A PATCH is a JSON merge patch."""
        url = self.prefix + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = self._headers()
        payload = None
        if body is not None:
            payload = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/merge-patch+json" if method == "PATCH" else "application/json"
        while True:
            conn, reused = self._connection()
            try:
                conn.request(method, url, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except TimeoutError:
                self._drop(conn)
                raise  # the server may still be at it: not sent again here
            except (OSError, http.client.HTTPException):
                # On a reused connection this is most often one the server closed meanwhile (a reset, an
                # EOF in TLS, a disconnect): once more on a new one. A request that then went through
                # twice is harmless: creates end in 409, patches and deletes are idempotent.
                self._drop(conn)
                if not reused:
                    raise
        if response.status >= 400:
            raise ApiError(response.status, response.reason, data.decode("utf-8", "replace"))
        if not data:
            return {}
        result: Obj = json.loads(data)
        return result
