"""How soon does a wait step notice that its dependency is up?

Side by side, in one run, for each kind of wait:
- tcp: `initpipeline step wait --tcp` and the classic `until nc -z HOST PORT; do sleep 2; done` loop wait for
  the same TCP port, which starts listening after a random delay;
- json: `initpipeline step wait --http-json URL status '["green","yellow"]'` and the classic
  `until curl -fsS URL | grep -q '"status": *"green"'; do sleep 2; done` loop wait for the same HTTP endpoint,
  which answers 200 with status red until a random moment, then green (Elasticsearch's health).
- redis: `initpipeline step wait --redis ENV` and `until redis-cli ping | grep -q PONG; do sleep 2; done` wait
  for a Redis (Debian's redis-server, with a password) that starts after a random delay;
- postgres: `initpipeline step wait --postgres ENV` and `until pg_isready -q; do sleep 2; done` wait for a
  PostgreSQL (Debian's) that starts after a random delay. pg_isready only asks whether the server accepts
  connections; ours logs in and runs a query, so it is the stricter check of the two.
- mysql: `initpipeline step wait --mysql ENV` and `until mysqladmin ping --silent; do sleep 2; done` wait for a
  MariaDB (Debian's) that starts after a random delay. mysqladmin ping counts a server that refuses the login as
  alive; ours logs in and runs a query.
- dns: `initpipeline step wait --dns NAME` and `until nslookup NAME; do sleep 2; done` (the loop of the
  Kubernetes docs' init container example) wait for a name that a DNS server of this script's starts to know
  after a random delay (as CoreDNS does once a Service is created). Both run in a network namespace that this
  script makes (root only), whose /etc/resolv.conf names that server and nothing else.
The figure is the time from the dependency being ready (it answers PING, or a query) to each waiter exiting.
Prints each round, the median and mean of both, and their ratio.

    python bench/wait_benchmark.py [--kind tcp|json|redis|postgres|mysql|dns|all] [--rounds 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

CLASSIC = "until nc -z 127.0.0.1 {port}; do sleep 2; done"
CLASSIC_JSON = ("until curl -fsS http://127.0.0.1:{port}/_cluster/health | grep -q '\"status\": *\"green\"'; "
                "do sleep 2; done")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def exit_time(command: list[str], out: dict[str, float], key: str) -> None:
    proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    out[key] = time.monotonic()
    out[key + ".code"] = proc.returncode


Round = tuple[float, float, float | None]  # ready -> exit of ours and of the classic loop; our attempts a second


def attempts_per_second(stderr: str) -> float | None:
    """From the step's 'ready after 2.3s, 12 attempt(s)': how often it asked the dependency while waiting."""
    match = re.search(r"ready after ([0-9.]+)s, (\d+) attempt", stderr)
    if not match or float(match.group(1)) <= 0:
        return None
    return int(match.group(2)) / float(match.group(1))


def one_round(delay: float) -> Round:
    port = free_port()
    ends: dict[str, float] = {}
    ours = [sys.executable, "-m", "initpipeline.cli", "step", "wait", "--tcp", f"127.0.0.1:{port}", "--timeout", "60"]
    # The baseline is the fixed snippet people paste into init containers; no input reaches it.
    classic = ["sh", "-c", CLASSIC.format(port=port)]
    threads = [threading.Thread(target=exit_time, args=(ours, ends, "ours")),
               threading.Thread(target=exit_time, args=(classic, ends, "classic"))]
    for thread in threads:
        thread.start()
    time.sleep(delay)
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(64)
        ready = time.monotonic()
        server.settimeout(0.05)
        while any(t.is_alive() for t in threads):
            try:
                conn, _ = server.accept()
                conn.close()
            except TimeoutError:
                pass
    for thread in threads:
        thread.join()
    if ends.get("ours.code") != 0 or ends.get("classic.code") != 0:
        raise SystemExit(f"a waiter failed: {ends}")
    return ends["ours"] - ready, ends["classic"] - ready, None


def one_json_round(delay: float) -> Round:
    """An HTTP health endpoint that answers red, then green from a random moment on."""
    state = {"status": "red"}

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"cluster_name": "bench", "status": state["status"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    port = server.server_address[1]
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    ours = [sys.executable, "-m", "initpipeline.cli", "step", "wait", "--http-json",
            f"http://127.0.0.1:{port}/_cluster/health", "status", '["green", "yellow"]', "--timeout", "60"]
    try:
        # the classic loop is the fixed snippet; no input reaches it. Ready the moment the status turns.
        return race(ours, CLASSIC_JSON.format(port=port), {}, lambda: state.update(status="green"),
                    lambda: True, delay)
    finally:
        server.shutdown()


CLASSIC_REDIS = "until redis-cli -h 127.0.0.1 -p {port} ping 2>/dev/null | grep -q PONG; do sleep 2; done"
CLASSIC_POSTGRES = "until pg_isready -h 127.0.0.1 -p {port} -q; do sleep 2; done"
CLASSIC_MYSQL = "until mysqladmin ping -h 127.0.0.1 -P {port} -u app --silent 2>/dev/null; do sleep 2; done"
REDIS_PASSWORD = "bench-Passw0rd"


def race(ours: list[str], classic: str, env: dict[str, str], start: Callable[[], None],
         ready_yet: Callable[[], bool], delay: float, prefix: tuple[str, ...] = ()) -> Round:
    """Both waiters against a server that `start` starts after `delay`; ready is when `ready_yet` first holds.
    prefix: what both commands run under (ip netns exec NS)."""
    ends: dict[str, float] = {}
    full_env = {**os.environ, **env}

    logs: dict[str, str] = {}

    def waiter(command: list[str], key: str) -> None:
        proc = subprocess.run(command, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              check=False, text=True, errors="replace")
        ends[key], ends[key + ".code"] = time.monotonic(), proc.returncode
        logs[key] = proc.stderr
    threads = [threading.Thread(target=waiter, args=([*prefix, *ours], "ours")),
               threading.Thread(target=waiter, args=([*prefix, "sh", "-c", classic], "classic"))]
    for thread in threads:
        thread.start()
    time.sleep(delay)
    start()
    while not ready_yet():
        time.sleep(0.005)
    ready = time.monotonic()
    for thread in threads:
        thread.join()
    if ends.get("ours.code") != 0 or ends.get("classic.code") != 0:
        raise SystemExit(f"a waiter failed: {ends}")
    return ends["ours"] - ready, ends["classic"] - ready, attempts_per_second(logs.get("ours", ""))


def one_redis_round(delay: float) -> Round:
    port = free_port()
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--requirepass", REDIS_PASSWORD],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def pong() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(f"AUTH {REDIS_PASSWORD}\r\nPING\r\n".encode())
                seen = b""
                while b"\r\n" not in seen.partition(b"\r\n")[2]:  # both answers
                    chunk = sock.recv(64)
                    if not chunk:
                        return False
                    seen += chunk
                return b"+PONG" in seen
        except OSError:
            return False
    ours = [sys.executable, "-m", "initpipeline.cli", "step", "wait", "--redis", "REDIS_URL", "--timeout", "60"]
    try:
        # redis-cli reads the password from REDISCLI_AUTH: the snippet stays fixed
        return race(ours, CLASSIC_REDIS.format(port=port), {"REDIS_URL": url, "REDISCLI_AUTH": REDIS_PASSWORD},
                    start, pong, delay)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


class PostgresFolder:
    """One initdb for all rounds; each round starts the server late and stops it after."""

    def __init__(self) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.helpers import postgres_bin

        bindir = postgres_bin()
        if bindir is None:
            raise SystemExit("PostgreSQL is missing: run hack/install-deps.sh")
        self.bindir = bindir
        self.folder = Path(subprocess.run(["mktemp", "-d", "/tmp/initpipeline-bench-pg-XXXXXX"], check=True,
                                          capture_output=True, text=True).stdout.strip())
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")  # PostgreSQL refuses to run as root
        subprocess.run([*self.as_postgres, str(bindir / "initdb"), "-D", str(self.folder / "data"), "-U",
                        "postgres", "--auth-host=trust", "-E", "UTF8"], check=True, capture_output=True)

    def round(self, delay: float) -> Round:
        import psycopg

        port = free_port()
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

        starting: list[subprocess.Popen[bytes]] = []

        def start() -> None:
            starting.append(subprocess.Popen(
                [*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-l",
                 str(self.folder / "server.log"), "-o",
                 f"-p {port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        def answers() -> bool:
            try:
                with psycopg.connect(url, connect_timeout=1) as db:
                    db.execute("SELECT 1")
                return True
            except psycopg.Error:
                return False
        ours = [sys.executable, "-m", "initpipeline.cli", "step", "wait", "--postgres", "DB_URL", "--timeout", "60"]
        try:
            return race(ours, CLASSIC_POSTGRES.format(port=port), {"DB_URL": url}, start, answers, delay)
        finally:
            for proc in starting:
                proc.wait()
            subprocess.run([*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"),
                            "-m", "fast", "stop"], check=False, capture_output=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class MariaDBFolder:
    """One mariadb-install-db for all rounds; each round starts the server late and stops it after."""

    def __init__(self) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.helpers import MARIADB_PASSWORD, mariadb_install

        self.password = MARIADB_PASSWORD
        self.folder = Path(subprocess.run(["mktemp", "-d", "/tmp/initpipeline-bench-mariadb-XXXXXX"], check=True,
                                          capture_output=True, text=True).stdout.strip())
        mariadb_install(self.folder)

    def round(self, delay: float) -> Round:
        import pymysql
        from tests.helpers import mariadb_command

        port = free_port()
        url = f"mysql://app:{self.password}@127.0.0.1:{port}/app"
        started: list[subprocess.Popen[bytes]] = []

        def start() -> None:
            started.append(subprocess.Popen(mariadb_command(self.folder, port), stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))

        def answers() -> bool:
            try:
                with pymysql.connect(host="127.0.0.1", port=port, user="app", password=self.password,
                                     database="app", connect_timeout=1) as db, db.cursor() as cursor:
                    cursor.execute("SELECT 1")
                return True
            except pymysql.MySQLError:
                return False
        ours = [sys.executable, "-m", "initpipeline.cli", "step", "wait", "--mysql", "DB_URL", "--timeout", "60"]
        try:
            # mysqladmin reads the password from MYSQL_PWD: the snippet stays fixed
            return race(ours, CLASSIC_MYSQL.format(port=port), {"DB_URL": url, "MYSQL_PWD": self.password},
                        start, answers, delay)
        finally:
            for proc in started:
                proc.terminate()
                proc.wait()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


CLASSIC_DNS = "until nslookup {name} >/dev/null 2>&1; do sleep 2; done"
# A DNS server for one name, which it answers (an A record) only once the flag file exists: NXDOMAIN before.
# A fixed program: the flag's path and the name are its arguments.
DNS_SERVER = r"""
import os, socket, struct, sys
flag, name = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("127.0.0.1", 53))
while True:
    data, peer = server.recvfrom(512)
    at, labels = 12, []
    while data[at]:
        labels.append(data[at + 1:at + 1 + data[at]].decode().lower())
        at += 1 + data[at]
    qtype = struct.unpack(">H", data[at + 1:at + 3])[0]
    known = ".".join(labels) == name and os.path.exists(flag)
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 5, 4) + bytes([198, 18, 0, 9]) if known and qtype == 1 else b""
    header = struct.pack(">HHHHHH", struct.unpack(">H", data[:2])[0], 0x8180 | (0 if known else 3), 1,
                         1 if answer else 0, 0, 0)
    server.sendto(header + data[12:at + 5] + answer, peer)
"""


class DnsNamespace:
    """A network namespace of this run's own (its name has our pid), with its own resolv.conf and the DNS
    server above on its loopback; removed by remove(), which touches only what this made."""

    NAME = "config-server.bench.test"

    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise SystemExit("the dns kind makes a network namespace: run it as root")
        self.netns = f"ipl-bench-dns-{os.getpid()}"
        self.etc = Path("/etc/netns") / self.netns
        self.flag = Path(subprocess.run(["mktemp", "-u", "/tmp/initpipeline-bench-dns-XXXXXX"], check=True,
                                        capture_output=True, text=True).stdout.strip())
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        self.etc.mkdir(parents=True)
        (self.etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        self.server = subprocess.Popen(["ip", "netns", "exec", self.netns, sys.executable, "-c", DNS_SERVER,
                                        str(self.flag), self.NAME])

    def round(self, delay: float) -> Round:
        self.flag.unlink(missing_ok=True)
        ours = [sys.executable, "-m", "initpipeline.cli", "step", "wait", "--dns", self.NAME, "--timeout", "60"]
        return race(ours, CLASSIC_DNS.format(name=self.NAME), {}, self.flag.touch, lambda: True, delay,
                    prefix=("ip", "netns", "exec", self.netns))

    def remove(self) -> None:
        self.server.terminate()
        self.server.wait()
        self.flag.unlink(missing_ok=True)
        shutil.rmtree(self.etc, ignore_errors=True)
        subprocess.run(["ip", "netns", "delete", self.netns], check=False)


def run_kind(kind: str, rounds: int, rng: random.Random) -> None:
    classic_name = {"tcp": "nc loop", "json": "curl loop", "redis": "redis-cli", "postgres": "pg_isready",
                    "mysql": "mysqladmin", "dns": "nslookup"}[kind]
    servers: dict[str, Callable[[], PostgresFolder | MariaDBFolder | DnsNamespace]] = {
        "postgres": PostgresFolder, "mysql": MariaDBFolder, "dns": DnsNamespace}
    server = servers[kind]() if kind in servers else None
    rounds_of: dict[str, Callable[[float], Round]] = {
        "tcp": one_round, "json": one_json_round, "redis": one_redis_round}
    measure = server.round if server is not None else rounds_of[kind]
    ours_all, classic_all, rates = [], [], []
    print(f"\n{kind}: {'round':>5} {'ready after':>12} {'initpipeline':>13} {classic_name:>10} {'asks/s':>7}")
    try:
        for index in range(1, rounds + 1):
            delay = rng.uniform(1.0, 5.0)
            ours, classic, rate = measure(delay)
            ours_all.append(ours)
            classic_all.append(classic)
            if rate is not None:
                rates.append(rate)
            shown = f"{rate:>7.1f}" if rate is not None else f"{'-':>7}"
            print(f"      {index:>5} {delay:>11.2f}s {ours:>12.3f}s {classic:>9.3f}s {shown}", flush=True)
    finally:
        if server is not None:
            server.remove()
    med_ours, med_classic = statistics.median(ours_all), statistics.median(classic_all)
    print(f"{kind} ready -> exit, median: initpipeline {med_ours:.3f}s, {classic_name} {med_classic:.3f}s "
          f"({med_classic / med_ours:.1f}x faster)")
    print(f"{kind} ready -> exit, mean:   initpipeline {statistics.mean(ours_all):.3f}s, "
          f"{classic_name} {statistics.mean(classic_all):.3f}s "
          f"({statistics.mean(classic_all) / statistics.mean(ours_all):.1f}x faster)")
    print(f"{kind} ready -> exit, worst:  initpipeline {max(ours_all):.3f}s, {classic_name} {max(classic_all):.3f}s")
    if rates:  # the load on the dependency: attempts of one waiting step a second, over its whole wait
        print(f"{kind} load of one waiting step: median {statistics.median(rates):.1f} attempts/s "
              f"(max {max(rates):.1f}); the classic loop asks 0.5/s")


KINDS = ["tcp", "json", "redis", "postgres", "mysql", "dns"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=[*KINDS, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for tool, package in (("nc", "netcat-openbsd"), ("curl", "curl"), ("redis-server", "redis-server"),
                          ("redis-cli", "redis-tools"), ("pg_isready", "postgresql"), ("mysqladmin", "mariadb-client"),
                          ("mariadbd", "mariadb-server"), ("nslookup", "dnsutils"), ("ip", "iproute2")):
        if not shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin"):
            raise SystemExit(f"{tool} is missing: run hack/install-deps.sh ({package})")
    rng = random.Random(args.seed)
    for kind in (KINDS if args.kind == "all" else [args.kind]):
        run_kind(kind, args.rounds, rng)


if __name__ == "__main__":
    main()
