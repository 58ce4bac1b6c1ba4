"""The steps against servers that an attacker controls, all on loopback and by address (no name is looked
up): redirects that would carry the credentials elsewhere or leave http(s), bodies that trickle, SIGTERM
mid-transfer, documents nested too deeply, names that are not UTF-8, and a FIFO where a file should be."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from initpipeline.steps.common import Exit
from tests.helpers import CertificateAuthority, GitServer, HttpServer, respond, run_step
from tests.hostile_urls import HOSTILE_URLS

TOKEN = "hvs.VAULT-TOKEN-123"
BEARER = "Bearer sk-live-abcdef"
BODY = b'{"a": 1}'
SECRETS = (TOKEN, "sk-live-abcdef", "alice", "hunter2")


def redirecting(to: str, code: int = 302) -> HttpServer:
    return HttpServer(lambda h, n: respond(h, code, b"", {"Location": to + h.path}))


def secret_args() -> list[str]:
    return ["--header-from-env", "X-Vault-Token=VT", "--header", f"Authorization: {BEARER}"]


def with_user(url: str) -> str:
    return url.replace("://", "://alice:hunter2@", 1)


def sent_nothing_secret(server: HttpServer) -> None:
    assert server.requests, "the redirect was not followed"
    for headers in server.requests:
        text = repr(headers)
        assert "X-Vault-Token" not in text and "Authorization" not in text, text


@contextmanager
def listener() -> Iterator[tuple[int, list[int]]]:
    """A TCP port that counts the connections that reach it (an ftp:// target)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.1)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                accepted.append(1)
                conn.close()
            except TimeoutError:
                continue
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(2)
        sock.close()


def trickle(handler, _n) -> None:  # type: ignore[no-untyped-def]
    """Headers at once, then one byte a second of a 1000-byte body."""
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    try:
        for _ in range(1000):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(1)
    except OSError:
        pass


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".part", ".old")))


# --- redirects ----------------------------------------------------------------------------------

def test_download_redirected_to_another_origin_sends_no_credentials(tmp_path: Path) -> None:
    other = HttpServer(lambda h, n: respond(h, 200, BODY))
    with other.running(), redirecting(other.url).running() as first:
        result = run_step("download", "--url", with_user(first.url) + "/secret", "--dest", str(tmp_path / "f"),
                          *secret_args(), env={"VT": TOKEN}, tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert first.requests[0]["X-Vault-Token"] == TOKEN  # the origin it was given for has them
    sent_nothing_secret(other)
    assert not any(s in result.stderr + result.termination for s in SECRETS)


def test_a_redirect_within_the_origin_keeps_the_credentials(tmp_path: Path) -> None:
    server = HttpServer(lambda h, n: respond(h, 302, b"", {"Location": "/moved"}) if n == 0
                        else respond(h, 200 if h.headers.get("X-Vault-Token") == TOKEN else 403, BODY))
    with server.running():
        result = run_step("download", "--url", server.url + "/secret", "--dest", str(tmp_path / "f"),
                          *secret_args(), env={"VT": TOKEN}, tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert (tmp_path / "f").read_bytes() == BODY


def test_wait_redirected_to_another_origin_sends_no_credentials(tmp_path: Path) -> None:
    other = HttpServer(lambda h, n: respond(h, 401))
    with other.running(), redirecting(other.url).running() as first:
        result = run_step("wait", "--http", with_user(first.url) + "/healthz", *secret_args(),
                          "--timeout", "1", env={"VT": TOKEN}, tmp=tmp_path)
    assert result.code == Exit.TIMEOUT
    sent_nothing_secret(other)
    assert "a redirect led there without the credentials" in result.termination, result.termination
    assert not any(s in result.stderr + result.termination for s in SECRETS)


def test_https_to_http_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    plain = HttpServer(lambda h, n: respond(h, 200, BODY))
    with plain.running():
        secure = HttpServer(lambda h, n: respond(h, 302, b"", {"Location": plain.url + "/x"}),
                            tls=ca.server_context())
        with secure.running():
            download = run_step("download", "--url", secure.url + "/secret", "--dest", str(tmp_path / "f"),
                                "--ca-file", str(ca.ca_file), *secret_args(), env={"VT": TOKEN},
                                tmp=tmp_path)
            wait = run_step("wait", "--http", secure.url + "/healthz", "--ca-file", str(ca.ca_file), "--timeout",
                            "1", tmp=tmp_path)
    assert download.code == Exit.REDIRECT, download.stderr
    assert "redirect from https to plain http" in download.termination
    assert wait.code == Exit.TIMEOUT and "redirect from https to plain http" in wait.termination
    assert plain.requests == []  # nothing reached the plain server
    assert not (tmp_path / "f").exists()


def test_a_redirect_to_ftp_is_refused_and_connects_nowhere(tmp_path: Path) -> None:
    with listener() as (port, accepted), redirecting(f"ftp://127.0.0.1:{port}").running() as first:
        download = run_step("download", "--url", first.url + "/f", "--dest", str(tmp_path / "f"), tmp=tmp_path)
        wait = run_step("wait", "--http", first.url + "/h", "--timeout", "1", tmp=tmp_path)
    assert download.code == Exit.REDIRECT and "only http and https are followed" in download.termination
    assert wait.code == Exit.TIMEOUT and "only http and https are followed" in wait.termination
    assert accepted == []


def test_git_clone_redirected_to_another_origin_sends_no_token(tmp_path: Path, repos: Path) -> None:
    with GitServer(repos).running() as other, redirecting(f"http://127.0.0.1:{other.port}").running() as first:
        result = run_step("git-clone", "--repository", with_user(first.url) + "/site.git", "--dest",
                          str(tmp_path / "out"), "--token-env", "GT", "--timeout", "30", env={"GT": TOKEN},
                          tmp=tmp_path)
    assert other.authorizations and all(a == "" for a in other.authorizations), other.authorizations
    assert not any(s in result.stderr + result.termination for s in SECRETS)
    assert leftovers(tmp_path) == []


def test_git_clone_refuses_https_to_http(tmp_path: Path, repos: Path, ca: CertificateAuthority) -> None:
    with GitServer(repos).running() as plain:
        secure = HttpServer(lambda h, n: respond(h, 302, b"", {"Location": f"http://127.0.0.1:{plain.port}{h.path}"}),
                            tls=ca.server_context())
        with secure.running():
            result = run_step("git-clone", "--repository", secure.url + "/site.git", "--dest", str(tmp_path / "out"),
                              "--timeout", "30", env={"SSL_CERT_FILE": str(ca.ca_file)}, tmp=tmp_path)
    assert result.code == Exit.REDIRECT, result.termination + result.stderr
    assert plain.authorizations == []
    assert not (tmp_path / "out").exists()


def test_git_clone_keeps_the_password_out_of_git_config(tmp_path: Path, repos: Path) -> None:
    with GitServer(repos, token="hunter2").running() as server:
        result = run_step("git-clone", "--repository", with_user(server.url("site.git")), "--dest",
                          str(tmp_path / "out"), "--timeout", "30", tmp=tmp_path)
    assert result.code == 0, result.stderr
    config = (tmp_path / "out" / ".git" / "config").read_text()
    assert "hunter2" not in config and "alice" not in config
    assert f"url = http://127.0.0.1:{server.port}/site.git" in config
    assert not any(b"hunter2" in p.read_bytes() for p in (tmp_path / "out" / ".git").rglob("*") if p.is_file())


# --- deadlines and SIGTERM ----------------------------------------------------------------------

def test_a_trickling_body_ends_at_the_timeout(tmp_path: Path) -> None:
    with HttpServer(trickle).running() as server:
        download = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"), "--timeout", "3",
                            tmp=tmp_path)
        wait = run_step("wait", "--http-json", server.url, "status", '["green"]', "--timeout", "3", tmp=tmp_path)
    assert download.code == Exit.TIMEOUT, download.stderr
    assert download.seconds < 3 + 1.5  # the interpreter's start is in it too
    assert " of 1000 bytes of " in download.termination and "timed out" in download.termination
    assert leftovers(tmp_path) == [] and not (tmp_path / "f").exists()
    assert wait.code == Exit.TIMEOUT and wait.seconds < 3 + 1.5


def test_git_clone_of_a_server_that_trickles_ends_at_the_timeout(tmp_path: Path) -> None:
    with HttpServer(trickle).running() as server:
        result = run_step("git-clone", "--repository", server.url + "/site.git", "--dest", str(tmp_path / "out"),
                          "--timeout", "3", tmp=tmp_path)
    assert result.code == Exit.TIMEOUT and result.seconds < 3 + 1.5, result.termination
    assert leftovers(tmp_path) == [] and not (tmp_path / "out").exists()


def start_step(*args: str, tmp: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "INITPIPELINE_TERMINATION_LOG": str(tmp / "termination")}
    return subprocess.Popen([sys.executable, "-m", "initpipeline.cli", "step", *args], env=env,
                            stderr=subprocess.PIPE, text=True)


def sigterm_once_staged(proc: subprocess.Popen[str], folder: Path) -> int:
    """SIGTERM as soon as the step has a staging file or folder; its exit code."""
    deadline = time.monotonic() + 20
    while not leftovers(folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(folder), "the step never started to write"
    proc.send_signal(signal.SIGTERM)
    return proc.wait(10)


def test_sigterm_during_a_download_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with HttpServer(trickle).running() as server:
        proc = start_step("download", "--url", server.url, "--dest", str(out / "f"), "--timeout", "60", tmp=tmp_path)
        code = sigterm_once_staged(proc, out)
    assert code == Exit.TERMINATED
    assert leftovers(out) == [] and not (out / "f").exists()
    assert "stopped by SIGTERM" in (tmp_path / "termination").read_text()


def test_sigterm_during_a_clone_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with HttpServer(trickle).running() as server:
        proc = start_step("git-clone", "--repository", server.url + "/site.git", "--dest", str(out / "site"),
                          "--timeout", "60", tmp=tmp_path)
        code = sigterm_once_staged(proc, out)
    assert code == Exit.TERMINATED
    assert leftovers(out) == [] and not (out / "site").exists()


def sigterm_after(proc: subprocess.Popen[str], line: str) -> tuple[int, str]:
    """SIGTERM once the step's log shows `line`; its exit code and all it logged."""
    assert proc.stderr is not None
    seen = []
    for logged in proc.stderr:
        seen.append(logged)
        if line in logged:
            break
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(10)
    return code, "".join(seen) + proc.stderr.read()


def test_sigterm_ends_a_wait_at_once_saying_what_it_waited_for(tmp_path: Path) -> None:
    """A step is its container's PID 1, which the kernel sends no signal it has no handler for: each
    wait handles SIGTERM itself, or a Pod stopped by its deadline would wait out its grace period."""
    with HttpServer(lambda h, n: respond(h, 503, b"not yet")).running() as server:
        proc = start_step("wait", "--http", server.url, "--timeout", "600", tmp=tmp_path)
        code, logged = sigterm_after(proc, "not ready")
    assert code == Exit.TERMINATED, logged
    message = (tmp_path / "termination").read_text()
    assert message.startswith("wait stopped by SIGTERM after ")
    assert f"{server.url}: NOT READY after " in message


def test_sigterm_ends_an_object_wait_at_once(tmp_path: Path) -> None:
    proc = start_step("wait-object", "--met-file", str(tmp_path / "met"), "--step", "s", "--object", "Job seed",
                      "--condition", "Complete", "--timeout", "600", tmp=tmp_path)
    code, logged = sigterm_after(proc, "waiting for Job seed")
    assert code == Exit.TERMINATED, logged
    assert "stopped by SIGTERM after" in (tmp_path / "termination").read_text()


def test_stale_staging_of_a_killed_run_is_removed(tmp_path: Path) -> None:
    (tmp_path / ".f.abcd1234.part").write_text("half")
    (tmp_path / ".f.zz_z9999.old").mkdir()
    (tmp_path / ".other.abcd1234.part").write_text("not ours")
    with HttpServer(lambda h, n: respond(h, 200, BODY)).running() as server:
        result = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"), tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".other.abcd1234.part"]
    assert "removed .f.abcd1234.part" in result.stderr


# --- hostile content and names ------------------------------------------------------------------

DEEP_JSON = b"[" * 60000 + b"]" * 60000
DEEP_YAML = b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 2000))


@pytest.mark.parametrize(("body", "args"), [
    (DEEP_JSON, ["--validate", "json"]),
    (DEEP_JSON, ["--format", "yaml"]),
    (DEEP_JSON, ["--extract", "a"]),
    (b"[" * 60000, ["--validate", "yaml"]),
    (b'{"a": ' + b"[" * 900 + b"]" * 900 + b"}", ["--extract", "a", "--format", "yaml"]),
])
def test_deep_documents_are_invalid_content(tmp_path: Path, body: bytes, args: list[str]) -> None:
    with HttpServer(lambda h, n: respond(h, 200, body)).running() as server:
        result = run_step("download", "--url", server.url, "--dest", str(tmp_path / "f"), *args, tmp=tmp_path)
    assert result.code == Exit.INVALID_CONTENT, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "too deeply" in result.termination
    assert leftovers(tmp_path) == [] and not (tmp_path / "f").exists()


def test_a_deep_health_body_is_not_ready(tmp_path: Path) -> None:
    with HttpServer(lambda h, n: respond(h, 200, DEEP_JSON)).running() as server:
        result = run_step("wait", "--http-json", server.url, "status", '["green"]', "--timeout", "1", tmp=tmp_path)
    assert result.code == Exit.TIMEOUT and "nested too deeply" in result.termination, result.termination


def test_a_destination_that_is_not_utf8(tmp_path: Path) -> None:
    dest = os.fsencode(tmp_path) + b"/conf-\xff.yaml"
    with HttpServer(lambda h, n: respond(h, 200, BODY)).running() as server:
        env = {**os.environ, "INITPIPELINE_TERMINATION_LOG": str(tmp_path / "termination")}
        proc = subprocess.run([os.fsencode(sys.executable), b"-m", b"initpipeline.cli", b"step", b"download",
                               b"--url", server.url.encode(), b"--dest", dest], env=env, capture_output=True,
                              check=False)
    assert proc.returncode == 0, proc.stderr
    with open(dest, "rb") as handle:
        assert handle.read() == BODY
    assert "conf-\\xff.yaml" in (tmp_path / "termination").read_text()


def test_a_fifo_in_the_migrations_folder_is_refused_before_anything_runs(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "1_a.sql").write_text("CREATE TABLE a (id int);")
    os.mkfifo(folder / "2_b.sql")
    # no database is reached: the URL's port is closed, and the folder is refused before connecting
    result = run_step("migrate", "--sql-dir", str(folder), "--database-url-env", "DB", "--connect-timeout", "1",
                      env={"DB": "postgresql://app@127.0.0.1:1/app"}, tmp=tmp_path, timeout=30)
    assert result.code == Exit.SQL_DIR, result.stderr
    assert "2_b.sql is a FIFO, not a regular file; nothing ran" in result.termination


def test_a_migration_name_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/1_caf\xe9.sql", "w") as handle:
        handle.write("SELECT 1;")
    result = run_step("migrate", "--sql-dir", str(folder), "--database-url-env", "DB", "--connect-timeout", "1",
                      env={"DB": "postgresql://app@127.0.0.1:1/app"}, tmp=tmp_path, timeout=30)
    assert result.code == Exit.LAYOUT, result.stderr
    assert "1_caf\\xe9.sql in --sql-dir: the file name is not UTF-8" in result.termination


@pytest.mark.parametrize("path", ["fifo", "/dev/zero"])
def test_met_file_that_is_not_a_regular_file(tmp_path: Path, path: str) -> None:
    if path == "fifo":
        path = str(tmp_path / "met")
        os.mkfifo(path)
    result = run_step("wait-object", "--met-file", path, "--step", "s", "--object", "Job seed", "--condition",
                      "Complete=True", "--timeout", "5", tmp=tmp_path, timeout=20)
    assert result.code == Exit.USAGE and "is not a regular file" in result.termination, result.stderr


# --- redaction: the shared table, through a step's log and termination message ------------------

def pointed_at(url: str, port: int) -> str | None:
    """The hostile URL aimed at our server (by address), or None for cases that are not one http(s) URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or " " in url:
        return None
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + f"127.0.0.1:{port}"
    return urllib.parse.urlunsplit(("http", netloc, parts.path, parts.query, parts.fragment))


def test_hostile_urls_never_reach_a_step_log(tmp_path: Path) -> None:
    cases = 0
    with HttpServer(lambda h, n: respond(h, 503)).running() as server:
        for case in HOSTILE_URLS:
            url = pointed_at(case.url, server.port)
            if url is None or not case.secrets:
                continue
            cases += 1
            for result in (run_step("wait", "--http", url, "--timeout", "0.5", tmp=tmp_path),
                           run_step("download", "--url", url, "--dest", str(tmp_path / "f"), "--timeout", "0.5",
                                    tmp=tmp_path)):
                shown = result.stderr + result.termination
                assert result.code in (Exit.TIMEOUT, Exit.HTTP_STATUS), (case.id, shown)
                for secret in case.secrets:
                    assert secret not in shown, (case.id, shown)
                assert "***" in shown, (case.id, shown)
    assert cases >= 8
