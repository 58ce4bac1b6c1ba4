"""How soon does a wait step notice that its dependency is up?

Side by side, in one run: `initpipeline step wait --tcp` and the classic
`until nc -z HOST PORT; do sleep 2; done` loop wait for the same TCP port,
which starts listening after a random delay. The figure is the time from the
port accepting connections to each waiter exiting. Prints each round, the
median and mean of both, and their ratio.

    python bench/wait_benchmark.py [--rounds 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

CLASSIC = "until nc -z 127.0.0.1 {port}; do sleep 2; done"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not shutil.which("nc"):
        raise SystemExit("nc is missing: run hack/install-deps.sh (netcat-openbsd)")
    rng = random.Random(args.seed)
    ours_all, classic_all = [], []
    print(f"{'round':>5} {'ready after':>12} {'initpipeline':>13} {'nc loop':>9}")
    for index in range(1, args.rounds + 1):
        delay = rng.uniform(1.0, 5.0)
        ours, classic = one_round(delay)
        ours_all.append(ours)
        classic_all.append(classic)
        print(f"{index:>5} {delay:>11.2f}s {ours:>12.3f}s {classic:>8.3f}s", flush=True)
    med_ours, med_classic = statistics.median(ours_all), statistics.median(classic_all)
    print(f"\nready -> exit, median: initpipeline {med_ours:.3f}s, nc loop {med_classic:.3f}s "
          f"({med_classic / med_ours:.1f}x faster)")
    print(f"ready -> exit, mean:   initpipeline {statistics.mean(ours_all):.3f}s, "
          f"nc loop {statistics.mean(classic_all):.3f}s "
          f"({statistics.mean(classic_all) / statistics.mean(ours_all):.1f}x faster)")
    print(f"ready -> exit, worst:  initpipeline {max(ours_all):.3f}s, nc loop {max(classic_all):.3f}s")


if __name__ == "__main__":
    main()
