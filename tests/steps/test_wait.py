from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from initpipeline.steps.common import Exit
from initpipeline.steps.net import classify
from tests.helpers import CertificateAuthority, HttpServer, free_port, late_listener, respond, run_step


def test_tcp_port_that_opens_late(tmp_path: Path) -> None:
    port = free_port()
    with late_listener(port, 1.5):
        result = run_step("wait", "--tcp", f"127.0.0.1:{port}", "--timeout", "30", tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert 1.4 < result.seconds < 10
    assert f"tcp 127.0.0.1:{port}: ready after" in result.termination
    # one line when it first failed, one when it came up; not one per attempt
    assert result.stderr.count("not ready: connection refused") == 1
    assert result.stderr.count("ready after") >= 1


def test_all_targets_are_waited_for_together(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    with late_listener(ports[0], 1.0), late_listener(ports[1], 1.5), late_listener(ports[2], 2.0):
        args = [a for p in ports for a in ("--tcp", f"127.0.0.1:{p}")]
        result = run_step("wait", *args, "--timeout", "30", tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert result.seconds < 4.5, "targets were waited for one after another"
    assert result.termination.count("ready after") == 3


def test_http_that_fails_with_503_before_answering(tmp_path: Path) -> None:
    server = HttpServer(lambda h, n: respond(h, 503 if n < 3 else 200, b"ok"))
    with server.running():
        result = run_step("wait", "--http", f"{server.url}/healthz", "--timeout", "30", tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert len(server.requests) == 4
    assert result.stderr.count("not ready: HTTP 503") == 1


def test_expected_status_set(tmp_path: Path) -> None:
    server = HttpServer(lambda h, n: respond(h, 401))
    with server.running():
        ok = run_step("wait", "--http", server.url, "--expect-status", "200,401", "--timeout", "5", tmp=tmp_path)
        not_ok = run_step("wait", "--http", server.url, "--timeout", "1", tmp=tmp_path)
    assert ok.code == 0, ok.stderr
    assert not_ok.code == Exit.TIMEOUT
    assert "NOT READY" in not_ok.termination and "last: HTTP 401" in not_ok.termination


def test_timeout_names_the_target_that_never_came_up(tmp_path: Path) -> None:
    up, down = free_port(), free_port()
    with late_listener(up, 0):
        result = run_step("wait", "--tcp", f"127.0.0.1:{up}", "--tcp", f"127.0.0.1:{down}", "--timeout", "1.5",
                          tmp=tmp_path)
    assert result.code == Exit.TIMEOUT
    first = result.termination.splitlines()[0]
    assert first == f"timed out after 1.5s waiting for tcp 127.0.0.1:{down}"
    assert f"tcp 127.0.0.1:{up}: ready after" in result.termination
    assert "last: connection refused" in result.termination
    assert 1.4 < result.seconds < 8


def test_headers_from_env_and_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("file-secret\n")

    def script(h, n):  # type: ignore[no-untyped-def]
        ok = h.headers.get("Authorization") == "Bearer env-secret" and h.headers.get("X-Token") == "file-secret"
        respond(h, 200 if ok and h.headers.get("Accept") == "text/plain" else 403)

    server = HttpServer(script)
    with server.running():
        result = run_step("wait", "--http", server.url, "--header", "Accept: text/plain",
                          "--header-from-env", "Authorization=AUTH", "--header-from-file", f"X-Token={token}",
                          "--timeout", "5", env={"AUTH": "Bearer env-secret"}, tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert "env-secret" not in result.stderr + result.termination


def test_https_with_own_ca(tmp_path: Path, ca: CertificateAuthority) -> None:
    server = HttpServer(lambda h, n: respond(h, 200), tls=ca.server_context())
    with server.running():
        trusted = run_step("wait", "--http", server.url, "--ca-file", str(ca.ca_file), "--timeout", "5", tmp=tmp_path)
        untrusted = run_step("wait", "--http", server.url, "--timeout", "1", tmp=tmp_path)
    assert trusted.code == 0, trusted.stderr
    assert untrusted.code == Exit.TIMEOUT
    assert "TLS certificate not trusted" in untrusted.termination


@pytest.mark.parametrize("args,needle", [
    (["--tcp", "localhost"], "--tcp: expected HOST:PORT"),
    (["--tcp", "localhost:99999"], "--tcp: port must be a number from 1 to 65535"),
    (["--http", "ftp://x/y"], "--http: expected an http:// or https:// URL"),
    (["--tcp", "localhost:80", "--expect-status", "abc"], "--expect-status: 'abc' is not a status code"),
    (["--tcp", "localhost:80", "--expect-status", "700"], "--expect-status: '700' is outside 100-599"),
    (["--http", "http://x", "--header-from-env", "A=NOPE_NOT_SET"], "environment variable NOPE_NOT_SET is not set"),
    (["--http", "http://x", "--header", "no colon"], "--header: expected 'NAME: VALUE'"),
    (["--http", "http://x", "--ca-file", "/nonexistent/ca.crt"], "--ca-file: cannot load CA certificates"),
    ([], "give at least one --tcp HOST:PORT, --http URL"),
])
def test_bad_arguments(tmp_path: Path, args: list[str], needle: str) -> None:
    result = run_step("wait", *args, tmp=tmp_path)
    assert result.code == Exit.USAGE
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_bad_timeout_is_a_usage_error(tmp_path: Path, value: str) -> None:
    result = run_step("wait", "--tcp", "127.0.0.1:1", "--timeout", value, tmp=tmp_path)
    assert result.code == Exit.USAGE and "--timeout" in result.stderr


def test_classify_dns_and_tls_failures() -> None:
    # Real DNS failures would send queries off this machine, so the mapping is checked directly.
    assert classify(socket.gaierror(socket.EAI_NONAME, "Name or service not known")) == (
        Exit.DNS, "DNS lookup failed (Name or service not known)")
    err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err.verify_message = "self-signed certificate"
    assert classify(err) == (Exit.TLS, "TLS certificate not trusted (self-signed certificate)")
    assert classify(ConnectionRefusedError()) == (Exit.CONNECTION, "connection refused")
    assert classify(TimeoutError()) == (Exit.CONNECTION, "timed out")


def test_a_json_value_that_turns_ready(tmp_path: Path) -> None:
    """Elasticsearch's health answers 200 while red: the step waits for green or yellow in the body."""
    bodies = [b'{"status": "red", "cluster_name": "es"}'] * 3 + [b'{"status": "yellow"}']
    server = HttpServer(lambda h, n: respond(h, 200, bodies[min(n, len(bodies) - 1)]))
    with server.running():
        result = run_step("wait", "--http-json", f"{server.url}/_cluster/health", "status", '["green", "yellow"]',
                          "--timeout", "30", tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert len(server.requests) == 4
    assert result.stderr.count("not ready: status is red (ready: green, yellow)") == 1
    assert "/_cluster/health (status): ready after" in result.termination


@pytest.mark.parametrize("body,path,needle", [
    (b"<html>starting</html>", "status", "the body is not JSON"),
    (b'{"data": {"items": []}}', "data.items.0.state", "no data.items.0.state in the JSON body"),
    (b'{"data": {"items": [{"state": false}]}}', "data.items.0.state", "data.items.0.state is false (ready: true)"),
])
def test_a_json_body_that_never_turns_ready_says_why(tmp_path: Path, body: bytes, path: str, needle: str) -> None:
    server = HttpServer(lambda h, n: respond(h, 200, body))
    with server.running():
        result = run_step("wait", "--http-json", server.url, path, '["true"]', "--timeout", "1", tmp=tmp_path)
    assert result.code == Exit.TIMEOUT
    assert f"(last: {needle})" in result.termination


def test_http_json_arguments_are_checked(tmp_path: Path) -> None:
    result = run_step("wait", "--http-json", "http://x", "status", "green", tmp=tmp_path)
    assert result.code == Exit.USAGE and "--http-json: the values must be a JSON list of strings" in result.stderr
