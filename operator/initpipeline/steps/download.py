"""`initpipeline step download`: fetch files into a volume, verified and atomically."""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import yaml

from ..spec.names import DEFAULT_DOWNLOAD_MAX_BYTES, DEFAULT_DOWNLOAD_TIMEOUT
from ..spec.validation import SHA256, VALIDATE_FORMATS, is_http_url
from .common import (
    Exit,
    HttpOptions,
    StepError,
    UsageError,
    add_http_arguments,
    finish,
    format_seconds,
    http_options,
    log,
    positive_number,
    redact,
)
from .net import classify, http_open

INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 10.0
ATTEMPT_TIMEOUT = 30.0
CHUNK = 64 * 1024


@dataclass
class FileSpec:
    url: str
    dest: str
    sha256: str | None = None
    validate: str | None = None


class Retryable(StepError):
    """A failure worth another attempt (connection, 429, 5xx); may carry a Retry-After delay."""

    def __init__(self, code: Exit, message: str, retry_after: float | None = None):
        super().__init__(code, message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def parse_files(argv_pairs: list[tuple[str, str]]) -> list[FileSpec]:
    """Group --url/--dest/--sha256/--validate, in order, into files (each --url starts one)."""
    files: list[FileSpec] = []
    for option, value in argv_pairs:
        if option == "--url":
            if not is_http_url(value):
                raise UsageError(f"--url: expected an http:// or https:// URL, got {value!r}")
            files.append(FileSpec(url=value, dest=""))
            continue
        if not files:
            raise UsageError(f"{option} must follow the --url it belongs to")
        current = files[-1]
        if option == "--dest":
            if current.dest:
                raise UsageError(f"--dest given twice for {current.url}")
            if not value or value.endswith("/"):
                raise UsageError(f"--dest: expected a file path, got {value!r}")
            current.dest = value
        elif option == "--sha256":
            if not SHA256.match(value):
                raise UsageError(f"--sha256: expected 64 hexadecimal characters, got {value!r}")
            current.sha256 = value.lower()
        elif option == "--validate":
            if value not in VALIDATE_FORMATS:
                raise UsageError(f"--validate: expected one of {', '.join(VALIDATE_FORMATS)}, got {value!r}")
            current.validate = value
    if not files:
        raise UsageError("give at least one --url URL --dest PATH")
    for item in files:
        if not item.dest:
            raise UsageError(f"--url {item.url} has no --dest")
    dests = [os.path.abspath(f.dest) for f in files]
    if len(set(dests)) != len(dests):
        raise UsageError("--dest: two files have the same destination")
    return files


def _validate(content: bytes, fmt: str) -> None:
    try:
        if fmt == "json":
            json.loads(content)
        else:
            list(yaml.safe_load_all(content))
    except (ValueError, yaml.YAMLError) as exc:
        raise StepError(Exit.INVALID_CONTENT, f"the body is not valid {fmt}: {str(exc).splitlines()[0]}") from None


def fetch_once(item: FileSpec, opts: HttpOptions, timeout: float, max_size: int) -> tuple[int, str]:
    """One attempt: stream into a temporary file beside the destination, verify, rename.

    Returns (bytes, sha256). Nothing is left at the destination unless every check passed.
    """
    try:
        response = http_open(item.url, opts, timeout)
    except Exception as exc:
        code, reason = classify(exc)
        if code == Exit.TLS:
            raise StepError(code, reason) from None  # a certificate does not fix itself
        raise Retryable(code, reason) from None
    with response:
        status = int(response.status)
        if status == 429 or status >= 500:
            raise Retryable(Exit.HTTP_STATUS, f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After")))
        if not 200 <= status < 300:
            raise StepError(Exit.HTTP_STATUS, f"HTTP {status} (not retried)")
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_size:
            raise StepError(Exit.TOO_LARGE, f"the body is {length} bytes, over the limit of {max_size}")
        folder = os.path.dirname(os.path.abspath(item.dest))
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(item.dest)}.", suffix=".part", dir=folder)
        except OSError as exc:
            raise StepError(Exit.WRITE, f"cannot write into {folder}: {exc.strerror}") from None
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except Exception as exc:
                        raise Retryable(*classify(exc)) from None
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_size:
                        raise StepError(Exit.TOO_LARGE, f"the body is over the limit of {max_size} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if length and length.isdigit() and size != int(length):
                raise Retryable(Exit.CONNECTION, f"short body: got {size} of {length} bytes")
            actual = digest.hexdigest()
            if item.sha256 and actual != item.sha256:
                raise StepError(Exit.CHECKSUM, f"sha256 mismatch: expected {item.sha256}, got {actual}")
            if item.validate:
                with open(tmp, "rb") as handle:
                    _validate(handle.read(), item.validate)
            os.chmod(tmp, 0o644)
            os.replace(tmp, item.dest)
            return size, actual
        except OSError as exc:
            raise StepError(Exit.WRITE, f"cannot write {item.dest}: {exc.strerror}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def download(item: FileSpec, opts: HttpOptions, deadline: float, max_size: int) -> tuple[int, str, int]:
    """Retry with backoff until success, a permanent failure or the deadline: (bytes, sha256, attempts)."""
    backoff, attempts = INITIAL_BACKOFF, 0
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        try:
            size, digest = fetch_once(item, opts, min(ATTEMPT_TIMEOUT, max(remaining, 0.1)), max_size)
            return size, digest, attempts
        except Retryable as exc:
            delay = exc.retry_after if exc.retry_after is not None else backoff
            remaining = deadline - time.monotonic()
            if delay >= remaining:
                raise StepError(exc.code, f"{exc.message}; gave up after {attempts} attempts") from None
            log(redact(f"{item.url}: {exc.message}; retrying in {format_seconds(delay)} (attempt {attempts})",
                       *opts.secret_values))
            time.sleep(delay)
            backoff = min(backoff * 2, MAX_BACKOFF)


class _Ordered(argparse.Action):
    """Keeps --url/--dest/--sha256/--validate in command-line order so they can be grouped."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        pairs = getattr(namespace, "file_args", None) or []
        pairs.append((option_string, values))
        namespace.file_args = pairs


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "download", help="download files, verified and written atomically",
        description="Download each --url to its --dest; each --url starts a file, "
                    "and the options after it apply to it.")
    for option, meta, text in (
        ("--url", "URL", "an http:// or https:// URL to fetch (starts a file)"),
        ("--dest", "PATH", "where to write it"),
        ("--sha256", "HEX", "expected sha256 of the body; checked before the file appears"),
        ("--validate", "FORMAT", "check that the body parses as yaml or json"),
    ):
        parser.add_argument(option, action=_Ordered, metavar=meta, help=text, dest="file_args")
    parser.add_argument("--timeout", type=positive_number, default=float(DEFAULT_DOWNLOAD_TIMEOUT), metavar="SECONDS",
                        help="give up retrying after this long, for all files together (default: %(default)s)")
    parser.add_argument("--max-size", type=int, default=DEFAULT_DOWNLOAD_MAX_BYTES, metavar="BYTES",
                        help="refuse bodies larger than this (default: %(default)s)")
    add_http_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        files = parse_files(getattr(args, "file_args", None) or [])
        if args.max_size <= 0:
            raise UsageError(f"--max-size: must be greater than 0, got {args.max_size}")
        opts = http_options(args)
    except StepError as exc:
        return finish(exc.code, f"download: {exc.message}")
    deadline = time.monotonic() + args.timeout
    lines: list[str] = []
    for item in files:
        started = time.monotonic()
        try:
            size, digest, attempts = download(item, opts, deadline, args.max_size)
        except StepError as exc:
            message = redact(f"download {item.url} -> {item.dest} failed: {exc.message}", *opts.secret_values)
            return finish(exc.code, "\n".join([*lines, message]))
        line = (f"{item.url} -> {item.dest}: {size} bytes, sha256 {digest[:12]}..., "
                f"{format_seconds(time.monotonic() - started)}, {attempts} attempt(s)")
        log(redact(line, *opts.secret_values))
        lines.append(redact(line, *opts.secret_values))
    return finish(Exit.OK, f"downloaded {len(files)} file(s)\n" + "\n".join(lines))
