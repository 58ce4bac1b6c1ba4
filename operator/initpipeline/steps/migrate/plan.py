"""What a run does, from the folder and the history table: pure, so every rule is testable without a database.

Undo files run only when a target version is given (`plan_rollback`); `plan_migrate` never returns one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..common import Exit
from .layouts import (
    FLYWAY,
    GOLANG_MIGRATE,
    PLAIN,
    Folder,
    Migration,
    Part,
    flyway_version,
    natural_key,
    version_rank,
)

HELD = "held for after the rollout"


class PlanError(Exception):
    def __init__(self, code: Exit, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Applied:
    """One applied version as the history table records it."""

    version: str
    name: str = ""      # the file that applied it, where the table keeps it
    checksum: str = ""  # where the tool keeps one


@dataclass(frozen=True)
class History:
    """What the layout's history table says."""

    table: str
    applied: tuple[Applied, ...] = ()
    current: str | None = None  # golang-migrate keeps only the current version
    dirty: str = ""             # a sentence on what a run left half-done ("" when clean)
    baseline: str = ""          # Flyway's baseline version
    repeatables: dict[str, str] = field(default_factory=dict)  # Flyway: description -> checksum applied last


@dataclass(frozen=True)
class Action:
    migration: Migration
    undo: bool
    parts: tuple[Part, ...]
    file: str
    record: str | None = None  # golang-migrate: the version recorded afterwards (None: none)

    @property
    def label(self) -> str:
        return f"{self.file} (undo)" if self.undo else self.file


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    already: int = 0
    notes: tuple[str, ...] = ()


def key_of(layout: str, version: str) -> Any:
    """The identity of a recorded version: Flyway's 1.0 and 1 are one version; the others compare text."""
    return flyway_version(version) if layout == FLYWAY else version


def plan_migrate(folder: Folder, history: History) -> Plan:
    if history.dirty:
        raise PlanError(Exit.DIRTY, history.dirty)
    if folder.layout == GOLANG_MIGRATE:
        return _migrate_golang(folder, history)
    _refuse_drift(folder, history)
    applied = {key_of(folder.layout, a.version) for a in history.applied}
    notes = _unknown_versions(folder, history)
    pending = [m for m in folder.migrations if key_of(folder.layout, m.version) not in applied]
    already = len(folder.migrations) - len(pending)
    if folder.layout == FLYWAY:
        pending, skipped = _flyway_pending(folder, history, pending)
        notes += skipped
        pending += [m for m in folder.repeatables if history.repeatables.get(m.description) != m.checksum]
    return Plan(tuple(Action(m, False, m.up, m.name) for m in pending), already, tuple(notes))


def before_rollout(plan: Plan) -> Plan:
    """What runs before the rollout: the actions up to the first file marked after-rollout, which waits with
    every file after it, so versions still apply in order."""
    held = next((i for i, action in enumerate(plan.actions) if action.migration.after_rollout), None)
    if held is None:
        return plan
    waiting = plan.actions[held:]
    note = (f"{HELD}: {waiting[0].file} (marked after-rollout)"
            + (f" and the {len(waiting) - 1} file(s) after it" if len(waiting) > 1 else ""))
    return Plan(plan.actions[:held], plan.already, (*plan.notes, note))


def _migrate_golang(folder: Folder, history: History) -> Plan:
    if history.current is None:
        pending = list(folder.migrations)
        return Plan(tuple(Action(m, False, m.up, m.name, m.version) for m in pending), 0)
    current = int(history.current)
    if folder.find(history.current) is None:
        latest = folder.migrations[-1].rank[0] if folder.migrations else -1
        if current > latest:
            return Plan((), 0, (f"the database is at version {current}, newer than this folder's latest "
                                f"({latest}): nothing to apply",))
        raise PlanError(Exit.DRIFT, f"{history.table} says version {current}, and no file of the folder has that "
                                    f"version: was it renamed or removed? golang-migrate refuses this too")
    pending = [m for m in folder.migrations if m.rank[0] > current]
    return Plan(tuple(Action(m, False, m.up, m.name, m.version) for m in pending),
                len(folder.migrations) - len(pending))


def _flyway_pending(folder: Folder, history: History, pending: list[Migration]) -> tuple[list[Migration], list[str]]:
    """Flyway skips versions at or below its baseline and refuses versions older than the newest applied one."""
    baseline = flyway_version(history.baseline) if history.baseline else None
    notes = []
    if baseline is not None:
        below = [m.name for m in pending if m.rank <= baseline]
        if below:
            notes.append(f"at or below the baseline {history.baseline} (not applied): {', '.join(below)}")
        pending = [m for m in pending if m.rank > baseline]
    newest = max((flyway_version(a.version) for a in history.applied), default=None)
    late = [m.name for m in pending if newest is not None and m.rank < newest]
    if late:
        raise PlanError(Exit.DRIFT, f"{', '.join(late)}: older than the newest applied version "
                                    f"{'.'.join(map(str, newest or ()))} and never applied. Flyway refuses these "
                                    f"too (outOfOrder is off): give them a version above it")
    return pending, notes


def _refuse_drift(folder: Folder, history: History) -> None:
    """An applied file whose checksum changed since, where the tool keeps checksums (plain, Flyway)."""
    files = {key_of(folder.layout, m.version): m for m in folder.migrations}
    drift = []
    for applied in history.applied:
        m = files.get(key_of(folder.layout, applied.version))
        if m is not None and applied.checksum and m.checksum and applied.checksum != m.checksum:
            algorithm = "sha256" if folder.layout == PLAIN else "checksum"
            drift.append(f"{m.name} was applied with {algorithm} {applied.checksum} but the file now has "
                         f"{algorithm} {m.checksum}")
    if drift:
        raise PlanError(Exit.DRIFT, "refusing to migrate: applied files have changed:\n" + "\n".join(drift))


def _unknown_versions(folder: Folder, history: History) -> list[str]:
    files = {key_of(folder.layout, m.version) for m in folder.migrations}
    missing = [a.name or a.version for a in history.applied if key_of(folder.layout, a.version) not in files]
    if not missing:
        return []
    order = natural_key if folder.layout == PLAIN else (lambda v: v)
    return [f"recorded as applied but not in the folder (left alone): {', '.join(sorted(missing, key=order))}"]


# --- rollback -----------------------------------------------------------------------------------

def plan_rollback(folder: Folder, history: History, target: str) -> Plan:
    """Undo every applied version above target, newest first, with the layout's undo files."""
    if folder.layout == PLAIN:
        raise PlanError(Exit.USAGE, "--to: the plain layout has no undo files; roll back with a migration of "
                                    "your own, or use a layout with down files (golang-migrate, Flyway U, dbmate)")
    if history.dirty:
        raise PlanError(Exit.DIRTY, history.dirty)
    rank = _target_rank(folder, target)
    undo = _applied_golang(folder, history) if folder.layout == GOLANG_MIGRATE else \
        _applied_files(folder, history, target, rank)
    undo = sorted((m for m in undo if m.rank > rank), key=lambda m: m.order, reverse=True)
    lacking = [m.name for m in undo if not m.down]
    if lacking:
        raise PlanError(Exit.LAYOUT, f"cannot roll back to {target}: no undo file for {', '.join(lacking)}; "
                                     "nothing was undone")
    previous = _previous_versions(folder)
    actions = tuple(Action(m, True, m.down, m.down_name, previous.get(m.version)) for m in undo)
    notes = () if actions else (f"nothing to roll back: the database is at or below {target}",)
    return Plan(actions, 0, notes)


def _target_rank(folder: Folder, target: str) -> tuple[Any, ...]:
    if target == "0":
        return (0,)
    found = folder.find(target)
    if found is None:
        versions = ", ".join(m.version for m in folder.migrations[-8:])
        raise PlanError(Exit.USAGE, f"--to {target}: no file of the folder has that version "
                                    f"(0 undoes them all; the latest are {versions})")
    return found.rank


def _applied_files(folder: Folder, history: History, target: str, rank: tuple[Any, ...]) -> list[Migration]:
    """The folder's migrations that the history records as applied; refused when an applied version above
    the target has no file (its undo is unknown)."""
    _refuse_drift(folder, history)
    files = {key_of(folder.layout, m.version): m for m in folder.migrations}
    unknown = [a.version for a in history.applied if key_of(folder.layout, a.version) not in files
               and version_rank(folder.layout, a.version) > rank]
    if unknown:
        raise PlanError(Exit.DRIFT, f"cannot roll back to {target}: applied version(s) {', '.join(unknown)} "
                                    "have no file in the folder")
    keys = [key_of(folder.layout, a.version) for a in history.applied]
    return [files[key] for key in keys if key in files]


def _applied_golang(folder: Folder, history: History) -> list[Migration]:
    if history.current is None:
        return []
    if folder.find(history.current) is None:
        raise PlanError(Exit.DRIFT, f"cannot roll back: {history.table} says version {history.current}, "
                                    "and no file of the folder has that version")
    return [m for m in folder.migrations if m.rank[0] <= int(history.current)]


def _previous_versions(folder: Folder) -> dict[str, str | None]:
    """golang-migrate records, after undoing a version, the one before it in the folder (none for the first)."""
    versions = [m.version for m in folder.migrations]
    return {v: (versions[i - 1] if i else None) for i, v in enumerate(versions)}

