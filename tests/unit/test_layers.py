"""The package's layers keep their import rules (the README's "The code" says why)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "initpipeline"
LAYERS = ("spec", "core", "controller", "cli", "steps")
# No I/O, no threads, no clock in the pure layers: time comes in as an argument.
IMPURE_MODULES = {"kopf", "kubernetes", "socket", "ssl", "http", "urllib.request", "requests", "aiohttp",
                  "asyncio", "threading", "concurrent", "subprocess", "time", "psycopg"}
CLOCK_CALLS = {"now", "utcnow", "today", "monotonic", "perf_counter"}
FORBIDDEN: dict[str, set[str]] = {
    "spec": {"core", "controller", "cli", "steps"},
    "core": {"controller", "cli", "steps"},
    "controller": {"cli", "steps"},
    "steps": {"core", "controller", "cli"},
    "cli": set(),
}


# Where the controller may read the time itself: the one clock that it injects everywhere else, and the
# operator's start (its seniority among replicas).
CLOCK_READERS = {"controller/context.py", "controller/settings.py"}


def modules(layer: str, root: Path = PACKAGE) -> list[Path]:
    return sorted((root / layer).rglob("*.py"))


def imports_of(path: Path, root: Path = PACKAGE) -> list[str]:
    """Absolute dotted names of everything path imports (relative imports resolved)."""
    package = ["initpipeline", *path.relative_to(root).parts[:-1]]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append(module)
            found += [f"{module}.{alias.name}" for alias in node.names]
    return found


def layer_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "initpipeline" and parts[1] in LAYERS else None


def test_every_module_is_in_a_layer() -> None:
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert loose == []


def wrong_imports(layer: str, root: Path = PACKAGE) -> list[str]:
    wrong = [f"{path.relative_to(root)}: {name}" for path in modules(layer, root) for name in imports_of(path, root)
             if layer_of(name) in FORBIDDEN[layer]]
    if layer == "steps":
        wrong += [f"{path.relative_to(root)}: {name}" for path in modules(layer, root)
                  for name in imports_of(path, root) if name.split(".")[0] == "kopf"]
    return wrong


def clock_reads(layer: str, root: Path = PACKAGE, allowed: frozenset[str] = frozenset()) -> list[str]:
    return [f"{path.relative_to(root)}:{node.lineno}: .{node.func.attr}()" for path in modules(layer, root)
            if path.relative_to(root).as_posix() not in allowed
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_CALLS]


def impure_imports(layer: str, root: Path = PACKAGE) -> list[str]:
    return [f"{path.relative_to(root)}: {name}" for path in modules(layer, root) for name in imports_of(path, root)
            if any(name == m or name.startswith(m + ".") for m in IMPURE_MODULES)]


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_only_what_its_rules_allow(layer: str) -> None:
    assert wrong_imports(layer) == []


@pytest.mark.parametrize("layer", ["spec", "core"])
def test_pure_layers_do_no_io_and_read_no_clock(layer: str) -> None:
    assert impure_imports(layer) == [] and clock_reads(layer) == []


def test_the_controller_reads_the_time_from_its_one_clock() -> None:
    """Status times, holds, deadlines, retries and alarms all come from Controller.clock, so a test that
    freezes it sees every delay the controller computes."""
    assert clock_reads("controller", allowed=frozenset(CLOCK_READERS)) == []


def test_the_rules_see_a_violation(tmp_path: Path) -> None:
    """The checker itself, on a copy of a layer: a core module that imports the controller and reads the
    clock is caught (and nothing is written into the source tree)."""
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "_layer_probe.py").write_text(
        "import time\nfrom ..controller import reconciler\nSTART = time.monotonic()\n")
    assert "initpipeline.controller" in imports_of(tmp_path / "core" / "_layer_probe.py", tmp_path)
    assert wrong_imports("core", tmp_path) == ["core/_layer_probe.py: initpipeline.controller",
                                               "core/_layer_probe.py: initpipeline.controller.reconciler"]
    assert impure_imports("core", tmp_path) == ["core/_layer_probe.py: time"]
    assert clock_reads("core", tmp_path) == ["core/_layer_probe.py:3: .monotonic()"]


def test_test_modules_share_helpers_not_each_other() -> None:
    """A test module imports helpers (tests/e2e/kube.py, manifests.py, tests/helpers.py), never another
    test module, whose fixtures and tests would come along."""
    tests = Path(__file__).resolve().parents[1]
    crossing = [f"{path.relative_to(tests)}: {name}" for path in sorted(tests.rglob("test_*.py"))
                for name in imports_of(path, tests)
                if name.split(".")[0] == "tests" and any(p.startswith("test_") for p in name.split(".")[1:])]
    assert crossing == []
