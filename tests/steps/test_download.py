from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from initpipeline.steps.common import Exit
from tests.helpers import CertificateAuthority, HttpServer, free_port, respond, run_step

BODY = b"database:\n  host: postgres\n  pool: 5\n"
DIGEST = hashlib.sha256(BODY).hexdigest()


def serve(body: bytes = BODY) -> HttpServer:
    return HttpServer(lambda h, n: respond(h, 200, body))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_downloads_and_verifies(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "conf" / "app.yaml"
    with serve().running() as server:
        result = run_step("download", "--url", f"{server.url}/config/shop", "--dest", str(dest), "--sha256", DIGEST,
                          "--validate", "yaml", tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert dest.read_bytes() == BODY
    assert oct(dest.stat().st_mode & 0o777) == "0o644"
    assert result.termination.startswith("downloaded 1 file(s)")
    assert f"{len(BODY)} bytes, sha256 {DIGEST[:12]}" in result.termination


def test_folders_it_creates_are_group_writable_and_setgid_for_the_apps_user(tmp_path: Path) -> None:
    """A chart's own init container (another user of the Pod's fsGroup) must be able to write beside the
    file; the umask of the step would otherwise take group write from the folders it creates."""
    volume = tmp_path / "volume"
    volume.mkdir()
    dest = volume / "conf" / "shop" / "app.yaml"
    with serve().running() as server:
        result = run_step("download", "--url", f"{server.url}/config/shop", "--dest", str(dest), tmp=tmp_path)
    assert result.code == 0, result.stderr
    for folder in (volume / "conf", volume / "conf" / "shop"):
        assert oct(folder.stat().st_mode & 0o7777) == "0o2775", folder
    assert oct(volume.stat().st_mode & 0o7777) != "0o2775"  # a folder that was there is left as it was


def test_several_files(tmp_path: Path) -> None:
    bodies = {"/a.json": b'{"a": 1}', "/b.txt": b"plain"}
    server = HttpServer(lambda h, n: respond(h, 200, bodies[h.path]))
    with server.running():
        result = run_step("download", "--url", f"{server.url}/a.json", "--dest", str(tmp_path / "a.json"),
                          "--validate", "json", "--url", f"{server.url}/b.txt", "--dest", str(tmp_path / "b.txt"),
                          tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert (tmp_path / "a.json").read_bytes() == b'{"a": 1}' and (tmp_path / "b.txt").read_bytes() == b"plain"


def test_retries_503_and_honours_retry_after(tmp_path: Path) -> None:
    def script(h, n):  # type: ignore[no-untyped-def]
        if n < 2:
            respond(h, 503, b"busy", {"Retry-After": "1"})
        else:
            respond(h, 200, BODY)

    server = HttpServer(script)
    with server.running():
        result = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"), "--timeout", "30",
                          tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert len(server.requests) == 3
    assert result.seconds >= 2.0
    assert result.stderr.count("HTTP 503; retrying in 1.0s") == 2
    assert "3 attempt(s)" in result.termination


def test_429_is_retried(tmp_path: Path) -> None:
    server = HttpServer(lambda h, n: respond(h, 429 if n == 0 else 200, BODY, {"Retry-After": "0"}))
    with server.running():
        result = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"), tmp=tmp_path)
    assert result.code == 0 and len(server.requests) == 2


def test_404_fails_at_once(tmp_path: Path) -> None:
    server = HttpServer(lambda h, n: respond(h, 404, b"no"))
    with server.running():
        result = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"), "--timeout", "60",
                          tmp=tmp_path)
    assert result.code == Exit.HTTP_STATUS
    assert len(server.requests) == 1 and result.seconds < 10
    assert "HTTP 404 (not retried)" in result.termination
    assert not (tmp_path / "f").exists()


def test_5xx_until_timeout_gives_up_with_the_last_error(tmp_path: Path) -> None:
    server = HttpServer(lambda h, n: respond(h, 502))
    with server.running():
        result = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"), "--timeout", "2",
                          tmp=tmp_path)
    assert result.code == Exit.HTTP_STATUS
    assert "HTTP 502; gave up after" in result.termination


def test_wrong_bytes_never_become_visible(tmp_path: Path) -> None:
    dest = tmp_path / "app.yaml"
    dest.write_bytes(b"old: config\n")
    with serve(b"tampered: true\n").running() as server:
        result = run_step("download", "--url", server.url, "--dest", str(dest), "--sha256", DIGEST, tmp=tmp_path)
    assert result.code == Exit.CHECKSUM
    assert f"sha256 mismatch: expected {DIGEST}, got {hashlib.sha256(b'tampered: true' + bytes([10])).hexdigest()}" \
        in result.termination
    assert dest.read_bytes() == b"old: config\n"
    assert leftovers(tmp_path) == []


def test_too_large_by_content_length(tmp_path: Path) -> None:
    with serve(b"x" * 5000).running() as server:
        result = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"), "--max-size", "1000",
                          tmp=tmp_path)
    assert result.code == Exit.TOO_LARGE
    assert "the body is 5000 bytes, over the limit of 1000" in result.termination
    assert not (tmp_path / "f").exists()


def test_too_large_without_content_length(tmp_path: Path) -> None:
    def script(h, n):  # type: ignore[no-untyped-def]
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        for _ in range(100):
            h.wfile.write(b"y" * 1000)

    server = HttpServer(script)
    with server.running():
        result = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"), "--max-size", "4096",
                          tmp=tmp_path)
    assert result.code == Exit.TOO_LARGE
    assert not (tmp_path / "f").exists() and leftovers(tmp_path) == []


def test_slow_server_is_waited_for(tmp_path: Path) -> None:
    def script(h, n):  # type: ignore[no-untyped-def]
        time.sleep(1.5)
        respond(h, 200, BODY)

    server = HttpServer(script)
    with server.running():
        result = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"), tmp=tmp_path)
    assert result.code == 0 and (tmp_path / "f").read_bytes() == BODY


@pytest.mark.parametrize("fmt,body", [("json", b"{not json"), ("yaml", b"key: [unclosed\n")])
def test_validation_failure(tmp_path: Path, fmt: str, body: bytes) -> None:
    with serve(body).running() as server:
        result = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"), "--validate", fmt,
                          tmp=tmp_path)
    assert result.code == Exit.INVALID_CONTENT
    assert f"the body is not valid {fmt}" in result.termination
    assert not (tmp_path / "f").exists()


def test_tls_with_own_ca_and_without(tmp_path: Path, ca: CertificateAuthority) -> None:
    server = HttpServer(lambda h, n: respond(h, 200, BODY), tls=ca.server_context())
    with server.running():
        trusted = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"), "--ca-file",
                           str(ca.ca_file), tmp=tmp_path)
        untrusted = run_step("download", "--url", server.url, "--dest", str(tmp_path / "g"), "--timeout", "30",
                             tmp=tmp_path)
    assert trusted.code == 0, trusted.stderr
    assert untrusted.code == Exit.TLS and untrusted.seconds < 10  # not retried
    assert "TLS certificate not trusted" in untrusted.termination


def test_connection_refused_until_timeout(tmp_path: Path) -> None:
    result = run_step("download", "--url", f"http://127.0.0.1:{free_port()}/x", "--dest", str(tmp_path / "f"),
                      "--timeout", "1.5", tmp=tmp_path)
    assert result.code == Exit.CONNECTION
    assert "connection refused; gave up after" in result.termination


def test_vault_token_from_a_file_is_sent_and_never_logged(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("hvs.TOPSECRET")
    server = HttpServer(lambda h, n: respond(h, 200 if h.headers.get("X-Vault-Token") == "hvs.TOPSECRET" else 403,
                                             BODY))
    with server.running():
        result = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"),
                          "--header-from-file", f"X-Vault-Token={token}", tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert "TOPSECRET" not in result.stderr + result.termination


def test_credentials_in_the_url_are_redacted(tmp_path: Path) -> None:
    server = HttpServer(lambda h, n: respond(h, 403))
    with server.running():
        url = server.url.replace("http://", "http://user:hunter2@")
        result = run_step("download", "--url", url, "--dest", str(tmp_path / "f"), tmp=tmp_path)
    assert result.code == Exit.HTTP_STATUS
    assert "hunter2" not in result.stderr + result.termination
    assert "http://***@127.0.0.1" in result.termination  # the user info goes whole


@pytest.mark.parametrize("args,needle", [
    (["--dest", "/tmp/x"], "--dest must follow the --url it belongs to"),
    (["--url", "http://x/a"], "--url http://x/a has no --dest"),
    (["--url", "gopher://x/a", "--dest", "/tmp/a"], "--url: expected an http:// or https:// URL"),
    (["--url", "http://x/a", "--dest", "/tmp/a", "--sha256", "abc"], "--sha256: expected 64 hexadecimal characters"),
    (["--url", "http://x/a", "--dest", "/tmp/a", "--validate", "toml"], "--validate: expected one of yaml, json"),
    (["--url", "http://x/a", "--dest", "/tmp/a", "--url", "http://x/b", "--dest", "/tmp/a"], "same destination"),
    (["--url", "http://x/a", "--dest", "/tmp/a", "--max-size", "0"], "--max-size: must be greater than 0"),
    ([], "give at least one --url URL --dest PATH"),
])
def test_bad_arguments(tmp_path: Path, args: list[str], needle: str) -> None:
    result = run_step("download", *args, tmp=tmp_path)
    assert result.code == Exit.USAGE
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_credentials_in_the_url_are_sent_as_basic_auth(tmp_path: Path) -> None:
    server = HttpServer(lambda h, n: respond(h, 200 if h.headers.get("Authorization") == "Basic dXNlcjpodW50ZXIy"
                                             else 401, BODY))
    with server.running():
        url = server.url.replace("http://", "http://user:hunter2@")
        result = run_step("download", "--url", url, "--dest", str(tmp_path / "f"), tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert "hunter2" not in result.stderr + result.termination
