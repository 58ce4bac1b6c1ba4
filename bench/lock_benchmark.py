"""How long do the app's queries wait while a migration waits for a table lock?

Side by side, in one run, on a real PostgreSQL and a real MariaDB (Debian's, on loopback): a report holds a
transaction that read `users` for --hold seconds; meanwhile one migration runs `ALTER TABLE users ADD COLUMN`,
and the app runs `SELECT count(*) FROM users` every 50 ms on fresh connections. The migration is, in turn:
- ours: `initpipeline step migrate` with its defaults (each statement waits at most 1 s for a lock, then the
  file is retried later);
- the classic: the same file through the database's own client (`psql -f`, `mariadb <`), which waits for
  the lock as long as it takes, as golang-migrate, Flyway and dbmate do by default.
The figures are the app's longest and median query time during the migration, and how long the migration
took to apply. Prints each round and the medians.

    python bench/lock_benchmark.py [--database postgres|mariadb|all] [--hold 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import (  # noqa: E402
    app_traffic,
    holding_transaction,
    mariadb_server,
    mysql_rows,
    mysql_run,
    postgres_server,
    sql_rows,
    sql_run,
)

ALTER = {"postgres": "ALTER TABLE users ADD COLUMN email text;\n",
         "mariadb": "ALTER TABLE users ADD COLUMN email varchar(80);\n"}


def ours(url: str, folder: Path) -> list[str]:
    os.environ["BENCH_DB_URL"] = url
    return [sys.executable, "-m", "initpipeline.cli", "step", "migrate", "--sql-dir", str(folder),
            "--database-url-env", "BENCH_DB_URL"]


def classic(database: str, url: str, folder: Path) -> list[str]:
    file = next(folder.glob("*.up.sql"))
    if database == "postgres":
        return ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(file)]
    parts = urllib.parse.urlsplit(url)
    return ["sh", "-c", 'exec mariadb -h 127.0.0.1 -P "$1" -u "$2" -p"$3" "$4" < "$5"', "mariadb",
            str(parts.port), parts.username or "", urllib.parse.unquote(parts.password or ""),
            parts.path.strip("/"), str(file)]


def one_round(database: str, url: str, reset: Callable[[], None], query: Callable[[], Any],
              command: list[str], hold: float, env: dict[str, str]) -> tuple[float, float, float]:
    reset()
    with holding_transaction(url, hold), app_traffic(query) as took:
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        applied = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stderr[-400:]}")
    return max(took), statistics.median(took), applied


def bench(database: str, url: str, hold: float, rounds: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="initpipeline-bench-sql-"))
    (folder / "1_email.up.sql").write_text(ALTER[database])
    if database == "postgres":
        def reset() -> None:
            sql_run(url, "DROP TABLE IF EXISTS users, schema_migrations; CREATE TABLE users (id int PRIMARY KEY); "
                         "INSERT INTO users SELECT generate_series(1, 1000)")
        query: Callable[[], Any] = lambda: sql_rows(url, "SELECT count(*) FROM users")  # noqa: E731
    else:
        def reset() -> None:
            mysql_run(url, "DROP TABLE IF EXISTS users, schema_migrations; CREATE TABLE users (id int PRIMARY KEY) "
                           "ENGINE=InnoDB; INSERT INTO users VALUES (1), (2), (3)")
        query = lambda: mysql_rows(url, "SELECT count(*) FROM users")  # noqa: E731
    env = {**os.environ, "INITPIPELINE_TERMINATION_LOG": "/dev/null", "BENCH_DB_URL": url}
    results: dict[str, list[tuple[float, float, float]]] = {"ours": [], "classic": []}
    for number in range(1, rounds + 1):
        for who, command in (("ours", ours(url, folder)), ("classic", classic(database, url, folder))):
            figures = one_round(database, url, reset, query, command, hold, env)
            results[who].append(figures)
            print(f"{database} round {number} {who:8} app's longest query {figures[0]:6.2f} s, median "
                  f"{figures[1]:5.2f} s; migration applied after {figures[2]:5.1f} s", flush=True)
    for who, rows in results.items():
        longest, median, applied = (statistics.median(r[i] for r in rows) for i in range(3))
        print(f"{database} {who:8} median of {rounds}: app's longest query {longest:.2f} s, median query "
              f"{median:.2f} s, applied after {applied:.1f} s (report holds the table {hold:.0f} s)")
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("postgres", "mariadb", "all"), default="all")
    parser.add_argument("--hold", type=float, default=10.0, help="how long the report holds the table")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.database in ("postgres", "all"):
        folder = Path(tempfile.mkdtemp(prefix="initpipeline-bench-pg-"))
        try:
            with postgres_server(folder) as server:
                bench("postgres", server.app_url, args.hold, args.rounds)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if args.database in ("mariadb", "all"):
        folder = Path(tempfile.mkdtemp(prefix="initpipeline-bench-mariadb-"))
        try:
            with mariadb_server(folder) as server:
                name = f"bench_{uuid.uuid4().hex[:8]}"
                bench("mariadb", server.fresh(name), args.hold, args.rounds)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
