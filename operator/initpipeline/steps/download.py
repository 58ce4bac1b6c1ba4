"""`initpipeline step download`: fetch files into a volume, verified and atomically."""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from ..spec import yamlout
from ..spec.formats import FILE_MODE, SHA256, VALIDATE_FORMATS, WRITE_FORMATS, is_http_url
from ..spec.names import DEFAULT_DOWNLOAD_MAX_BYTES, DEFAULT_DOWNLOAD_TIMEOUT
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
    log,
    make_shared_folders,
    positive_number,
    redact,
    remove_stale_staging,
    replace_folder,
    staging_prefix,
)
from .common import deadline as step_deadline
from .net import classify, http_open, left_origin_note

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
    extract: str | None = None  # a dotted path into the JSON body: only that part is written
    write_as: str | None = None  # json, yaml or files (one file per key, dest a folder); None: the body as is
    require_keys: tuple[str, ...] = ()
    mode: int = 0o644

    @property
    def transforms(self) -> bool:
        return bool(self.extract or self.write_as or self.require_keys)


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
        elif not files:
            raise UsageError(f"{option} must follow the --url it belongs to")
        elif option in _FILE_OPTIONS:
            _FILE_OPTIONS[option](files[-1], value)
    _check_files(files)
    return files


def _set_dest(item: FileSpec, value: str) -> None:
    if item.dest:
        raise UsageError(f"--dest given twice for {item.url}")
    if not value or value.endswith("/"):
        raise UsageError(f"--dest: expected a file path, got {value!r}")
    item.dest = value


def _set_sha256(item: FileSpec, value: str) -> None:
    if not SHA256.match(value):
        raise UsageError(f"--sha256: expected 64 hexadecimal characters, got {value!r}")
    item.sha256 = value.lower()


def _set_validate(item: FileSpec, value: str) -> None:
    if value not in VALIDATE_FORMATS:
        raise UsageError(f"--validate: expected one of {', '.join(VALIDATE_FORMATS)}, got {value!r}")
    item.validate = value


def _set_extract(item: FileSpec, value: str) -> None:
    if not value or any(not key for key in value.split(".")):
        raise UsageError(f"--extract: expected a dotted path like data.data, got {value!r}")
    item.extract = value


def _set_format(item: FileSpec, value: str) -> None:
    if value not in WRITE_FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(WRITE_FORMATS)}, got {value!r}")
    item.write_as = value


def _set_require_keys(item: FileSpec, value: str) -> None:
    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    if not keys:
        raise UsageError("--require-keys: expected comma-separated keys")
    item.require_keys = keys


def _set_mode(item: FileSpec, value: str) -> None:
    if not FILE_MODE.fullmatch(value):
        raise UsageError(f"--mode: expected an octal file mode like 0400, got {value!r}")
    item.mode = int(value, 8)


# What each option after a --url sets on that file, checking its value.
_FILE_OPTIONS: dict[str, Callable[[FileSpec, str], None]] = {
    "--dest": _set_dest, "--sha256": _set_sha256, "--validate": _set_validate, "--extract": _set_extract,
    "--format": _set_format, "--require-keys": _set_require_keys, "--mode": _set_mode}


def _check_files(files: list[FileSpec]) -> None:
    if not files:
        raise UsageError("give at least one --url URL --dest PATH")
    for item in files:
        if not item.dest:
            raise UsageError(f"--url {item.url} has no --dest")
    for item in files:
        if item.validate and item.transforms:
            raise UsageError(f"--validate applies to a body written as is, not with --extract, --format or "
                             f"--require-keys ({item.url})")
    dests = [os.path.abspath(f.dest) for f in files]
    if len(set(dests)) != len(dests):
        raise UsageError("--dest: two files have the same destination")


def _validate(content: bytes, fmt: str) -> None:
    try:
        if fmt == "json":
            json.loads(content)
        else:
            list(yaml.safe_load_all(content))
    except RecursionError:
        raise StepError(Exit.INVALID_CONTENT, f"the body is not valid {fmt}: nested too deeply") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise StepError(Exit.INVALID_CONTENT, f"the body is not valid {fmt}: {str(exc).splitlines()[0]}") from None


def shape(content: bytes, item: FileSpec) -> Any:
    """The part of a JSON body to write (--extract), with its required keys checked. The messages name
    paths and keys, never a value: the body is often a secret."""
    try:
        document = json.loads(content)
    except RecursionError:
        raise StepError(Exit.INVALID_CONTENT, "the JSON body is nested too deeply") from None
    except ValueError:
        raise StepError(Exit.INVALID_CONTENT, "the body is not JSON (--extract, --format and --require-keys "
                                              "read JSON)") from None
    value = document
    if item.extract:
        found, value = json_at(document, item.extract)
        if not found:
            raise StepError(Exit.INVALID_CONTENT, f"no {item.extract} in the JSON body")
    if item.require_keys or item.write_as == "files":
        if not isinstance(value, dict):
            where = item.extract or "the JSON body"
            raise StepError(Exit.INVALID_CONTENT, f"{where} is a {type(value).__name__}, not an object with keys")
        missing = [k for k in item.require_keys if k not in value]
        if missing:
            raise StepError(Exit.MISSING_KEYS, f"missing key(s) {', '.join(missing)} in "
                                               f"{item.extract or 'the JSON body'} (present: {len(value)} key(s))")
    return value


def _rendered(value: Any, write_as: str) -> bytes:
    try:
        if write_as == "yaml":
            return yamlout.dump(value, allow_unicode=True).encode()
        return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()
    except RecursionError:
        raise StepError(Exit.INVALID_CONTENT, f"the JSON is nested too deeply to write as {write_as}") from None


def write_shaped(value: Any, item: FileSpec, folder: str) -> None:
    """Write the extracted value beside the destination, then move it into place in one rename: a file
    (json, yaml), or a folder of one file per key (files), whose values are written as text."""
    write_as = item.write_as or "json"
    if write_as != "files":
        rendered = _rendered(value, write_as)
        fd, tmp = tempfile.mkstemp(prefix=staging_prefix(item.dest), suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(rendered)
            os.chmod(tmp, item.mode)
            os.replace(tmp, item.dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return
    bad = [k for k in value if not k or "/" in k or k in (".", "..") or "\0" in k]
    if bad:
        raise StepError(Exit.INVALID_CONTENT, f"{len(bad)} key(s) cannot be file names (empty, '.', '..' or with '/')")
    staging = tempfile.mkdtemp(prefix=staging_prefix(item.dest), suffix=".part", dir=folder)
    try:
        for key, text in value.items():
            data = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
            path = os.path.join(staging, key)
            with open(path, "w", encoding="utf-8") as out:
                out.write(data)
            os.chmod(path, item.mode)
        os.chmod(staging, 0o755)
        replace_folder(staging, item.dest)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)


@dataclass
class Progress:
    """How far the current file got, for the message of a step that its deadline or SIGTERM stops."""

    item: FileSpec | None = None
    attempt: int = 0
    received: int = 0
    expected: int | None = None  # the Content-Length, when the server sent one

    def said(self) -> str:
        if self.item is None:
            return "before the first request"
        of = f" of {self.expected}" if self.expected is not None else ""
        return f"{self.received}{of} bytes of {self.item.url} read (attempt {self.attempt})"


def fetch_once(item: FileSpec, opts: HttpOptions, timeout: float, max_size: int,
               progress: Progress) -> tuple[int, str]:
    """One attempt: stream into a temporary file beside the destination, verify, rename.

    Returns (bytes, sha256). Nothing is left at the destination unless every check passed, and no
    temporary file either, however the attempt ends (an Interrupted included).
    """
    progress.received, progress.expected = 0, None
    try:
        response = http_open(item.url, opts, timeout)
    except Exception as exc:
        code, reason = classify(exc)
        if code in (Exit.TLS, Exit.REDIRECT):
            raise StepError(code, reason) from None  # neither a certificate nor a redirect fixes itself
        raise Retryable(code, reason) from None
    with response:
        _check_response(response, max_size, progress)
        folder = os.path.dirname(os.path.abspath(item.dest))
        try:
            make_shared_folders(folder)
            fd, tmp = tempfile.mkstemp(prefix=staging_prefix(item.dest), suffix=".part", dir=folder)
        except OSError as exc:
            raise StepError(Exit.WRITE, f"cannot write into {folder}: {exc.strerror}") from None
        try:
            actual = _stream(response, fd, max_size, progress)
            _verify(item, tmp, actual, progress)
            if item.transforms:
                with open(tmp, "rb") as handle:
                    write_shaped(shape(handle.read(), item), item, folder)
                return progress.received, actual
            os.chmod(tmp, item.mode)
            os.replace(tmp, item.dest)
            return progress.received, actual
        except OSError as exc:
            raise StepError(Exit.WRITE, f"cannot write {item.dest}: {exc.strerror}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _check_response(response: Any, max_size: int, progress: Progress) -> None:
    """The status and the announced length, before anything is written."""
    status = int(response.status)
    if status == 429 or status >= 500:
        raise Retryable(Exit.HTTP_STATUS, f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After")))
    if not 200 <= status < 300:
        raise StepError(Exit.HTTP_STATUS, f"HTTP {status} (not retried){left_origin_note(response)}")
    length = response.headers.get("Content-Length")
    progress.expected = int(length) if length and length.isdigit() else None
    if progress.expected is not None and progress.expected > max_size:
        raise StepError(Exit.TOO_LARGE, f"the body is {length} bytes, over the limit of {max_size}")


def _stream(response: Any, fd: int, max_size: int, progress: Progress) -> str:
    """The body into the file, within max_size; returns its sha256."""
    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as out:
        while True:
            try:
                # read1: what has arrived, so that a body that trickles still reaches the
                # deadline's check between reads (a full read(CHUNK) would wait for 64 KiB)
                chunk = response.read1(CHUNK)
            except Exception as exc:
                raise Retryable(*classify(exc)) from None
            if not chunk:
                break
            progress.received += len(chunk)
            if progress.received > max_size:
                raise StepError(Exit.TOO_LARGE, f"the body is over the limit of {max_size} bytes")
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _verify(item: FileSpec, tmp: str, actual: str, progress: Progress) -> None:
    """The whole body arrived, with the checksum and the format asked for."""
    if progress.expected is not None and progress.received != progress.expected:
        raise Retryable(Exit.CONNECTION, f"short body: got {progress.received} of {progress.expected} bytes")
    if item.sha256 and actual != item.sha256:
        raise StepError(Exit.CHECKSUM, f"sha256 mismatch: expected {item.sha256}, got {actual}")
    if item.validate:
        with open(tmp, "rb") as handle:
            _validate(handle.read(), item.validate)


def download(item: FileSpec, opts: HttpOptions, deadline: float, max_size: int,
             progress: Progress) -> tuple[int, str, int]:
    """Retry with backoff until success, a permanent failure or the deadline: (bytes, sha256, attempts)."""
    backoff = INITIAL_BACKOFF
    progress.item, progress.attempt = item, 0
    while True:
        progress.attempt += 1
        remaining = deadline - time.monotonic()
        try:
            size, digest = fetch_once(item, opts, min(ATTEMPT_TIMEOUT, max(remaining, 0.1)), max_size, progress)
            return size, digest, progress.attempt
        except Retryable as exc:
            delay = exc.retry_after if exc.retry_after is not None else backoff
            remaining = deadline - time.monotonic()
            if delay >= remaining:
                raise StepError(exc.code, f"{exc.message}; gave up after {progress.attempt} attempts") from None
            log(redact(f"{item.url}: {exc.message}; retrying in {format_seconds(delay)} "
                       f"(attempt {progress.attempt})", *opts.secret_values))
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
        ("--extract", "PATH", "write only this part of the JSON body (a dotted path: data.data)"),
        ("--format", "FORMAT", "write the JSON (or its --extract part) as json, yaml, or files: one file per key "
                               "in the folder --dest"),
        ("--require-keys", "KEYS", "comma-separated keys that the JSON (or its --extract part) must have"),
        ("--mode", "MODE", "the file's mode, octal (default 0644; 0400 for secrets)"),
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
    for item in files:
        remove_stale_staging(item.dest)
    started_all = time.monotonic()
    deadline = started_all + args.timeout
    lines: list[str] = []
    progress = Progress()
    try:
        with step_deadline(args.timeout):
            for item in files:
                started = time.monotonic()
                try:
                    size, digest, attempts = download(item, opts, deadline, args.max_size, progress)
                except StepError as exc:
                    message = redact(f"download {item.url} -> {item.dest} failed: {exc.message}", *opts.secret_values)
                    return finish(exc.code, "\n".join([*lines, message]))
                line = redact(f"{item.url} -> {item.dest}: {size} bytes, sha256 {digest[:12]}..., "
                              f"{format_seconds(time.monotonic() - started)}, {attempts} attempt(s)",
                              *opts.secret_values)
                log(line)
                lines.append(line)
    except Interrupted as stop:
        how = ("stopped by SIGTERM" if stop.terminated
               else f"timed out after {format_seconds(time.monotonic() - started_all)} (--timeout {args.timeout:g})")
        message = redact(f"download {how}: {progress.said()}; its file was not written", *opts.secret_values)
        return finish(Exit.TERMINATED if stop.terminated else Exit.TIMEOUT, "\n".join([*lines, message]))
    return finish(Exit.OK, f"downloaded {len(files)} file(s)\n" + "\n".join(lines))
