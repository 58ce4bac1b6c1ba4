"""initpipeline lint: a migrations folder's findings as text, JSON and GitHub annotations, and its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cases import ROOT

FOLDER = {
    "1_users.up.sql": "CREATE TABLE users (id bigint PRIMARY KEY, name text, email text);\n",
    "1_users.down.sql": "DROP TABLE users;\n",  # undo files are not linted
    "2_expand.up.sql": "ALTER TABLE users ADD COLUMN full_name text;\nCREATE INDEX users_email ON users (email);\n",
    "3_contract.up.sql": "-- initpipeline:after-rollout\nALTER TABLE users DROP COLUMN name;\n",
    "4_oops.up.sql": "SELECT 1;\n-- initpipeline:allow rename-column\nALTER TABLE users RENAME COLUMN email TO mail;\n"
                     "ALTER TABLE users DROP COLUMN full_name;\n",
}


def lint(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "initpipeline.cli", "lint", str(folder), *args],
                          capture_output=True, text=True, cwd=ROOT, check=False, timeout=60)


def write(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_text_names_file_line_rule_and_the_safe_way(tmp_path: Path) -> None:
    folder = write(tmp_path, FOLDER)
    result = lint(folder)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        f"{folder}/2_expand.up.sql:2: create-index: builds an index of table users: writes to the table wait until "
        "the index is built; instead: CREATE INDEX CONCURRENTLY, in a file that runs outside a transaction "
        "('-- initpipeline:no-transaction' in the plain layout)",
        f"{folder}/4_oops.up.sql:3: rename-column (allowed): renames column users.email to mail: the version still "
        "serving queries the old name; instead: add the new column, write both and backfill, move reads; drop the "
        "old column after the rollout",
        f"{folder}/4_oops.up.sql:4: drop-column: drops column users.full_name: the version still serving selects "
        "and inserts the column; instead: stop using it in one release; drop it in a file marked after-rollout",
    ]
    assert (f"{folder}: 4 file(s), layout golang-migrate: 2 finding(s) (1 break the version still serving, 1 lock "
            "a busy table), 1 allowed") in result.stderr


def test_json_is_machine_readable_on_stdout(tmp_path: Path) -> None:
    result = lint(write(tmp_path, FOLDER), "--format", "json")
    report = json.loads(result.stdout)
    assert report["layout"] == "golang-migrate" and report["files"] == 4
    assert [(f["file"], f["line"], f["rule"], f["breaks"], f["allowed"]) for f in report["findings"]] == [
        ("2_expand.up.sql", 2, "create-index", False, False), ("4_oops.up.sql", 3, "rename-column", True, True),
        ("4_oops.up.sql", 4, "drop-column", True, False)]
    assert report["findings"][2]["instead"].startswith("stop using it")


def test_github_prints_workflow_annotations(tmp_path: Path) -> None:
    folder = write(tmp_path, FOLDER)
    lines = lint(folder, "--format", "github").stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["::warning", "::notice", "::error"]
    assert lines[2].startswith(f"::error file={folder}/4_oops.up.sql,line=4,title=initpipeline lint%3A drop-column::"
                               "drops column users.full_name: ")


def test_nothing_to_report_or_only_allowed_exits_0(tmp_path: Path) -> None:
    result = lint(write(tmp_path, {"1_a.up.sql": "CREATE TABLE a (id int);\n",
                                   "2_b.up.sql": "-- initpipeline:allow drop-table\nDROP TABLE a;\n"}))
    assert result.returncode == 0, result.stdout
    assert "0 finding(s)" in result.stderr and "1 allowed" in result.stderr


def test_mysql_dialect_and_a_layout_given(tmp_path: Path) -> None:
    folder = write(tmp_path, {"V1__a.sql": "ALTER TABLE users MODIFY age BIGINT, ALGORITHM=INPLACE;\n"})
    result = lint(folder, "--dialect", "mysql", "--layout", "flyway", "--format", "json")
    assert [f["rule"] for f in json.loads(result.stdout)["findings"]] == ["change-column-type"]


def test_an_unreadable_folder_exits_2_naming_it(tmp_path: Path) -> None:
    result = lint(tmp_path / "missing")
    assert result.returncode == 2 and f"{tmp_path}/missing: no such folder" in result.stderr
    assert "Traceback" not in result.stderr
    mixed = lint(write(tmp_path, {"1_a.up.sql": "", "V2__b.sql": ""}))
    assert mixed.returncode == 2 and "mixes layouts" in mixed.stderr
