from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.helpers import CertificateAuthority, MariaDB, Postgres, git, make_ca, mariadb_server, postgres_server


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


@pytest.fixture
def repos(tmp_path: Path) -> Path:
    """site.git with two commits on main (v1 tagged on the first) and a branch 'next'."""
    work, root = tmp_path / "work", tmp_path / "repos"
    work.mkdir()
    root.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "index.html").write_text("v1\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "one")
    git(work, "tag", "v1")
    (work / "index.html").write_text("v2\n")
    git(work, "commit", "-q", "-am", "two")
    git(work, "checkout", "-q", "-b", "next")
    (work / "next.txt").write_text("next\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "three")
    git(work, "checkout", "-q", "main")
    git(root, "clone", "-q", "--bare", str(work), "site.git")
    return root
