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


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def imports_of(path: Path) -> list[str]:
    """Absolute dotted names of everything path imports (relative imports resolved)."""
    package = ["initpipeline", *path.relative_to(PACKAGE).parts[:-1]]
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


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_only_what_its_rules_allow(layer: str) -> None:
    wrong = [f"{path.relative_to(PACKAGE)}: {name}" for path in modules(layer) for name in imports_of(path)
             if layer_of(name) in FORBIDDEN[layer]]
    if layer == "steps":
        wrong += [f"{path.relative_to(PACKAGE)}: {name}" for path in modules(layer) for name in imports_of(path)
                  if name.split(".")[0] == "kopf"]
    assert wrong == []


@pytest.mark.parametrize("layer", ["spec", "core"])
def test_pure_layers_do_no_io_and_read_no_clock(layer: str) -> None:
    impure = [f"{path.relative_to(PACKAGE)}: {name}" for path in modules(layer) for name in imports_of(path)
              if any(name == m or name.startswith(m + ".") for m in IMPURE_MODULES)]
    clock = [f"{path.relative_to(PACKAGE)}:{node.lineno}: .{node.func.attr}()" for path in modules(layer)
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_CALLS]
    assert impure == [] and clock == []


def test_the_rules_see_a_violation() -> None:
    """The checker itself: a core module that imports the controller and reads the clock is caught."""
    bad = PACKAGE / "core" / "_layer_probe.py"
    bad.write_text("import time\nfrom ..controller import reconciler\nSTART = time.monotonic()\n")
    try:
        assert "initpipeline.controller" in imports_of(bad)
        assert layer_of("initpipeline.controller.reconciler") in FORBIDDEN["core"]
        with pytest.raises(AssertionError):
            test_pure_layers_do_no_io_and_read_no_clock("core")
        with pytest.raises(AssertionError):
            test_layer_imports_only_what_its_rules_allow("core")
    finally:
        bad.unlink()
