"""The operator's client against a real local HTTPS server that closes its keep-alive connections
unannounced, as API servers do with idle ones (the Kubernetes side is in tests/e2e/test_kubeapi.py)."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import kopf
import pytest

from initpipeline.controller.kubeapi import ApiError, KubeApi


class Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[tuple[str, str, str | None]]
    close_after_response = True
    abrupt = False  # close the TCP connection without TLS's close_notify, as a reset or a dropped peer does
    answer_nothing = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, unless the server just closes
    server: Server

    def do_GET(self) -> None:
        self.server.seen.append(("GET", self.path, self.headers.get("Authorization")))
        if self.server.answer_nothing:
            self.close_connection = True
            return
        status, body = (404, {"kind": "Status", "message": "pods \"x\" not found"}) if "missing" in self.path \
            else (200, {"path": self.path})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        # no "Connection: close": the client believes it may send the next request on this connection
        self.close_connection = self.server.close_after_response
        if self.close_connection and self.server.abrupt:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # an SSLSocket's shutdown sends no close_notify

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert), "-days", "1"],
                   check=True, capture_output=True)
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.seen = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd, str(cert)
    finally:
        httpd.shutdown()
        httpd.server_close()


def client(server: tuple[Server, str]) -> KubeApi:
    httpd, ca = server
    return KubeApi(kopf.ConnectionInfo(server=f"https://127.0.0.1:{httpd.server_address[1]}", ca_path=ca,
                                       token="t0ken"))


@pytest.mark.parametrize("abrupt", [False, True], ids=["closed", "dropped"])
def test_a_connection_the_server_closed_is_replaced_and_the_request_sent_once(server: tuple[Server, str],
                                                                               abrupt: bool) -> None:
    server[0].abrupt = abrupt
    api = client(server)
    for number in range(3):
        assert api.request("GET", f"/api/v1/x{number}") == {"path": f"/api/v1/x{number}"}
    httpd, _ = server
    assert httpd.seen == [("GET", f"/api/v1/x{n}", "Bearer t0ken") for n in range(3)]


def test_a_kept_connection_is_reused(server: tuple[Server, str]) -> None:
    httpd, _ = server
    httpd.close_after_response = False
    api = client(server)
    api.request("GET", "/a")
    first = api.local.conn
    api.request("GET", "/b")
    assert api.local.conn is first


def test_a_fresh_connection_that_fails_is_not_tried_again(server: tuple[Server, str]) -> None:
    httpd, _ = server
    httpd.answer_nothing = True
    with pytest.raises((OSError, http.client.HTTPException)):
        client(server).request("GET", "/nothing")
    assert len(httpd.seen) == 1


def test_an_error_status_is_an_api_error_with_the_message(server: tuple[Server, str]) -> None:
    with pytest.raises(ApiError) as refused:
        client(server).request("GET", "/api/v1/namespaces/a/pods/missing")
    assert refused.value.status == 404 and refused.value.message == 'pods "x" not found'
