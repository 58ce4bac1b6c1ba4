"""gitClone against git's own HTTP server (git http-backend) on this machine: a branch, a tag, a commit, a
token, a pinned commit that does not match, and a folder that appears only whole."""

from __future__ import annotations

from pathlib import Path

from initpipeline.steps.common import Exit
from tests.helpers import GitServer, git, run_step

TOKEN = "glpat-s3cret-token"


def head_of(root: Path, ref: str) -> str:
    return git(root / "site.git", "rev-parse", ref)


def clone(tmp: Path, url: str, dest: Path, *extra: str, token: str | None = None) -> object:
    env = {"GIT_TOKEN": token} if token else {}
    return run_step("git-clone", "--repository", url, "--dest", str(dest), *extra,
                    *(["--token-env", "GIT_TOKEN"] if token else []), "--timeout", "60", env=env, tmp=tmp)


def test_a_branch_shallow_and_then_a_tag_and_a_commit(tmp_path: Path, repos: Path) -> None:
    with GitServer(repos).running() as server:
        main = clone(tmp_path, server.url("site.git"), tmp_path / "out" / "site")
        tag = clone(tmp_path, server.url("site.git"), tmp_path / "tag", "--ref", "v1")
        first = head_of(repos, "v1")
        by_id = clone(tmp_path, server.url("site.git"), tmp_path / "by-id", "--ref", first)
        branch = clone(tmp_path, server.url("site.git"), tmp_path / "next", "--ref", "next")
    for result in (main, tag, by_id, branch):
        assert result.code == 0, result.stderr  # type: ignore[attr-defined]
    assert (tmp_path / "out" / "site" / "index.html").read_text() == "v2\n"
    assert f"commit {head_of(repos, 'main')}" in main.termination  # type: ignore[attr-defined]
    assert git(tmp_path / "out" / "site", "rev-list", "--count", "HEAD") == "1"  # shallow
    assert (tmp_path / "tag" / "index.html").read_text() == "v1\n"
    assert (tmp_path / "by-id" / "index.html").read_text() == "v1\n"
    assert (tmp_path / "next" / "next.txt").read_text() == "next\n"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_a_token_opens_a_private_repository_and_never_shows(tmp_path: Path, repos: Path) -> None:
    with GitServer(repos, token=TOKEN).running() as server:
        refused = clone(tmp_path, server.url("site.git"), tmp_path / "no")
        wrong = clone(tmp_path, server.url("site.git"), tmp_path / "wrong", token="not-it")
        ok = clone(tmp_path, server.url("site.git"), tmp_path / "yes", token=TOKEN)
    assert refused.code == wrong.code == Exit.GIT, refused.stderr  # type: ignore[attr-defined]
    assert "the server refused the credentials" in wrong.termination, wrong.termination  # type: ignore[attr-defined]
    assert not (tmp_path / "no").exists() and not (tmp_path / "wrong").exists()
    assert ok.code == 0, ok.stderr  # type: ignore[attr-defined]
    for result in (refused, wrong, ok):
        assert TOKEN not in result.stderr + result.termination  # type: ignore[attr-defined]
        assert "not-it" not in result.stderr + result.termination  # type: ignore[attr-defined]


def test_a_pinned_commit_that_the_ref_is_not_at_writes_nothing(tmp_path: Path, repos: Path) -> None:
    expected = head_of(repos, "v1")
    with GitServer(repos).running() as server:
        moved = clone(tmp_path, server.url("site.git"), tmp_path / "site", "--ref", "main", "--commit", expected)
        pinned = clone(tmp_path, server.url("site.git"), tmp_path / "pinned", "--ref", "v1", "--commit", expected)
    assert moved.code == Exit.GIT  # type: ignore[attr-defined]
    assert f"main is at {head_of(repos, 'main')}, not at the expected {expected}" in moved.termination  # type: ignore[attr-defined]
    assert not (tmp_path / "site").exists()
    assert pinned.code == 0, pinned.stderr  # type: ignore[attr-defined]


def test_a_missing_ref_or_repository_says_so(tmp_path: Path, repos: Path) -> None:
    with GitServer(repos).running() as server:
        no_ref = clone(tmp_path, server.url("site.git"), tmp_path / "a", "--ref", "nope")
        no_repo = clone(tmp_path, server.url("other.git"), tmp_path / "b")
    assert no_ref.code == Exit.GIT and "nope" in no_ref.termination, no_ref.termination  # type: ignore[attr-defined]
    assert no_repo.code == Exit.GIT, no_repo.termination  # type: ignore[attr-defined]
