"""Readiness by protocol, against real servers: a PostgreSQL that must answer a query (and have a table), a
Redis that must accept its password and answer PING (also while it loads a dataset), a name that resolves."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pymysql
import pytest

from initpipeline.steps import mysqlurl, services
from initpipeline.steps.common import Exit
from tests.helpers import CertificateAuthority, MariaDB, Postgres, free_port, mariadb_server, redis_server, run_step


def test_postgres_answers_a_query_and_the_table_appears_later(tmp_path: Path, db: Postgres) -> None:
    def migrate() -> None:
        with psycopg.connect(db.app_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE django_migrations (id serial)")
    later = threading.Timer(1.5, migrate)
    later.start()
    try:
        result = run_step("wait", "--postgres", "DB_URL:django_migrations", "--timeout", "30",
                          env={"DB_URL": db.app_url}, tmp=tmp_path)
    finally:
        later.join()
    assert result.code == 0, result.stderr
    assert result.seconds > 1.4
    assert "not ready: table django_migrations does not exist yet" in result.stderr
    assert f"postgres 127.0.0.1:{db.port}/app (table django_migrations): ready after" in result.termination
    assert db.password not in result.stderr + result.termination


def test_postgres_that_refuses_the_password_is_never_ready_and_says_why(tmp_path: Path, db: Postgres) -> None:
    wrong = db.app_url.replace(db.password, "not-the-password")
    result = run_step("wait", "--postgres", "DB_URL", "--timeout", "2", env={"DB_URL": wrong}, tmp=tmp_path)
    assert result.code == Exit.TIMEOUT, result.stderr
    assert "password authentication failed" in result.termination
    assert "not-the-password" not in result.stderr + result.termination


def test_postgres_that_is_not_up_yet(tmp_path: Path) -> None:
    url = f"postgresql://app:pw@127.0.0.1:{free_port()}/app"
    result = run_step("wait", "--postgres", "DB_URL", "--timeout", "1", env={"DB_URL": url}, tmp=tmp_path)
    assert result.code == Exit.TIMEOUT and "last: connection refused" in result.termination, result.termination


def test_redis_that_starts_late(tmp_path: Path) -> None:
    with redis_server(tmp_path, 1.5) as redis:
        result = run_step("wait", "--redis", "REDIS_URL", "--timeout", "30", env={"REDIS_URL": redis.url()},
                          tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert result.seconds > 1.4
    assert f"redis 127.0.0.1:{redis.port}/0: ready after" in result.termination
    assert redis.password not in result.stderr + result.termination


def test_redis_that_refuses_the_password(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis:
        result = run_step("wait", "--redis", "REDIS_URL", "--timeout", "1",
                          env={"REDIS_URL": redis.url("wrong-one")}, tmp=tmp_path)
    assert result.code == Exit.TIMEOUT
    assert "authentication refused (WRONGPASS)" in result.termination, result.termination
    assert "wrong-one" not in result.stderr + result.termination


def test_redis_loading_its_dataset_is_not_ready_until_it_answers(tmp_path: Path) -> None:
    """A real Redis restarted on a large dump answers LOADING for a while; the step waits it out."""
    with redis_server(tmp_path, 0, "--enable-debug-command", "yes", "--save", "3600 1") as redis:
        cli = ["redis-cli", "-p", str(redis.port), "--no-auth-warning", "-a", redis.password]
        subprocess.run([*cli, "DEBUG", "POPULATE", "3000000", "key", "64"], check=True, capture_output=True)
        subprocess.run([*cli, "SAVE"], check=True, capture_output=True)
    # the same folder and port: the new server loads the dump before it answers
    with redis_server(tmp_path, 0.5, "--save", "3600 1", port=redis.port) as again:
        result = run_step("wait", "--redis", "REDIS_URL", "--timeout", "60", "--max-interval", "0.1",
                          env={"REDIS_URL": again.url(redis.password)}, tmp=tmp_path)
    assert result.code == 0, result.stderr
    assert "not ready: Redis is loading its dataset (LOADING)" in result.stderr


def test_mysql_that_starts_late_and_gets_its_table_later(tmp_path: Path) -> None:
    """A real MariaDB: refused while it starts, then a table that a migration makes."""
    with mariadb_server(tmp_path, 1.0) as maria:
        def migrate() -> None:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with pymysql.connect(unix_socket=str(maria.socket), user="app", password=maria.password,
                                         database="app") as conn, conn.cursor() as cursor:
                        cursor.execute("CREATE TABLE schema_migrations (version bigint)")
                        return
                except pymysql.MySQLError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        later = threading.Timer(1.0, migrate)
        later.start()
        try:
            result = run_step("wait", "--mysql", "DB_URL:schema_migrations", "--timeout", "60",
                              env={"DB_URL": maria.url()}, tmp=tmp_path)
        finally:
            later.join()
    assert result.code == 0, result.stderr
    assert "not ready: connection refused" in result.stderr
    assert f"mysql 127.0.0.1:{maria.port}/app (table schema_migrations): ready after" in result.termination
    assert maria.password not in result.stderr + result.termination


def test_mysql_table_not_there_yet_and_wrong_password(tmp_path: Path, mariadb: MariaDB) -> None:
    result = run_step("wait", "--mysql", "DB_URL:app.no_such_table", "--timeout", "1",
                      env={"DB_URL": mariadb.url()}, tmp=tmp_path)
    assert result.code == Exit.TIMEOUT and "table app.no_such_table does not exist yet" in result.termination
    result = run_step("wait", "--mysql", "DB_URL", "--timeout", "1",
                      env={"DB_URL": mariadb.url("not-the-password")}, tmp=tmp_path)
    assert result.code == Exit.TIMEOUT
    assert "authentication refused (1045 Access denied for user 'app'" in result.termination, result.termination
    assert "not-the-password" not in result.stderr + result.termination
    result = run_step("wait", "--mysql", "DB_URL", "--timeout", "1", env={"DB_URL": mariadb.url(database="nope")},
                      tmp=tmp_path)
    assert "the database does not exist (1049 Unknown database 'nope')" in result.termination, result.termination
    result = run_step("wait", "--mysql", "DB_URL", "--timeout", "5", env={"DB_URL": mariadb.url()}, tmp=tmp_path)
    assert result.code == 0, result.stderr


def test_mysql_over_tls_verified_by_the_urls_ca_or_the_steps(tmp_path: Path, mariadb: MariaDB,
                                                             ca: CertificateAuthority) -> None:
    verified = f"{mariadb.url()}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca.ca_file}"
    result = run_step("wait", "--mysql", "DB_URL", "--timeout", "5", env={"DB_URL": verified}, tmp=tmp_path)
    assert result.code == 0, result.stderr
    # the CA of the step's caBundle (--ca-file) when the URL names none
    result = run_step("wait", "--mysql", "DB_URL", "--ca-file", str(ca.ca_file), "--timeout", "5",
                      env={"DB_URL": f"{mariadb.url()}?ssl-mode=VERIFY_CA"}, tmp=tmp_path)
    assert result.code == 0, result.stderr
    # the system's CAs do not know ours
    result = run_step("wait", "--mysql", "DB_URL", "--timeout", "1",
                      env={"DB_URL": f"{mariadb.url()}?ssl-mode=VERIFY_IDENTITY"}, tmp=tmp_path)
    assert result.code == Exit.TIMEOUT and "TLS refused" in result.termination, result.termination
    assert "CERTIFICATE_VERIFY_FAILED" in result.termination


@pytest.mark.parametrize(("query", "encrypted"), [("", True), ("?ssl-mode=DISABLED", False),
                                                 ("?ssl-mode=REQUIRED", True)])
def test_mysql_ssl_modes_encrypt_as_mysqls_clients_do(mariadb: MariaDB, query: str, encrypted: bool) -> None:
    conn = mysqlurl.mysql_connect(mariadb.url() + query, 5)
    with conn, conn.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert bool(cursor.fetchone()[1]) is encrypted


def test_mysql_that_offers_no_tls_when_the_url_requires_it(tmp_path: Path) -> None:
    with mariadb_server(tmp_path) as plain:
        result = run_step("wait", "--mysql", "DB_URL", "--timeout", "1",
                          env={"DB_URL": f"{plain.url()}?ssl-mode=REQUIRED"}, tmp=tmp_path)
        assert result.code == Exit.TIMEOUT
        assert "TLS refused (2026 SSL is required but the server doesn't support it)" in result.termination, \
            result.termination
        assert run_step("wait", "--mysql", "DB_URL", "--timeout", "5", env={"DB_URL": plain.url()},
                        tmp=tmp_path).code == 0  # PREFERRED, the default, goes on without TLS


def test_dns_name_that_resolves(tmp_path: Path) -> None:
    result = run_step("wait", "--dns", "localhost", "--timeout", "5", tmp=tmp_path)
    assert result.code == 0 and "dns localhost: ready after" in result.termination, result.stderr


def test_a_name_that_does_not_resolve_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # no lookup leaves the machine in the tests: the resolver's answer is given
    def nowhere(*_: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", nowhere)
    assert services.dns_probe("config-server.default.svc") == services.NotReady(
        "config-server.default.svc does not resolve (Name or service not known)", services.Pace.NOT_YET)


def test_a_resolver_that_does_not_answer_is_backed_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def silent(*_: object) -> None:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    monkeypatch.setattr(socket, "getaddrinfo", silent)
    verdict = services.dns_probe("config-server.default.svc")
    assert verdict is not None and verdict.pace is services.Pace.BACK_OFF


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["--postgres", "NOPE"], {}, "--postgres: the environment variable 'NOPE' is not set or empty"),
    (["--postgres", "U"], {"U": "mysql://x@y/z"}, "U must hold a postgres:// or postgresql:// URL"),
    (["--redis", "U"], {"U": "http://x"}, "U must hold a redis:// or rediss:// URL"),
    (["--mysql", "U"], {"U": "postgres://x@y/z"}, "U must hold a mysql:// or mariadb:// URL"),
    (["--mysql", "U"], {"U": "mysql://x@y/z?ssl-mode=ON"}, "--mysql: U: ssl-mode must be one of DISABLED, PREFERRED"),
])
def test_service_arguments_are_checked(tmp_path: Path, args: list[str], env: dict[str, str], needle: str) -> None:
    result = run_step("wait", *args, env=env, tmp=tmp_path)
    assert result.code == Exit.USAGE and needle in result.stderr, result.stderr
