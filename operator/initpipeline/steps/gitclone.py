"""`initpipeline step git-clone`: a repository at a branch, tag or commit, into a folder that appears whole.

dulwich (git in Python) clones over http(s): the runner image needs no git, no shell and no ssh. A branch
or tag is fetched shallow (--depth, 1 by default); a commit id is fetched with the history that leads to it
(a server need not serve an arbitrary commit by itself). With --commit, the tree must be exactly that commit.
The clone is made in a temporary folder beside the destination and renamed into place only when complete.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from typing import Any

from .common import (
    Exit,
    Interrupted,
    StepError,
    UsageError,
    finish,
    format_seconds,
    log,
    make_shared_folders,
    positive_number,
    redact,
    remove_stale_staging,
    replace_folder,
    staging_prefix,
)
from .common import deadline as step_deadline
from .net import redirect_refusal, split_credentials

COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_TIMEOUT = 300.0


def clone(repository: str, ref: str | None, commit: str | None, dest: str, depth: int,
          auth: tuple[str, str] | None) -> str:
    """Clone into dest atomically; returns the commit id checked out. `repository` has no user info: the
    credentials come as auth, so that .git/config records the URL without them."""
    from dulwich import porcelain
    from dulwich.client import get_transport_and_path

    folder = os.path.dirname(os.path.abspath(dest)) or "."
    try:
        make_shared_folders(folder)
        staging = tempfile.mkdtemp(prefix=staging_prefix(dest), suffix=".part", dir=folder)
    except OSError as exc:
        raise StepError(Exit.WRITE, f"cannot write into {folder}: {exc.strerror}") from None
    by_id = ref is not None and COMMIT_ID.match(ref) is not None
    try:
        try:
            client, path = get_transport_and_path(
                repository, pool_manager=_pool_manager(repository),
                username=auth[0] if auth else None, password=auth[1] if auth else None)
            repo = client.clone(path, staging, mkdir=False, checkout=not by_id, depth=None if by_id else depth,
                                branch=None if by_id else ref, progress=lambda _data: None, origin_url=repository)
            if by_id:
                porcelain.reset(repo, "hard", str(ref))
        except Exception as exc:  # dulwich raises many kinds: refused, not found, hung up, no such ref
            raise StepError(_code(exc), _reason(exc, ref)) from None
        head = repo.head().decode()
        repo.close()
        if commit and head != commit:
            raise StepError(Exit.GIT, f"{ref or 'the default branch'} is at {head}, not at the expected {commit}")
        shutil.rmtree(os.path.join(staging, ".git", "logs"), ignore_errors=True)  # nobody reads the reflog
        replace_folder(staging, dest)
        return head
    except OSError as exc:
        raise StepError(Exit.WRITE, f"cannot write {dest}: {exc.strerror}") from None
    finally:  # an Interrupted (the deadline, SIGTERM) passes through here too
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)


def _pool_manager(repository: str) -> Any:
    """dulwich's urllib3 pool, with redirects followed as the other steps follow them (net._Redirects):
    only to http(s), never from https to http. urllib3 itself drops Authorization on a redirect to another
    origin, and dulwich sends its credentials only to the origin of the URL they came with."""
    import urllib3
    from dulwich.client import default_urllib3_manager

    class SafeRedirects(urllib3.util.Retry):
        def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                      error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> Any:
            location = response.get_redirect_location() if response is not None else None
            if location and _pool is not None:
                here = f"{_pool.scheme}://{_pool.host}:{_pool.port}{url or '/'}"
                refusal = redirect_refusal(here, urllib.parse.urljoin(here, location), int(response.status))
                if refusal:
                    raise _RedirectRefused(refusal)
            return super().increment(method, url, response, error, _pool, _stacktrace)

    manager = default_urllib3_manager(None, base_url=repository)
    manager.connection_pool_kw["retries"] = SafeRedirects(3)
    return manager


class _RedirectRefused(Exception):
    pass


def _code(exc: BaseException) -> Exit:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, _RedirectRefused):
            return Exit.REDIRECT
        cause = cause.__cause__ or cause.__context__
    return Exit.GIT


def _reason(exc: BaseException, ref: str | None) -> str:
    if _code(exc) == Exit.REDIRECT:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, _RedirectRefused):
            cause = cause.__cause__ or cause.__context__
        return str(cause)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    name = type(exc).__name__
    if isinstance(exc, KeyError) or (ref and ref in text and "not found" in text.lower()):
        return f"no branch, tag or commit {ref} in the repository"
    if name in ("HTTPUnauthorized", "HTTPProxyUnauthorized") or " 401" in text or " 403" in text:
        return f"the server refused the credentials ({name})"
    if name == "NotGitRepository" or " 404" in text:
        return f"no repository there ({text})"
    return f"{text} ({name})"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "git-clone", help="clone a repository at a branch, tag or commit",
        description="Clone --repository at --ref into --dest, shallow, and only whole.")
    parser.add_argument("--repository", required=True, metavar="URL", help="an http:// or https:// git URL")
    parser.add_argument("--ref", metavar="REF", help="a branch, tag or 40-character commit id (default: the "
                                                     "repository's default branch)")
    parser.add_argument("--commit", metavar="ID", help="the clone must be exactly this commit (40 hex characters)")
    parser.add_argument("--dest", required=True, metavar="PATH", help="the folder to clone into")
    parser.add_argument("--depth", type=int, default=1, help="commits of history for a branch or tag (default 1)")
    parser.add_argument("--token-env", metavar="ENV",
                        help="environment variable with an https token (sent as the Basic auth password)")
    parser.add_argument("--timeout", type=positive_number, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="give up after this long (default: %(default)s)")
    return parser


def _check_arguments(args: argparse.Namespace, token: str | None) -> None:
    if not re.match(r"^https?://[^/\s]+", args.repository):
        raise UsageError(f"--repository: expected an http:// or https:// URL, got {redact(args.repository)!r}")
    if args.commit and not COMMIT_ID.match(args.commit):
        raise UsageError(f"--commit: expected 40 hexadecimal characters, got {args.commit!r}")
    if args.depth < 1:
        raise UsageError(f"--depth: must be 1 or more, got {args.depth}")
    if args.token_env and not token:
        raise UsageError(f"--token-env: the environment variable {args.token_env!r} is not set or empty")


def run(args: argparse.Namespace) -> int:
    token = os.environ.get(args.token_env, "") if args.token_env else None
    try:
        _check_arguments(args, token)
    except StepError as exc:
        return finish(exc.code, f"git-clone: {exc.message}")
    repository, user, password = split_credentials(args.repository)
    secrets = [s for s in (token, password) if s]
    auth: tuple[str, str] | None = None
    if token:
        auth = (user or "x-access-token", token)
    elif user is not None or password is not None:
        auth = (user or "", password or "")
    where = f"{redact(repository)} at {args.ref or 'its default branch'}"
    remove_stale_staging(args.dest)
    log(f"cloning {where} into {args.dest}")
    started = time.monotonic()
    try:
        with step_deadline(args.timeout):
            head = clone(repository, args.ref, args.commit, args.dest, args.depth, auth)
    except Interrupted as stop:
        if stop.terminated:
            return finish(Exit.TERMINATED, f"git-clone of {where} stopped by SIGTERM; {args.dest} was not written")
        return finish(Exit.TIMEOUT, f"git-clone of {where} timed out after {format_seconds(args.timeout)}; "
                                    f"{args.dest} was not written")
    except StepError as error:
        return finish(error.code, redact(f"git-clone of {where} failed: {error.message}", *secrets))
    except Exception as exc:  # a bug of ours or dulwich's: still a message, never a traceback
        return finish(Exit.FAILED, redact(f"git-clone of {where} failed: {type(exc).__name__}: {exc}", *secrets))
    return finish(Exit.OK, f"cloned {where} into {args.dest}: commit {head}, "
                           f"{format_seconds(time.monotonic() - started)}")
