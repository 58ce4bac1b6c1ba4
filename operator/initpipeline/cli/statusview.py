"""What `initpipeline status` prints: a pipeline at a glance (pure: no cluster access)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from ..spec import views
from ..spec.names import Obj
from ..spec.views import parse_time

GREEN, RED, YELLOW, DIM, BOLD, RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[2m", "\x1b[1m", "\x1b[0m"
STATE_COLOURS = {"Succeeded": GREEN, "Failed": RED, "Running": YELLOW, "Waiting": DIM}
PHASE_COLOURS = {"Running": GREEN, "Succeeded": GREEN, "Failed": RED, "Initializing": YELLOW, "Pending": DIM}


@dataclass(frozen=True)
class Paint:
    """ANSI colours on a terminal, nothing on a pipe."""

    enabled: bool

    def __call__(self, text: str, colour: str) -> str:
        return f"{colour}{text}{RESET}" if self.enabled and colour else text


def human_seconds(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, whole = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{whole:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def step_duration(step: Obj, now: dt.datetime) -> str:
    started, finished = parse_time(step.get("startedAt")), parse_time(step.get("finishedAt"))
    if started is None:
        return "-"
    if finished is None:
        return human_seconds((now - started).total_seconds()) + "+"  # still running
    return human_seconds((finished - started).total_seconds())




def outcome(pipeline: Obj) -> int | None:
    """For `status -w`: 0 once Ready (or Succeeded), 1 once Failed, None while undecided.

    Only a status that has seen the current generation counts, so a spec change is
    not judged by the previous generation's status."""
    status = pipeline.get("status") or {}
    if status.get("observedGeneration") != pipeline["metadata"].get("generation"):
        return None
    if views.condition(status, "Failed").get("status") == "True":
        return 1
    if views.condition(status, "Ready").get("status") == "True" or status.get("phase") == "Succeeded":
        return 0
    return None


def _table(rows: list[list[str]], widths_from: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in widths_from) for i in range(len(widths_from[0]))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def render_status(pipeline: Obj, now: dt.datetime, paint: Paint) -> str:
    meta = pipeline["metadata"]
    status: Obj = pipeline.get("status") or {}
    lines = [paint(f"{meta['name']}", BOLD) + f"  (namespace {meta.get('namespace', 'default')}, "
             f"generation {meta.get('generation', 1)})"]
    if not status:
        lines.append("Phase:       " + paint("(no status yet: is the operator running?)", DIM))
        return "\n".join(lines) + "\n"
    lines += _summary(pipeline, status, paint)
    lines += _step_table(status, now, paint)
    lines += _objects(status, paint)
    lines += _troubles(status, paint)
    return "\n".join(lines) + "\n"


def _summary(pipeline: Obj, status: Obj, paint: Paint) -> list[str]:
    """The lines above the step table: phase and current step, workload, once-steps, Pod, message, conditions."""
    lines = [f"Phase:       {_phase_line(pipeline, status, paint)}", *_workload_lines(status)]
    once = status.get("once") or {}
    if once:
        where = f"Job {once.get('job')}" + (f", Pod {once['pod']}" if once.get("pod") else "")
        lines.append(f"Once-steps:  {paint(str(once.get('state')), STATE_COLOURS.get(str(once.get('state')), ''))}"
                     f"   ({where})")
    after = status.get("afterRollout") or {}
    if after:
        where = f"Job {after.get('job')}" + (f", Pod {after['pod']}" if after.get("pod") else "")
        state = str(after.get("state"))
        lines.append(f"After rollout: {paint(state, STATE_COLOURS.get(state, ''))}   ({where})"
                     + (f": {after['message']}" if state in ("Waiting", "Failed") and after.get("message") else ""))
    if status.get("podName"):
        lines.append(f"Pod:         {status['podName']}")
    if status.get("message"):
        lines.append(f"Message:     {status['message']}")
    marks = [_condition_mark(cond, paint) for cond in status.get("conditions") or []]
    if marks:
        lines.append("Conditions:  " + "  ".join(marks))
    return lines


def _phase_line(pipeline: Obj, status: Obj, paint: Paint) -> str:
    meta, spec_steps = pipeline["metadata"], (pipeline.get("spec") or {}).get("steps") or []
    phase = str(status.get("phase", "-"))
    head = paint(phase, PHASE_COLOURS.get(phase, ""))
    current = status.get("currentStep")
    if current:
        index = next((i for i, s in enumerate(spec_steps) if s.get("name") == current), None)
        head += f"   step {index + 1}/{len(spec_steps)} {current}" if index is not None else f"   step {current}"
    if status.get("observedGeneration") not in (None, meta.get("generation")):
        head += paint(f"   (status is of generation {status['observedGeneration']})", DIM)
    return head


def _workload_lines(status: Obj) -> list[str]:
    workload = status.get("workload") or {}
    if workload:
        return [f"Workload:    {workload.get('kind')} {workload.get('name')}   revision {status.get('revision')}",
                f"Replicas:    {status.get('ready', '-')} ready, {status.get('updatedReplicas', 0)} updated, "
                f"{status.get('replicas', 0)} in all"]
    if "replicas" in status:
        return [f"Replicas:    {status.get('readyReplicas', 0)}/{status['replicas']} ready"]
    return []


def _condition_mark(cond: Obj, paint: Paint) -> str:
    text = f"{cond['type']}={cond['status']}"
    if cond.get("reason") and cond["reason"] != "AsExpected":
        text += f" ({cond['reason']})"
    alarming = cond["type"] in ("Degraded", "Failed") and cond["status"] == "True"
    return paint(text, RED if alarming else "")


def _step_table(status: Obj, now: dt.datetime, paint: Paint) -> list[str]:
    """One row per step, with the state coloured; a workload's table also says how its Pods spread."""
    steps: list[Obj] = status.get("steps") or []
    if not steps:
        return []
    header = ["STEP", "KIND", "STATE", "DURATION", "EXIT", "RESTARTS", "REASON"]
    rows = [[s["name"], s.get("kind", ""), s.get("state", ""), step_duration(s, now),
             str(s["exitCode"]) if "exitCode" in s else "-", str(s.get("restartCount", 0)),
             s.get("reason", "")] for s in steps]
    if status.get("workload"):
        header.insert(3, "PODS")
        for row, step in zip(rows, steps, strict=True):
            row.insert(3, _pods_cell(step))
    plain = _table([header, *rows], [header, *rows])
    lines = ["", paint(plain[0], BOLD)]
    for row, text in zip(rows, plain[1:], strict=True):
        state = row[2]
        # colour only the state cell, keeping the alignment of the plain text
        start = text.index(state, len(row[0]) + len(row[1]))
        lines.append(text[:start] + paint(state, STATE_COLOURS.get(state, "")) + text[start + len(state):])
    return lines


def _objects(status: Obj, paint: Paint) -> list[str]:
    """What waitForObject steps wait for, and what the operator saw of it last."""
    entries: list[Obj] = status.get("objects") or []
    if not entries:
        return []
    lines = ["", paint("Objects waited for:", BOLD)]
    for entry in entries:
        verdict = paint("met", GREEN) if entry.get("met") else paint("waiting", YELLOW)
        lines.append(f"  {entry.get('step')}: {entry.get('kind')} {entry.get('name')} {entry.get('condition')}  "
                     f"{verdict}, last seen: {entry.get('lastSeen', '-')}")
    return lines


def _troubles(status: Obj, paint: Paint) -> list[str]:
    """The stuck Pods, and each failed step's message in full."""
    lines: list[str] = []
    stuck = status.get("stuckPods") or []
    if stuck:
        lines.append("")
        lines.append(paint(f"Stuck Pods ({status.get('stuckPodCount', len(stuck))}):", RED))
        for pod in stuck:
            lines.append(f"  {pod.get('name')}  step {pod.get('step')}: {pod.get('reason')}"
                         + (f": {pod['message']}" if pod.get("message") else ""))
    for step in status.get("steps") or []:
        if step.get("state") == "Failed" and step.get("message"):
            lines.append("")
            lines.append(paint(f"Step {step['name']} failed:", RED))
            lines.extend("  " + line for line in str(step["message"]).splitlines())
    return lines


def _pods_cell(step: Obj) -> str:
    """A workload step's spread over the Pods: 'once' for a once-step, else e.g. '2 done, 1 running'."""
    if step.get("once"):
        return "after rollout" if step.get("when") == "AfterRollout" else "once"
    counts = step.get("pods") or {}
    parts = [f"{counts[key]} {key}" for key in ("done", "running", "waiting", "failed") if counts.get(key)]
    return ", ".join(parts) or "-"


def status_json(pipeline: Obj) -> str:
    meta = pipeline["metadata"]
    return json.dumps({"name": meta["name"], "namespace": meta.get("namespace"),
                       "generation": meta.get("generation"), "status": pipeline.get("status") or {}}, indent=2)
