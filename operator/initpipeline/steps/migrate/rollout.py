"""Which of a plan's files run before the rollout and which after it, and what the linter says of those
that run now: before the rollout, a statement that would break the version still serving is refused
(--lint block) or said (--lint warn); one that locks a busy table is said either way."""

from __future__ import annotations

from ...spec.names import LINT_POLICIES, RUN_AFTER_ROLLOUT, RUN_BEFORE_ROLLOUT
from ..common import Exit, log
from .lint import Finding, lint_migrations
from .plan import Plan, PlanError, before_rollout

BEFORE_ROLLOUT, AFTER_ROLLOUT = RUN_BEFORE_ROLLOUT, RUN_AFTER_ROLLOUT
WHEN = (BEFORE_ROLLOUT, AFTER_ROLLOUT)
LINT_BLOCK, LINT_WARN, LINT_OFF = (LINT_POLICIES[v] for v in ("Block", "Warn", "Disabled"))
LINT_CHOICES = (LINT_BLOCK, LINT_WARN, LINT_OFF)
_SHOWN = 5  # findings in a refusal's message (the termination message has room for a few)


def for_the_rollout(plan: Plan, when: str, lint: str, dialect: str) -> Plan:
    """The plan of this run: before the rollout, up to the first file marked after-rollout; its files
    linted. Raises PlanError(UNSAFE) before anything runs when lint is block and a statement would break
    the version still serving."""
    if when == BEFORE_ROLLOUT:
        plan = before_rollout(plan)
    if lint == LINT_OFF or not plan.actions:
        return plan
    findings = [f for f in lint_migrations((a.migration for a in plan.actions if not a.undo), dialect,
                                           after_rollout=when == AFTER_ROLLOUT) if not f.allowed]
    refused = [f for f in findings if f.breaks]
    if refused and lint == LINT_BLOCK:
        raise PlanError(Exit.UNSAFE, _refusal(refused))
    for finding in findings:
        log(f"warning: {finding.render()}")
    return plan


def _refusal(refused: list[Finding]) -> str:
    shown = "; ".join(f"{f.file}:{f.line}: {f.rule}: {f.message}" for f in refused[:_SHOWN])
    more = f" and {len(refused) - _SHOWN} more" if len(refused) > _SHOWN else ""
    return (f"refused before the rollout, nothing was run: {shown}{more}. The version still serving would "
            "fail: move the statement to a file marked '-- initpipeline:after-rollout', or allow it with "
            "'-- initpipeline:allow <rule>' (see initpipeline lint)")
