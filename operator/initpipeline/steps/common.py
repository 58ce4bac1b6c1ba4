"""What every built-in step shares: exit codes, logging, the termination message, HTTP options."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import signal
import ssl
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NoReturn

from ..spec.formats import HEADER_NAME
from ..spec.redaction import redact

__all__ = ["redact"]  # the steps import it from here

TERMINATION_LOG_ENV = "INITPIPELINE_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


class Exit(IntEnum):
    """Exit codes of `initpipeline step ...`; the README's table lists the same."""

    OK = 0
    FAILED = 1          # unexpected failure (a bug: please report it)
    USAGE = 2           # bad arguments
    TIMEOUT = 3         # wait: not every target was ready in time
    CONNECTION = 4      # refused, unreachable, reset or timed out (after retries)
    DNS = 5             # the host name does not resolve
    TLS = 6             # certificate or handshake failure
    HTTP_STATUS = 7     # an HTTP status that is not retried, or retries ran out
    CHECKSUM = 8        # sha256 of the body differs from --sha256
    TOO_LARGE = 9       # the body is over --max-size
    INVALID_CONTENT = 10  # --validate yaml|json failed, or --extract found no JSON or no such path
    WRITE = 11          # the destination cannot be written
    MISSING_KEYS = 12   # a --require-keys key is not in the extracted document
    GIT = 13            # the repository, ref or commit cannot be had (refused, not found, another commit)
    REDIRECT = 14       # a redirect that is not followed: to another scheme than http(s), or https to http
    MIGRATION = 20      # a migration failed and was rolled back
    DRIFT = 21          # the history and the folder disagree (a changed file, a missing version...)
    LOCK_TIMEOUT = 22   # another runner held the migration lock too long
    DATABASE = 23       # cannot connect or authenticate to the database
    SQL_DIR = 24        # the migrations folder is missing or unreadable
    LAYOUT = 25         # the folder's files do not form one layout; nothing ran
    DIRTY = 26          # a migration stopped half-way outside a transaction; the history says so
    LOCK_BUDGET = 27    # a migration kept giving way to table locks held by others until its retry budget ran out
    UNSAFE = 28         # before the rollout, a statement would break the version still serving; nothing ran
    TERMINATED = 143    # SIGTERM (the Pod is stopped): what was half-written is removed (128 + 15, as a shell says)


class StepError(Exception):
    def __init__(self, code: Exit, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class UsageError(StepError):
    def __init__(self, message: str):
        super().__init__(Exit.USAGE, message)


class Interrupted(BaseException):
    """The step's deadline passed or SIGTERM arrived. A BaseException, so that no `except Exception` of a
    retry loop or a library takes it for a network error: it unwinds every `finally`, which removes what
    was half-written, up to the step's run()."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def terminated(self) -> bool:
        return self.signum == signal.SIGTERM


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Raise Interrupted in the main thread when SIGTERM arrives. A step runs as its container's PID 1, and
    the kernel drops a signal that PID 1 has no handler for: without one, a Pod stopped by its deadline or a
    delete would wait out the whole grace period for SIGKILL (exit 137) instead of ending at once (143)."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise Interrupted in the main thread when `seconds` have passed or SIGTERM arrives, wherever it
    is blocked (a read of a body that trickles, a connect): the step's --timeout is a wall-clock bound."""
    previous = signal.signal(signal.SIGALRM, _raise_interrupted)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with stop_on_sigterm():
            yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def printable(text: str) -> str:
    """Text that encodes as UTF-8: a path or name that is not UTF-8 (its bytes reach Python as lone
    surrogates) shows those bytes as escapes such as \\xff instead of failing to be written."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte (from JSON, say)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def log(message: str) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S.%f")[:-3]
    sys.stderr.buffer.write(f"{stamp} {printable(message)}\n".encode())
    sys.stderr.buffer.flush()


def write_termination_message(message: str) -> None:
    """Kubernetes shows this file's content in the container's status (4 KiB at most)."""
    path = os.environ.get(TERMINATION_LOG_ENV, DEFAULT_TERMINATION_LOG)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(printable(message)[-4000:])
    except OSError:
        pass  # outside Kubernetes there may be no such file; the log has it too


def finish(code: Exit, message: str) -> int:
    log(message)
    write_termination_message(message)
    return int(code)


def leave_now(code: int) -> NoReturn:
    """Exit at once, with what is written flushed, without the interpreter's shutdown: a daemon thread
    still inside a C call (a probe's connect) can crash that shutdown (exit -11, SIGSEGV, seen once with
    a MariaDB probe), and the kubelet would see 139 instead of the step's code."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return value


@dataclass
class HttpOptions:
    headers: dict[str, str] = field(default_factory=dict)
    secret_values: list[str] = field(default_factory=list)
    ssl_context: ssl.SSLContext | None = None
    ca_file: str | None = None  # also the CA of a database target that verifies TLS


def add_http_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="send this header with every HTTP request (repeatable)")
    parser.add_argument("--header-from-env", action="append", default=[], metavar="NAME=VAR",
                        help="send header NAME with the value of environment variable VAR (repeatable)")
    parser.add_argument("--header-from-file", action="append", default=[], metavar="NAME=PATH",
                        help="send header NAME with the content of file PATH (repeatable)")
    parser.add_argument("--ca-file", metavar="PATH", help="trust the CA certificates in PATH (PEM) for https")


def _header_value(option: str, name: str, value: str) -> str:
    if not HEADER_NAME.match(name):
        raise UsageError(f"{option}: {name!r} is not a valid HTTP header name")
    value = value.strip()
    if "\n" in value or "\r" in value:
        raise UsageError(f"{option}: the value of header {name} contains a line break")
    return value


def http_options(args: argparse.Namespace) -> HttpOptions:
    """Headers and TLS settings from parsed arguments; secret values are kept for redaction."""
    opts = HttpOptions()
    for raw in args.header:
        name, sep, value = raw.partition(":")
        if not sep:
            raise UsageError(f"--header: expected 'NAME: VALUE', got {raw!r}")
        opts.headers[name.strip()] = _header_value("--header", name.strip(), value)
    for raw in args.header_from_env:
        name, sep, var = raw.partition("=")
        if not sep or not var:
            raise UsageError(f"--header-from-env: expected NAME=VAR, got {raw!r}")
        if var not in os.environ:
            raise UsageError(f"--header-from-env: environment variable {var} is not set (header {name})")
        opts.headers[name] = _header_value("--header-from-env", name, os.environ[var])
        opts.secret_values.append(opts.headers[name])
    for raw in args.header_from_file:
        name, sep, path = raw.partition("=")
        if not sep or not path:
            raise UsageError(f"--header-from-file: expected NAME=PATH, got {raw!r}")
        try:
            with open(path, encoding="utf-8") as handle:
                opts.headers[name] = _header_value("--header-from-file", name, handle.read())
        except OSError as exc:
            raise UsageError(f"--header-from-file: cannot read {path}: {exc.strerror}") from None
        opts.secret_values.append(opts.headers[name])
    if args.ca_file:
        opts.ca_file = args.ca_file
        try:
            opts.ssl_context = ssl.create_default_context(cafile=args.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--ca-file: cannot load CA certificates from {args.ca_file}: {exc}") from None
    return opts


# Folders that a step creates in a shared volume: group-writable and setgid, as the kubelet leaves a volume
# with an fsGroup, so that the app's user and a chart's own init container can write into them too.
SHARED_FOLDER_MODE = 0o2775


def make_shared_folders(folder: str) -> None:
    """Create folder and its missing parents with SHARED_FOLDER_MODE (the umask would take group write)."""
    missing = []
    path = os.path.abspath(folder)
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
            continue
        os.chmod(path, SHARED_FOLDER_MODE)


def format_seconds(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 100 else f"{seconds:.0f}s"


def replace_folder(staging: str, dest: str) -> None:
    """Move a finished folder to dest in one rename. A folder already there (a restarted step's) is moved
    aside first, in the same parent, and removed once the new one is in place."""
    if not os.path.lexists(dest):
        os.rename(staging, dest)
        return
    aside = tempfile.mkdtemp(prefix=staging_prefix(dest), suffix=".old", dir=os.path.dirname(dest) or ".")
    os.rename(dest, os.path.join(aside, "previous"))
    os.rename(staging, dest)
    shutil.rmtree(aside, ignore_errors=True)


# tempfile's names: the prefix, 8 characters of its alphabet, the suffix
_STAGING_NAME = r"\.{name}\.[a-z0-9_]{{8}}\.(?:part|old)"


def staging_prefix(dest: str) -> str:
    return f".{os.path.basename(dest)}."


def remove_stale_staging(dest: str) -> list[str]:
    """Remove what a killed earlier run of this step left beside dest (its .part and .old files and
    folders, by their exact name pattern), and say so; returns their names."""
    folder = os.path.dirname(os.path.abspath(dest))
    pattern = re.compile(_STAGING_NAME.format(name=re.escape(os.path.basename(dest))))
    try:
        names = [n for n in os.listdir(folder) if pattern.fullmatch(n)]
    except OSError:
        return []  # no folder yet: nothing was left
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with suppress(OSError):
                os.unlink(path)
        log(f"removed {name}, left beside {dest} by an earlier run that was stopped")
    return names


def json_at(document: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at a dotted path; a number indexes a list."""
    node = document
    for key in path.split("."):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return False, None
    return True, node
