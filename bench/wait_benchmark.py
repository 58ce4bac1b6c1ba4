"""How soon does a wait step notice that its dependency is up?

Side by side, in one run, for each kind of wait:
- tcp: `initpipeline step wait --tcp` and the classic `until nc -z HOST PORT; do sleep 2; done` loop wait for
  the same TCP port, which starts listening after a random delay;
- json: `initpipeline step wait --http-json URL status '["green","yellow"]'` and the classic
  `until curl -fsS URL | grep -q '"status": *"green"'; do sleep 2; done` loop wait for the same HTTP endpoint,
  which answers 200 with status red until a random moment, then green (Elasticsearch's health).
The figure is the time from the dependency being ready to each waiter exiting. Prints each round, the
median and mean of both, and their ratio.

    python bench/wait_benchmark.py [--kind tcp|json|all] [--rounds 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import http.server
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

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


def one_round(delay: float) -> tuple[float, float]:
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
    return ends["ours"] - ready, ends["classic"] - ready


def one_json_round(delay: float) -> tuple[float, float]:
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
    ends: dict[str, float] = {}
    ours = [sys.executable, "-m", "initpipeline.cli", "step", "wait", "--http-json",
            f"http://127.0.0.1:{port}/_cluster/health", "status", '["green", "yellow"]', "--timeout", "60"]
    classic = ["sh", "-c", CLASSIC_JSON.format(port=port)]  # the fixed snippet; no input reaches it
    threads = [threading.Thread(target=exit_time, args=(ours, ends, "ours")),
               threading.Thread(target=exit_time, args=(classic, ends, "classic"))]
    for thread in threads:
        thread.start()
    time.sleep(delay)
    state["status"] = "green"
    ready = time.monotonic()
    for thread in threads:
        thread.join()
    server.shutdown()
    if ends.get("ours.code") != 0 or ends.get("classic.code") != 0:
        raise SystemExit(f"a waiter failed: {ends}")
    return ends["ours"] - ready, ends["classic"] - ready


def run_kind(kind: str, rounds: int, rng: random.Random) -> None:
    classic_name = {"tcp": "nc loop", "json": "curl loop"}[kind]
    measure = {"tcp": one_round, "json": one_json_round}[kind]
    ours_all, classic_all = [], []
    print(f"\n{kind}: {'round':>5} {'ready after':>12} {'initpipeline':>13} {classic_name:>10}")
    for index in range(1, rounds + 1):
        delay = rng.uniform(1.0, 5.0)
        ours, classic = measure(delay)
        ours_all.append(ours)
        classic_all.append(classic)
        print(f"      {index:>5} {delay:>11.2f}s {ours:>12.3f}s {classic:>9.3f}s", flush=True)
    med_ours, med_classic = statistics.median(ours_all), statistics.median(classic_all)
    print(f"{kind} ready -> exit, median: initpipeline {med_ours:.3f}s, {classic_name} {med_classic:.3f}s "
          f"({med_classic / med_ours:.1f}x faster)")
    print(f"{kind} ready -> exit, mean:   initpipeline {statistics.mean(ours_all):.3f}s, "
          f"{classic_name} {statistics.mean(classic_all):.3f}s "
          f"({statistics.mean(classic_all) / statistics.mean(ours_all):.1f}x faster)")
    print(f"{kind} ready -> exit, worst:  initpipeline {max(ours_all):.3f}s, {classic_name} {max(classic_all):.3f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["tcp", "json", "all"], default="all")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for tool, package in (("nc", "netcat-openbsd"), ("curl", "curl")):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: run hack/install-deps.sh ({package})")
    rng = random.Random(args.seed)
    for kind in (["tcp", "json"] if args.kind == "all" else [args.kind]):
        run_kind(kind, args.rounds, rng)


if __name__ == "__main__":
    main()
