"""The code's shape: no function of cyclomatic complexity D or worse (radon's ranks), but for a lexer,
which reads more clearly as one loop over the characters than cut into pieces."""

from __future__ import annotations

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "initpipeline"
# (module, function): why it stays one function
LEXERS = {("steps/migrate/sqltext.py", "split_statements"): "the SQL lexer: quotes, comments and dollar quotes"}
WORST_RANK = "C"


def too_complex(root: Path) -> list[str]:
    radon = pytest.importorskip("radon.complexity")
    found = []
    for path in sorted(root.rglob("*.py")):
        module = path.relative_to(root).as_posix()
        for block in radon.cc_visit(path.read_text()):
            rank = radon.cc_rank(block.complexity)
            if rank > WORST_RANK and (module, block.name) not in LEXERS:
                found.append(f"{module}:{block.lineno} {block.fullname} {rank} ({block.complexity})")
    return found


def test_no_function_is_ranked_d_or_worse() -> None:
    assert too_complex(PACKAGE) == []


def test_the_bound_sees_a_function_that_does_too_much(tmp_path: Path) -> None:
    branches = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(25))
    (tmp_path / "busy.py").write_text(f"def busy(x):\n{branches}\n    return -1\n")
    assert too_complex(tmp_path) == ["busy.py:1 busy D (26)"]


def test_every_exception_is_still_there() -> None:
    for module, function in LEXERS:
        assert f"def {function}(" in (PACKAGE / module).read_text()
