"""Real services on loopback for the step tests: HTTP(S) servers, late TCP listeners, PostgreSQL."""

from __future__ import annotations

import base64
import glob
import http.server
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class StepResult:
    code: int
    stdout: str
    stderr: str
    termination: str
    seconds: float


def run_step(*args: str, env: dict[str, str] | None = None, tmp: Path, timeout: float = 120) -> StepResult:
    """Run the real `initpipeline step ...` program."""
    termination = tmp / f"termination-{time.monotonic_ns()}"
    full_env = {**os.environ, "INITPIPELINE_TERMINATION_LOG": str(termination), **(env or {})}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "initpipeline.cli", "step", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, check=False)
    text = termination.read_text() if termination.exists() else ""
    return StepResult(proc.returncode, proc.stdout, proc.stderr, text, time.monotonic() - started)


# --- HTTP ---------------------------------------------------------------------------------------

Handler = Callable[[http.server.BaseHTTPRequestHandler, int], None]


@contextmanager
def serving(server: http.server.ThreadingHTTPServer) -> Iterator[None]:
    """Serve on a thread of its own until the block ends."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class HttpServer:
    """A threaded HTTP server whose answer to the n-th request (0-based) is scripted."""

    script: Handler
    tls: ssl.SSLContext | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    address: str = "127.0.0.1"  # the end-to-end tests serve Pods on the node's bridge address

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{'localhost' if self.tls else '127.0.0.1'}:{self.port}"

    @contextmanager
    def running(self) -> Iterator[HttpServer]:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index = len(outer.requests)
                outer.requests.append(dict(self.headers.items()))
                outer.script(self, index)

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer((self.address, 0), Handler)
        server.daemon_threads = True
        if self.tls:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        with serving(server):
            yield self


def respond(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes = b"",
            headers: dict[str, str] | None = None, length: bool = True) -> None:
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@dataclass
class CertificateAuthority:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def make_ca(folder: Path) -> CertificateAuthority:
    """A CA of our own and a certificate for localhost signed by it (openssl, no shell)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=initpipeline test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    (folder / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    return CertificateAuthority(folder / "ca.crt", folder / "server.crt", folder / "server.key")


@contextmanager
def late_listener(port: int, delay: float) -> Iterator[threading.Event]:
    """Start accepting TCP connections on port after delay seconds; the event is set once listening."""
    listening = threading.Event()
    stop = threading.Event()

    def serve() -> None:
        if stop.wait(delay):
            return
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(16)
            sock.settimeout(0.1)
            listening.set()
            while not stop.is_set():
                try:
                    conn, _ = sock.accept()
                    conn.close()
                except TimeoutError:
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listening
    finally:
        stop.set()
        thread.join(5)


# --- PostgreSQL ---------------------------------------------------------------------------------

@dataclass
class Postgres:
    port: int
    admin_url: str
    app_url: str
    password: str


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextmanager
def postgres_server(folder: Path, listen: str = "127.0.0.1", allow: str | None = None,
                    tls: CertificateAuthority | None = None) -> Iterator[Postgres]:
    """A throwaway PostgreSQL, run as the postgres user (it refuses root).

    listen: its addresses (comma-separated); allow: a further CIDR that may log in with a password; tls: it
    offers TLS with that CA's certificate for localhost and 127.0.0.1.
    """
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed: run hack/install-deps.sh")
    data, sockets = folder / "data", folder / "sock"
    sockets.mkdir(parents=True)
    data.mkdir()
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        for sub in (data, sockets):
            shutil.chown(sub, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "-E", "UTF8"], check=True, capture_output=True)
    if allow:
        with open(data / "pg_hba.conf", "a", encoding="utf-8") as hba:
            hba.write(f"host all all {allow} scram-sha-256\n")
    port = free_port()
    options = f"-p {port} -k {sockets} -c listen_addresses={listen} -c fsync=off"
    if tls:
        # the key must be the server user's own and private
        for source, name in ((tls.cert_file, "server.crt"), (tls.key_file, "server.key")):
            shutil.copyfile(source, data / name)
            os.chmod(data / name, 0o600)
            if as_postgres:
                shutil.chown(data / name, "postgres")
        options += " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
    subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
                    "-w", "-t", "60", "-o", options, "start"], check=True, capture_output=True)
    password = "s3cret-Passw0rd"
    try:
        psql = [*as_postgres, str(bindir / "psql"), "-h", str(sockets), "-p", str(port), "-U", "postgres",
                "-v", "ON_ERROR_STOP=1", "-q"]
        subprocess.run([*psql, "-c", f"CREATE ROLE app LOGIN PASSWORD '{password}'"], check=True, capture_output=True)
        subprocess.run([*psql, "-c", "CREATE DATABASE app OWNER app"], check=True, capture_output=True)
        yield Postgres(port=port, admin_url=f"postgresql://postgres@/app?host={sockets}&port={port}",
                       app_url=f"postgresql://app:{password}@127.0.0.1:{port}/app", password=password)
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True)


# --- the migration step ---------------------------------------------------------------------------

def write_files(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@contextmanager
def holding_transaction(url: str, hold: float, sql: str = "SELECT count(*) FROM users") -> Iterator[None]:
    """A nightly report: a session of its own (PostgreSQL, or MySQL for a mysql:// URL, named nightly-report)
    whose transaction ran sql and stays open for hold seconds, in a thread; the block runs while it holds
    the locks that sql took (a read's: the table's, or its metadata lock on MySQL)."""
    ready = threading.Event()

    def report() -> None:
        if url.startswith("mysql://"):
            import pymysql

            parts = urllib.parse.urlsplit(url)
            conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "",
                                   password=urllib.parse.unquote(parts.password or ""),
                                   database=parts.path.strip("/"), autocommit=False, program_name="nightly-report")
            try:
                with conn.cursor() as cursor:
                    cursor.execute(sql)
                    ready.set()
                    time.sleep(hold)
                conn.rollback()
            finally:
                conn.close()
            return
        import psycopg

        with psycopg.connect(url, application_name="nightly-report") as pg:
            pg.execute(sql.encode())  # psycopg opened a transaction: it holds the locks until it ends
            ready.set()
            time.sleep(hold)
    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    assert ready.wait(10), "the report did not start"
    try:
        yield
    finally:
        thread.join(hold + 10)


@contextmanager
def app_traffic(query: Callable[[], Any], every: float = 0.05) -> Iterator[list[float]]:
    """An app's steady queries in a thread, each `every` seconds: yields how long each one took, filled as
    they run (the lock tests and bench/lock_benchmark.py measure what a migration makes the app wait)."""
    took: list[float] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            started = time.monotonic()
            query()
            took.append(time.monotonic() - started)
            stop.wait(every)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield took
    finally:
        stop.set()
        thread.join(60)


def run_migrate(url: str, folder: Path, tmp: Path, *extra: str) -> StepResult:
    """The real `initpipeline step migrate` on folder, with url in its environment."""
    return run_step("migrate", "--sql-dir", str(folder), "--database-url-env", "DB_URL", *extra,
                    env={"DB_URL": url}, tmp=tmp)


def sql_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode()).fetchall()


def sql_run(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.encode())


def run_tool(*args: str | Path, env: dict[str, str] | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    """A migration tool's command line (golang-migrate, dbmate, flyway-tool), with env added to ours."""
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{args[0]} exited {proc.returncode}: {proc.stdout}{proc.stderr}")
    return proc


def migration_tool(name: str) -> Path:
    """A migration tool that hack/migration-tools.sh installed (golang-migrate, dbmate, flyway-tool)."""
    path = Path(os.environ.get("INITPIPELINE_CACHE", Path.home() / ".cache" / "initpipeline")) / "bin" / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run make migration-tools (make unit and make test do)")
    return path


def start_migrate(url: str, folder: Path, *extra: str) -> subprocess.Popen[str]:
    """The real runner in the background; its stderr is piped."""
    env = {**os.environ, "DB_URL": url, "INITPIPELINE_TERMINATION_LOG": "/dev/null"}
    return subprocess.Popen([sys.executable, "-m", "initpipeline.cli", "step", "migrate", "--sql-dir", str(folder),
                             "--database-url-env", "DB_URL", *extra], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def run_migrate_together(url: str, folder: Path, count: int) -> list[tuple[int, str]]:
    """count runners started at once on one database: each one's exit code and stderr."""
    procs = [start_migrate(url, folder) for _ in range(count)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    return [(p.returncode, err) for p, err in zip(procs, errors, strict=True)]


# --- Redis --------------------------------------------------------------------------------------

@dataclass
class Redis:
    port: int
    password: str

    def url(self, password: str | None = None) -> str:
        return f"redis://:{self.password if password is None else password}@127.0.0.1:{self.port}/0"


@contextmanager
def redis_server(folder: Path, delay: float = 0, *extra: str, port: int | None = None) -> Iterator[Redis]:
    """Debian's redis-server on a free loopback port, with a password, started after `delay` seconds
    (in the background: the caller is already waiting). Only the process started here is stopped."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run hack/install-deps.sh")
    server = Redis(port or free_port(), "r3dis-Passw0rd")
    args = [binary, "--port", str(server.port), "--bind", "127.0.0.1", "--requirepass", server.password,
            "--dir", str(folder), "--save", "", "--appendonly", "no", "--daemonize", "no", *extra]
    with _started_late(args, delay, server.port, 10):
        yield server


@contextmanager
def _started_late(args: list[str], delay: float, port: int, limit: float) -> Iterator[None]:
    """A server process started after `delay` seconds, in the background; without a delay, once its port
    accepts (within limit). Only the process started here is stopped."""
    started: list[subprocess.Popen[bytes]] = []
    timer = threading.Timer(delay, lambda: started.append(subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    timer.start()
    try:
        if not delay:
            timer.join()
            _wait_port(port, limit)
        yield
    finally:
        timer.cancel()
        timer.join()
        for proc in started:
            proc.terminate()
            proc.wait(timeout=60)


def _wait_port(port: int, limit: float = 10) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


# --- MariaDB --------------------------------------------------------------------------------------

MARIADB_PASSWORD = "m4ria-Passw0rd"


@dataclass
class MariaDB:
    port: int
    password: str
    socket: Path

    def url(self, password: str | None = None, database: str = "app") -> str:
        return f"mysql://app:{self.password if password is None else password}@127.0.0.1:{self.port}/{database}"

    def fresh(self, name: str) -> str:
        """A new, empty database (dropped first if a test left it): its URL."""
        mysql_run(self.url(), f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`")
        return self.url(database=name)


def mysql_rows(url: str, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    import pymysql

    parts = urllib.parse.urlsplit(url)
    with pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "",
                         password=urllib.parse.unquote(parts.password or ""), database=parts.path.strip("/"),
                         autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def mysql_run(url: str, sql: str) -> None:
    """Run statements (a script, ;-separated) as one multi-statement request."""
    import pymysql
    from pymysql.constants import CLIENT

    parts = urllib.parse.urlsplit(url)
    with pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "",
                         password=urllib.parse.unquote(parts.password or ""), database=parts.path.strip("/"),
                         autocommit=True, client_flag=CLIENT.MULTI_STATEMENTS) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        while cursor.nextset():
            pass


def mariadb_install(folder: Path) -> Path:
    """A MariaDB data folder with a user `app` (all privileges) and a database `app`; the file of SQL that the
    server runs at each start (with every privilege: no root login is needed)."""
    install = shutil.which("mariadb-install-db")
    if install is None:
        raise RuntimeError("MariaDB is not installed: run hack/install-deps.sh")
    subprocess.run([install, "--no-defaults", f"--datadir={folder / 'data'}",
                    f"--user={pwd.getpwuid(os.geteuid()).pw_name}", "--skip-test-db",
                    "--auth-root-authentication-method=socket"], check=True, capture_output=True)
    init = folder / "init.sql"
    init.write_text(f"CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY '{MARIADB_PASSWORD}';\n"
                    "CREATE DATABASE IF NOT EXISTS app;\nGRANT ALL ON *.* TO 'app'@'%' WITH GRANT OPTION;\n")
    return init


def mariadb_command(folder: Path, port: int, tls: CertificateAuthority | None = None) -> list[str]:
    """The server of mariadb_install's folder, on a loopback port, in the foreground; with tls, it offers TLS
    with that CA's certificate for localhost and 127.0.0.1."""
    daemon = shutil.which("mariadbd", path="/usr/sbin:/usr/bin")
    if daemon is None:
        raise RuntimeError("MariaDB is not installed: run hack/install-deps.sh")
    return [daemon, "--no-defaults", f"--datadir={folder / 'data'}", f"--user={pwd.getpwuid(os.geteuid()).pw_name}",
            f"--port={port}", "--bind-address=127.0.0.1", f"--socket={folder / 'mariadb.sock'}",
            f"--pid-file={folder / 'mariadb.pid'}", f"--init-file={folder / 'init.sql'}", "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0",
            f"--log-error={folder / 'error.log'}",
            *([f"--ssl-ca={tls.ca_file}", f"--ssl-cert={tls.cert_file}", f"--ssl-key={tls.key_file}"] if tls else [])]


@contextmanager
def mariadb_server(folder: Path, delay: float = 0, port: int | None = None,
                   tls: CertificateAuthority | None = None) -> Iterator[MariaDB]:
    """Debian's MariaDB on a free loopback port (see mariadb_install and mariadb_command), started after
    `delay` seconds (in the background: the caller is already waiting). Only the process started here is
    stopped."""
    server = MariaDB(port or free_port(), MARIADB_PASSWORD, folder / "mariadb.sock")
    mariadb_install(folder)
    with _started_late(mariadb_command(folder, server.port, tls), delay, server.port, 60):
        yield server


# --- git ----------------------------------------------------------------------------------------

def git(folder: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(folder)}
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@dataclass
class GitServer:
    """Git's own smart HTTP server (`git http-backend`, as CGI) for the repositories under `root`; with a
    token, only Basic auth with that password is let in (how GitHub and GitLab take an https token)."""

    root: Path
    token: str | None = None
    port: int = 0
    address: str = "127.0.0.1"
    authorizations: list[str] = field(default_factory=list)  # the Authorization header of each request ("")

    def url(self, repo: str) -> str:
        return f"http://127.0.0.1:{self.port}/{repo}"

    @contextmanager
    def running(self) -> Iterator[GitServer]:
        server_root, token, seen = self.root, self.token, self.authorizations

        class Backend(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.cgi()

            def do_POST(self) -> None:
                self.cgi()

            def cgi(self) -> None:
                seen.append(self.headers.get("Authorization", ""))
                if token is not None:
                    sent = self.headers.get("Authorization", "")
                    if not sent.startswith("Basic ") or base64.b64decode(sent[6:]).decode().partition(":")[2] != token:
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="git"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                path, _, query = self.path.partition("?")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                env = {"GIT_PROJECT_ROOT": str(server_root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
                       "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_ADDR": "127.0.0.1",
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                       "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""), "PATH": os.environ["PATH"]}
                out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                                     check=False).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode().split("\r\n"):
                    key, _, value = line.partition(": ")
                    if key.lower() == "status":
                        status = int(value.split()[0])
                    elif key:
                        headers.append((key, value))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer((self.address, 0), Backend)
        self.port = server.server_address[1]
        with serving(server):
            yield self
