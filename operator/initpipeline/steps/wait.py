"""`initpipeline step wait`: wait until TCP ports accept, HTTP endpoints answer (optionally with a value
in their JSON body), PostgreSQL and Redis answer a query, and DNS names resolve."""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from ..spec.formats import is_http_url
from ..spec.names import DEFAULT_WAIT_MAX_INTERVAL, DEFAULT_WAIT_TIMEOUT
from .common import (
    Exit,
    HttpOptions,
    Interrupted,
    StepError,
    UsageError,
    add_http_arguments,
    finish,
    format_seconds,
    http_options,
    json_at,
    leave_now,
    log,
    positive_number,
    redact,
    stop_on_sigterm,
)
from .mysqlurl import MYSQL_SCHEMES, parse_mysql_url
from .net import classify, http_open, left_origin_note, read_body, split_host_port, tcp_probe
from .services import REDIS_SCHEMES, NotReady, Pace, dns_probe, failed, mysql_probe, postgres_probe, redis_probe

INITIAL_INTERVAL = 0.1
# Nothing listens yet, the usual state while a dependency starts: a refused connection costs the
# target nothing, so it is retried at this pace and not backed off, and readiness is seen at once.
REFUSED_INTERVAL = 0.1
# The dependency answered "not yet" (NXDOMAIN, a health status still red, PostgreSQL starting up, Redis
# LOADING, a table not made yet): a cheap answer, asked again at this pace, slowing by 1 s for every minute
# waited (up to --max-interval). A dependency that comes up within seconds is seen within about 0.1 s; one
# that takes minutes is asked about once a second, not five times.
NOT_YET_INTERVAL = 0.2
NOT_YET_SLOWDOWN = 1 / 60
ATTEMPT_TIMEOUT = 5.0
MAX_JSON_BODY = 1024 * 1024  # a health endpoint's answer; larger is not read


def next_interval(pace: Pace, backoff: float, waited: float, max_interval: float) -> float:
    if pace is Pace.REFUSED:
        return REFUSED_INTERVAL
    if pace is Pace.NOT_YET:
        return min(NOT_YET_INTERVAL + waited * NOT_YET_SLOWDOWN, max_interval)
    return backoff


def parse_status_set(text: str) -> frozenset[int]:
    """'200,204,300-399' -> the set of those codes."""
    codes: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        low, sep, high = part.partition("-")
        try:
            lo, hi = (int(low), int(high)) if sep else (int(part), int(part))
        except ValueError:
            raise UsageError(f"--expect-status: {part!r} is not a status code or range like 200-299") from None
        if not 100 <= lo <= hi <= 599:
            raise UsageError(f"--expect-status: {part!r} is outside 100-599")
        codes.update(range(lo, hi + 1))
    return frozenset(codes)


def json_text(value: Any) -> str:
    """A JSON value as the text that expectJSON's values are written in: "green" -> green, true -> true."""
    return value if isinstance(value, str) else json.dumps(value)


def json_verdict(body: bytes, path: str, ready: tuple[str, ...]) -> NotReady | None:
    """None when the body has a ready value at path, else why not (the value shown short)."""
    try:
        document = json.loads(body)
    except RecursionError:
        return NotReady("the body is JSON nested too deeply")
    except ValueError:
        return NotReady("the body is not JSON")
    found, value = json_at(document, path)
    if not found:
        return NotReady(f"no {path} in the JSON body", Pace.NOT_YET)
    text = json_text(value)
    if text in ready:
        return None
    shown = text if len(text) <= 60 else text[:57] + "..."
    return NotReady(f"{path} is {shown} (ready: {', '.join(ready)})", Pace.NOT_YET)


@dataclass
class Target:
    label: str
    kind: str  # "tcp", "http", "json", "postgres", "mysql", "redis" or "dns"
    host: str = ""  # or the DNS name
    port: int = 0
    url: str = ""
    table: str | None = None  # postgres, mysql: a table that must exist
    json_path: str = ""
    json_ready: tuple[str, ...] = ()
    ready_after: float | None = None
    last_reason: str = "not tried yet"
    attempts: int = 0

    def probe(self, opts: HttpOptions, expect: frozenset[int], timeout: float) -> NotReady | None:
        """None when ready, else why not and how soon to ask again."""
        try:
            if self.kind == "tcp":
                tcp_probe(self.host, self.port, timeout)
                return None
            if self.kind in ("postgres", "mysql", "redis", "dns"):
                return self._service_probe(opts, timeout)
            return self._http_probe(opts, expect, timeout)
        except Exception as exc:
            return failed(classify(exc)[1])

    def _service_probe(self, opts: HttpOptions, timeout: float) -> NotReady | None:
        if self.kind == "postgres":
            return postgres_probe(self.url, self.table, timeout)
        if self.kind == "mysql":
            return mysql_probe(self.url, self.table, timeout, opts.ca_file)
        if self.kind == "redis":
            return redis_probe(self.url, timeout)
        return dns_probe(self.host)

    def _http_probe(self, opts: HttpOptions, expect: frozenset[int], timeout: float) -> NotReady | None:
        with http_open(self.url, opts, timeout) as response:
            status = int(response.status)
            body = b""
            if self.kind == "json" and status in expect:
                body = read_body(response, MAX_JSON_BODY, time.monotonic() + timeout)
            after = left_origin_note(response)
        if status not in expect:
            # an answer: cheap to ask again, but for 429, which asks the caller to slow down
            return NotReady(f"HTTP {status}{after}", Pace.BACK_OFF if status == 429 else Pace.NOT_YET)
        if self.kind == "json":
            if len(body) > MAX_JSON_BODY:
                return NotReady(f"the body is over {MAX_JSON_BODY} bytes")
            return json_verdict(body, self.json_path, self.json_ready)
        return None


def parse_targets(args: argparse.Namespace) -> list[Target]:
    targets = [*map(_tcp_target, args.tcp), *map(_http_target, args.http),
               *(_json_target(url, path, values) for url, path, values in args.http_json),
               *(_database_target("postgres", spec, ("postgres", "postgresql")) for spec in args.postgres),
               *(_database_target("mysql", spec, MYSQL_SCHEMES) for spec in args.mysql)]
    for env in args.redis:
        url = _url_from_env("--redis", env, REDIS_SCHEMES)
        targets.append(Target(label=f"redis {_where(url)}", kind="redis", url=url))
    targets += [Target(label=f"dns {name}", kind="dns", host=name) for name in args.dns]
    if not targets:
        raise UsageError("give at least one --tcp HOST:PORT, --http URL, --http-json URL PATH VALUES, "
                         "--postgres ENV, --mysql ENV, --redis ENV or --dns NAME")
    return targets


def _tcp_target(text: str) -> Target:
    try:
        host, port = split_host_port(text)
    except ValueError as exc:
        raise UsageError(f"--tcp: {exc}") from None
    return Target(label=f"tcp {host}:{port}", kind="tcp", host=host, port=port)


def _http_target(url: str) -> Target:
    if not is_http_url(url):
        raise UsageError(f"--http: expected an http:// or https:// URL, got {url!r}")
    return Target(label=redact(url), kind="http", url=url)


def _json_target(url: str, path: str, values: str) -> Target:
    if not is_http_url(url):
        raise UsageError(f"--http-json: expected an http:// or https:// URL, got {url!r}")
    try:
        ready = json.loads(values)
    except ValueError:
        ready = None
    if not isinstance(ready, list) or not ready or not all(isinstance(v, str) for v in ready):
        raise UsageError(f"--http-json: the values must be a JSON list of strings, got {values!r}")
    return Target(label=f"{redact(url)} ({path})", kind="json", url=url, json_path=path, json_ready=tuple(ready))


def _database_target(kind: str, spec: str, schemes: tuple[str, ...]) -> Target:
    """--postgres or --mysql ENV[:TABLE]."""
    env, _, table = spec.partition(":")
    url = _url_from_env(f"--{kind}", env, schemes)
    if kind == "mysql":
        try:
            parse_mysql_url(url)
        except ValueError as exc:
            raise UsageError(f"--mysql: {env}: {exc}") from None
    return Target(label=f"{kind} {_where(url)}" + (f" (table {table})" if table else ""), kind=kind, url=url,
                  table=table or None)


def _url_from_env(flag: str, env: str, schemes: tuple[str, ...]) -> str:
    """A database URL from the environment (a Secret's key in the Pod), never from the command line."""
    url = os.environ.get(env, "")
    if not url:
        raise UsageError(f"{flag}: the environment variable {env!r} is not set or empty")
    if urllib.parse.urlsplit(url).scheme not in schemes:
        raise UsageError(f"{flag}: {env} must hold a {' or '.join(s + '://' for s in schemes)} URL")
    return url


def _where(url: str) -> str:
    """host:port/database of a URL, without its credentials."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname}:{parts.port}{parts.path}" if parts.port else f"{parts.hostname}{parts.path}"


def _watch(target: Target, opts: HttpOptions, expect: frozenset[int], started: float,
           deadline: float, max_interval: float, stop: threading.Event) -> None:
    backoff = INITIAL_INTERVAL
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        target.attempts += 1
        verdict = target.probe(opts, expect, min(ATTEMPT_TIMEOUT, max(remaining, 0.05)))
        if verdict is None:
            target.ready_after = time.monotonic() - started
            log(f"{target.label}: ready after {format_seconds(target.ready_after)}, {target.attempts} attempt(s)")
            return
        if verdict.reason != target.last_reason:
            log(f"{target.label}: not ready: {verdict.reason}")
            target.last_reason = verdict.reason
        waited = time.monotonic() - started
        stop.wait(min(next_interval(verdict.pace, backoff, waited, max_interval), max(deadline - time.monotonic(), 0)))
        backoff = min(backoff * 2, max_interval) if verdict.pace is Pace.BACK_OFF else INITIAL_INTERVAL


def wait_for(targets: list[Target], opts: HttpOptions, expect: frozenset[int], timeout: float,
             max_interval: float) -> bool:
    """Probe every target at once until all are ready or the timeout passes. A probe still under way at
    the deadline is not waited for: its thread ends with the process (run() leaves without the
    interpreter's shutdown then, which a thread inside a driver's socket call can crash)."""
    started = time.monotonic()
    deadline = started + timeout
    stop = threading.Event()
    threads = [threading.Thread(target=_watch, args=(t, opts, expect, started, deadline, max_interval, stop),
                                daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    stop.set()
    return all(t.ready_after is not None for t in targets)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "wait", help="wait until every target is ready",
        description="Wait, all at once, until TCP ports accept connections, HTTP URLs answer, databases answer "
                    "a query and names resolve.")
    parser.add_argument("--tcp", action="append", default=[], metavar="HOST:PORT",
                        help="wait until a TCP connection succeeds (repeatable)")
    parser.add_argument("--http", action="append", default=[], metavar="URL",
                        help="wait until GET URL answers with an expected status (repeatable)")
    parser.add_argument("--http-json", action="append", default=[], nargs=3, metavar=("URL", "PATH", "VALUES"),
                        help="wait until GET URL answers with an expected status and a JSON body whose value at "
                             "the dotted PATH is one of VALUES (a JSON list of strings); repeatable")
    parser.add_argument("--postgres", action="append", default=[], metavar="ENV[:TABLE]",
                        help="wait until the PostgreSQL at the URL in environment variable ENV accepts its "
                             "credentials and answers a query (and TABLE exists); repeatable")
    parser.add_argument("--mysql", action="append", default=[], metavar="ENV[:TABLE]",
                        help="wait until the MySQL or MariaDB at the URL in environment variable ENV (mysql://) "
                             "accepts its credentials and answers a query (and TABLE exists); repeatable")
    parser.add_argument("--redis", action="append", default=[], metavar="ENV",
                        help="wait until the Redis at the URL in environment variable ENV (redis:// or rediss://) "
                             "accepts its credentials and answers PING; repeatable")
    parser.add_argument("--dns", action="append", default=[], metavar="NAME",
                        help="wait until NAME resolves; repeatable")
    parser.add_argument("--timeout", type=positive_number, default=float(DEFAULT_WAIT_TIMEOUT), metavar="SECONDS",
                        help="give up after this long (default: %(default)s)")
    parser.add_argument("--max-interval", type=positive_number, default=float(DEFAULT_WAIT_MAX_INTERVAL),
                        metavar="SECONDS",
                        help="cap of the pause between attempts: a refused connection is retried every 0.1s, "
                             "a 'not yet' answer every 0.2s, slowing by 1s a minute, other failures back off "
                             "from 0.1s, doubling (default: %(default)s)")
    parser.add_argument("--expect-status", default="200-299", metavar="CODES",
                        help="HTTP statuses that mean ready, e.g. 200,204 or 200-399 (default: %(default)s)")
    add_http_arguments(parser)
    return parser


def _outcomes(targets: list[Target]) -> list[str]:
    return [f"{t.label}: ready after {format_seconds(t.ready_after)}" if t.ready_after is not None
            else f"{t.label}: NOT READY after {t.attempts} attempts (last: {t.last_reason})" for t in targets]


def run(args: argparse.Namespace) -> int:
    try:
        targets = parse_targets(args)
        expect = parse_status_set(args.expect_status)
        opts = http_options(args)
    except StepError as exc:
        return finish(exc.code, f"wait: {exc.message}")
    log(f"waiting up to {format_seconds(args.timeout)} for {len(targets)} target(s): "
        + ", ".join(t.label for t in targets))
    started = time.monotonic()
    try:
        with stop_on_sigterm():
            ok = wait_for(targets, opts, expect, args.timeout, args.max_interval)
    except Interrupted:
        return finish(Exit.TERMINATED, f"wait stopped by SIGTERM after {format_seconds(time.monotonic() - started)}"
                                       "\n" + "\n".join(_outcomes(targets)))
    lines = _outcomes(targets)
    if ok:
        return finish(Exit.OK, "all targets ready\n" + "\n".join(lines))
    missing = [t.label for t in targets if t.ready_after is None]
    head = f"timed out after {format_seconds(args.timeout)} waiting for {', '.join(missing)}"
    code = finish(Exit.TIMEOUT, head + "\n" + "\n".join(lines))
    if threading.active_count() > 1:
        leave_now(code)  # a probe still runs: its thread must not meet the interpreter's shutdown
    return code
