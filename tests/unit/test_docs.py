"""The README's reference tables say what the code says: every exit code of the steps, every lint rule and
every metric of the operator, no more and no fewer (the code is the one source; the tables are checked
against it)."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from initpipeline.controller.metrics import Metrics
from initpipeline.steps.common import Exit
from initpipeline.steps.migrate.lintrules import RULES
from tests.cases import ROOT

README = (ROOT / "README.md").read_text()


def table_after(heading: str, first_column: str) -> list[str]:
    """The first column of the first table under heading whose header starts with first_column."""
    section = README[README.index(heading):]
    start = section.index(f"| {first_column} |")
    rows = []
    for line in section[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1].strip())
    return rows


def test_the_exit_code_table_lists_every_exit_code() -> None:
    documented = [int(code) for code in table_after("## The step runner", "exit")]
    assert documented == sorted(int(code) for code in Exit)


def test_the_metrics_table_lists_every_metric_of_the_operator() -> None:
    metrics = Metrics(CollectorRegistry())
    ours = set()
    for family in metrics.registry.collect():
        ours.add(f"{family.name}_total" if family.type == "counter" else family.name)
    documented = {re.sub(r"`", "", name) for name in table_after("### Metrics", "metric")} - {"process_*, python_*"}
    assert documented == ours


def test_the_lint_rule_table_is_the_rules_of_the_code() -> None:
    section = README[README.index("#### Safe for the version still serving"):]
    start = section.index("| rule | kind |")
    rows = []
    for line in section[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    expected = [f"| `{r.id}` | {r.kind} | {r.dialects} | {r.finds} | {r.why} | {r.safe} |" for r in RULES.values()]
    assert rows == expected, "\n".join(expected)
