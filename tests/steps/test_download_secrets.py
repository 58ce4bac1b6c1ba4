"""configDownload from a Vault-like API: the envelope unwrapped (extract), written as JSON, YAML or one file
per key, the required keys checked, the mode set; a value never shows in a message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from initpipeline.steps.common import Exit
from tests.helpers import HttpServer, respond, run_step

TOKEN = "s.vault-T0ken"
SECRET = {"api_key": "ak-123456", "db_password": "pw-7890", "redis_password": "rp-4242", "port": 5432}


def vault(secret: dict[str, Any]) -> HttpServer:
    """Answers like Vault's KV v2: 403 without the token, else the secret in its envelope."""
    def answer(handler: Any, _: int) -> None:
        if handler.headers.get("X-Vault-Token") != TOKEN:
            respond(handler, 403, b'{"errors": ["permission denied"]}')
            return
        envelope = {"request_id": "r1", "data": {"data": secret, "metadata": {"version": 3}}}
        respond(handler, 200, json.dumps(envelope).encode(), {"Content-Type": "application/json"})
    return HttpServer(answer)


def fetch(tmp_path: Path, server: HttpServer, dest: Path, *extra: str, token: str = TOKEN) -> Any:
    return run_step("download", "--url", f"{server.url}/v1/secret/data/myapp", "--dest", str(dest), *extra,
                    "--header-from-env", "X-Vault-Token=VAULT_TOKEN", "--timeout", "10",
                    env={"VAULT_TOKEN": token}, tmp=tmp_path)


def no_secret_in(text: str) -> None:
    for value in ("ak-123456", "pw-7890", "rp-4242", TOKEN):
        assert value not in text


def test_the_envelope_is_unwrapped_the_keys_checked_and_the_file_private(tmp_path: Path) -> None:
    dest = tmp_path / "secrets" / "app-secrets.json"
    with vault(SECRET).running() as server:
        result = fetch(tmp_path, server, dest, "--extract", "data.data", "--require-keys",
                       "api_key,db_password,redis_password", "--mode", "0400")
    assert result.code == 0, result.stderr
    assert json.loads(dest.read_text()) == SECRET
    assert oct(dest.stat().st_mode & 0o777) == "0o400"
    assert [p.name for p in dest.parent.iterdir()] == ["app-secrets.json"]  # no envelope, no leftovers
    no_secret_in(result.stderr + result.termination)


def test_a_missing_key_fails_naming_the_key_and_writes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "app-secrets.json"
    partial = {k: v for k, v in SECRET.items() if k != "redis_password"}
    with vault(partial).running() as server:
        result = fetch(tmp_path, server, dest, "--extract", "data.data", "--require-keys",
                       "api_key,db_password,redis_password")
    assert result.code == Exit.MISSING_KEYS, result.stderr
    assert "missing key(s) redis_password in data.data" in result.termination
    assert not dest.exists() and not list(tmp_path.glob(".app-secrets*"))
    no_secret_in(result.stderr + result.termination)


def test_yaml_and_one_file_per_key(tmp_path: Path) -> None:
    as_yaml, folder = tmp_path / "app.yaml", tmp_path / "keys"
    with vault(SECRET).running() as server:
        first = fetch(tmp_path, server, as_yaml, "--extract", "data.data", "--format", "yaml")
        second = fetch(tmp_path, server, folder, "--extract", "data.data", "--format", "files", "--mode", "0440")
        again = fetch(tmp_path, server, folder, "--extract", "data.data", "--format", "files")  # a restarted step
    assert first.code == second.code == again.code == 0, first.stderr + second.stderr + again.stderr
    assert yaml.safe_load(as_yaml.read_text()) == SECRET
    assert sorted(p.name for p in folder.iterdir()) == sorted(SECRET)
    assert (folder / "db_password").read_text() == "pw-7890" and (folder / "port").read_text() == "5432"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".keys")]


@pytest.mark.parametrize(("extra", "code", "needle"), [
    (["--extract", "data.secret"], Exit.INVALID_CONTENT, "no data.secret in the JSON body"),
    (["--extract", "data.metadata.version", "--require-keys", "x"], Exit.INVALID_CONTENT,
     "data.metadata.version is a int, not an object with keys"),
])
def test_extract_that_does_not_fit_says_where(tmp_path: Path, extra: list[str], code: int, needle: str) -> None:
    with vault(SECRET).running() as server:
        result = fetch(tmp_path, server, tmp_path / "out.json", *extra)
    assert result.code == code and needle in result.termination, result.termination


def test_a_refused_token_is_an_http_error_without_the_token(tmp_path: Path) -> None:
    with vault(SECRET).running() as server:
        result = fetch(tmp_path, server, tmp_path / "out.json", "--extract", "data.data", token="wrong-token")
    assert result.code == Exit.HTTP_STATUS and "HTTP 403" in result.termination
    assert "wrong-token" not in result.stderr + result.termination


def test_extract_options_are_checked(tmp_path: Path) -> None:
    for extra, needle in ((["--mode", "999"], "--mode: expected an octal file mode"),
                          (["--format", "toml"], "--format: expected one of json, yaml, files"),
                          (["--extract", "data..x"], "--extract: expected a dotted path"),
                          (["--validate", "json", "--extract", "data"], "--validate applies to a body written as is")):
        result = run_step("download", "--url", "http://127.0.0.1:9/x", "--dest", str(tmp_path / "x"), *extra,
                          tmp=tmp_path)
        assert result.code == Exit.USAGE and needle in result.stderr, (extra, result.stderr)
