from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.helpers import CertificateAuthority, MariaDB, Postgres, make_ca, mariadb_server, postgres_server


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def postgres(ca: CertificateAuthority) -> Iterator[Postgres]:
    """One PostgreSQL for the session, which offers TLS with the session CA's certificate."""
    # Not under pytest's tmp folder: that is private to root, and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="initpipeline-pg-"))
    try:
        with postgres_server(folder, tls=ca) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def db(postgres: Postgres) -> Iterator[Postgres]:
    """A clean app database for each test."""
    with psycopg.connect(postgres.admin_url.replace("/app?", "/postgres?"), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'app'")
        conn.execute("DROP DATABASE IF EXISTS app")
        conn.execute("CREATE DATABASE app OWNER app")
    yield postgres


@pytest.fixture(scope="session")
def mariadb(ca: CertificateAuthority) -> Iterator[MariaDB]:
    """One MariaDB for the session, which offers TLS with the session CA's certificate."""
    folder = Path(tempfile.mkdtemp(prefix="initpipeline-mariadb-"))
    try:
        with mariadb_server(folder, tls=ca) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)
