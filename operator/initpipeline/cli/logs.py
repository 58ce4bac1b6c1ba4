"""`initpipeline logs` (also `kubectl initpipeline logs`): each step's log in order, then the app's;
with -f it follows the steps as they start."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

from ..spec import names, views
from ..spec.names import Obj
from ..spec.redaction import redact
from .kube import EXIT_FAILED, EXIT_READY, EXIT_USAGE, CommandError, Kube
from .statusview import BOLD, DIM, RED, Paint, outcome


@dataclass(frozen=True)
class Section:
    """One container whose log is shown: a step, or the app's first container."""

    container: str
    title: str
    is_step: bool


def sections(pipeline: Obj, only_step: str | None, part: str = "pod") -> list[Section]:
    """The containers to show, in order. A workload's Pods run the every-Pod steps (part "pod");
    its once-steps Job runs the once-steps and the waits before them (part "once"), its after-rollout Job
    the after-rollout steps and the waits before them (part "after")."""
    from ..core.build import after_steps, job_steps, pod_steps

    spec = pipeline["spec"]
    steps = spec["steps"]
    step_names = [s["name"] for s in steps]
    if only_step is not None and only_step not in step_names:
        raise CommandError(f"--step: {only_step!r} is not a step of {pipeline['metadata']['name']} "
                           f"(steps: {', '.join(step_names)})", EXIT_USAGE)
    kind = views.workload_kind(spec)
    chosen = {"once": job_steps, "after": after_steps}.get(part)
    here = {s["name"] for s in (chosen(spec) if chosen else steps if kind == "Pod" else pod_steps(spec))}
    found = [Section(s["name"], f"step {i + 1}/{len(steps)} {s['name']} ({views.step_kind(s)}"
                     f"{', once' if views.is_once(s, kind) else ''})", True)
             for i, s in enumerate(steps) if s["name"] in here and only_step in (None, s["name"])]
    if only_step is None and part == "pod":
        app = spec["template"]["spec"]["containers"][0]["name"]
        found.append(Section(app, f"app container {app}", False))
    return found


def container_status(pod: Obj, section: Section) -> Obj:
    key = "initContainerStatuses" if section.is_step else "containerStatuses"
    return next((c for c in (pod.get("status") or {}).get(key) or [] if c.get("name") == section.container), {})


def attempt_exists(cstatus: Obj) -> bool:
    """The current attempt has a container (running or ended), not just a wait for one."""
    state = cstatus.get("state") or {}
    return "running" in state or "terminated" in state


def has_run(cstatus: Obj) -> bool:
    """The container has a log: it runs, or ran at least once."""
    return attempt_exists(cstatus) or "terminated" in (cstatus.get("lastState") or {})


def pod_gone_or_done(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp")) or (pod.get("status") or {}).get("phase") in (
        "Failed", "Succeeded")


class LogPrinter:
    def __init__(self, out: TextIO, output: str, pod: str) -> None:
        self.out, self.output, self.pod = out, output, pod
        self.paint = Paint(out.isatty() and output != "json")

    def header(self, section: Section, note: str = "") -> None:
        if self.output == "json":
            return
        self.out.write(self.paint(f"==> {section.title} <==", BOLD) + (f" {self.paint(note, DIM)}" if note else "")
                       + "\n")
        self.out.flush()

    def note(self, section: Section, text: str, alarming: bool = False) -> None:
        if self.output == "json":
            self.out.write(json.dumps({"pod": self.pod, "container": section.container, "note": text}) + "\n")
        else:
            self.out.write(self.paint(f"--- {text}", RED if alarming else DIM) + "\n")
        self.out.flush()

    def lines(self, section: Section, chunks: Iterator[bytes]) -> None:
        pending = b""
        for chunk in chunks:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                self._line(section, raw)
        if pending:
            self._line(section, pending)

    def _line(self, section: Section, raw: bytes) -> None:
        # step runners redact their own secrets; a user's container may print a URL with a password
        text = redact(raw.decode("utf-8", errors="replace"))
        if self.output == "json":
            self.out.write(json.dumps({"pod": self.pod, "container": section.container, "line": text}) + "\n")
        else:
            self.out.write(text + "\n")
        self.out.flush()


def _pod_of(kube: Kube, args: argparse.Namespace, pipeline: Obj) -> str:
    if args.pod:
        return str(args.pod)
    name = (pipeline.get("status") or {}).get("podName")
    if name:
        return str(name)
    if not args.follow:
        raise CommandError(f"{args.name} has no Pod yet (try -f to wait for it)")
    for seen in kube.watch_pipeline(args.name):
        status = seen.get("status") or {}
        if status.get("podName"):
            return str(status["podName"])
        if outcome(seen) == 1:  # failed before it had a Pod (an invalid spec, a refused Pod)
            raise CommandError(f"{args.name} failed without a Pod: {status.get('message', '')}")
    raise CommandError(f"{args.name} has no Pod")  # pragma: no cover  (the watch only ends by an error)


def cmd_logs(args: argparse.Namespace, kube: Kube, out: TextIO) -> int:
    pipeline = kube.pipeline(args.name)
    if views.workload_kind(pipeline["spec"]) != "Pod":
        return _workload_logs(args, kube, pipeline, out)
    wanted = sections(pipeline, args.step)
    pod_name = _pod_of(kube, args, pipeline)
    printer = LogPrinter(out, args.output, pod_name)
    if not args.follow:
        _print_logs(kube, pod_name, wanted, printer)
        return EXIT_READY
    return _follow(kube, pod_name, wanted, printer)


def _print_logs(kube: Kube, pod_name: str, wanted: list[Section], printer: LogPrinter) -> None:
    pod = kube.pod(pod_name)
    for section in wanted:
        cstatus = container_status(pod, section)
        if not has_run(cstatus):
            printer.header(section, "(not started yet)")
            continue
        printer.header(section)
        # between two attempts, the log worth reading is the last attempt's
        printer.lines(section, kube.log_chunks(pod_name, section.container, False,
                                               previous=not attempt_exists(cstatus)))


def _workload_logs(args: argparse.Namespace, kube: Kube, pipeline: Obj, out: TextIO) -> int:
    """A Deployment or StatefulSet: the once-steps' Job Pod of the current revision, then one Pod of
    that revision (a stuck one if there is one, else the first by name)."""
    once_part = sections(pipeline, args.step, "once")
    pod_part = sections(pipeline, args.step, "pod")
    after_part = sections(pipeline, args.step, "after")
    if args.pod:
        role = (kube.pod(args.pod)["metadata"].get("labels") or {}).get(names.LABEL_ROLE)
        wanted = {"once": once_part, "after": after_part}.get(str(role), pod_part)
        printer = LogPrinter(out, args.output, args.pod)
        if not args.follow:
            _print_logs(kube, args.pod, wanted, printer)
            return EXIT_READY
        return _follow(kube, args.pod, wanted, printer)
    status: Obj = pipeline.get("status") or {}
    once: Obj = status.get("once") or {}
    job_pod: str | None = None
    if once_part and once.get("state") == "Succeeded" and once.get("revision") == status.get("revision"):
        # settled: its Job's Pod is shown while it exists, and not waited for
        job_pod = _job_pod(kube, status)
        if job_pod is None:
            print(f"{args.name}: the once-steps of revision {once['revision']} ran in Job {once.get('job')}, "
                  "whose Pod is gone", file=sys.stderr)
    elif once_part:
        job_pod = _wait_for(kube, args, pipeline, _job_pod, "its once-steps Job has no Pod")
    if job_pod:
        printer = LogPrinter(out, args.output, job_pod)
        if not args.follow:
            _print_logs(kube, job_pod, once_part, printer)
        elif _follow(kube, job_pod, once_part, printer) != EXIT_READY:
            return EXIT_FAILED  # the once-steps failed: no Pod of this revision will start
    if pod_part:
        app_pod = _wait_for(kube, args, pipeline, _app_pod, "no Pod of its current revision exists")
        if app_pod is not None:
            printer = LogPrinter(out, args.output, app_pod)
            if args.follow:
                return _follow(kube, app_pod, pod_part, printer)  # the app runs on: nothing comes after it
            _print_logs(kube, app_pod, pod_part, printer)
    after_pod = _after_pod(kube, status) if after_part else None
    if after_pod:
        _print_logs(kube, after_pod, after_part, LogPrinter(out, args.output, after_pod))
    return EXIT_READY


def _job_pod(kube: Kube, status: Obj) -> str | None:
    return _run_pod(kube, status, "once", "once")


def _after_pod(kube: Kube, status: Obj) -> str | None:
    return _run_pod(kube, status, "afterRollout", "after")


def _run_pod(kube: Kube, status: Obj, block: str, role: str) -> str | None:
    """The Pod of the current revision's once-steps (or after-rollout) Job that the status names, while it
    exists."""
    run = status.get(block) or {}
    if run.get("revision") != status.get("revision") or not run.get("pod"):
        return None
    return str(run["pod"]) if run["pod"] in kube.pod_names(f"{names.LABEL_ROLE}={role},{status['selector']}") \
        else None


def _app_pod(kube: Kube, status: Obj) -> str | None:
    stuck = [p["name"] for p in status.get("stuckPods") or []]
    if stuck:
        return str(stuck[0])
    if not status.get("selector") or not status.get("revision"):
        return None
    pods = kube.pod_names(f"{names.LABEL_ROLE}=app,{names.LABEL_REVISION}={status['revision']},"
                          f"{status['selector']}")
    return pods[0] if pods else None


def _wait_for(kube: Kube, args: argparse.Namespace, pipeline: Obj,
              find: Callable[[Kube, Obj], str | None], missing: str) -> str | None:
    """The Pod `find` picks from the status; with -f, wait for it (the pipeline's watch)."""
    found = find(kube, pipeline.get("status") or {})
    if found or not args.follow:
        if not found:
            print(f"{args.name}: {missing}", file=sys.stderr)
        return found
    for seen in kube.watch_pipeline(args.name):
        found = find(kube, seen.get("status") or {})
        if found:
            return found
        if outcome(seen) == 1:
            raise CommandError(f"{args.name} failed: {(seen.get('status') or {}).get('message', '')}")
    return None  # pragma: no cover  (the watch only ends by an error)


def _follow(kube: Kube, pod_name: str, wanted: list[Section], printer: LogPrinter) -> int:
    """Each container in turn: wait for it to start, stream its log to the end, go on. A failed
    step is followed into its retries as the kubelet restarts it; each attempt is a container of
    its own (containerID), streamed once."""
    for section in wanted:
        follower = ContainerFollower(kube, pod_name, section, printer)
        for pod in kube.watch_pod(pod_name):
            verdict = follower.see(pod)
            if verdict == "streamed":
                # its end may have been the pod's last event: look again now
                verdict = follower.see(kube.pod(pod_name))
            if verdict == "done":
                break
            if verdict in ("pod-succeeded", "pod-ended"):
                return EXIT_READY if verdict == "pod-succeeded" else EXIT_FAILED
    return EXIT_READY


@dataclass
class ContainerFollower:
    kube: Kube
    pod_name: str
    section: Section
    printer: LogPrinter

    def __post_init__(self) -> None:
        self.streamed: set[str] = set()
        self.reported: set[str] = set()

    def see(self, pod: Obj) -> str:
        """One look at the Pod: 'streamed' an attempt's log, 'done' (exit 0), 'pod-succeeded' or
        'pod-ended', or '' (wait for the next change)."""
        section, printer = self.section, self.printer
        cstatus = container_status(pod, section)
        state = cstatus.get("state") or {}
        current = cstatus.get("containerID") or ""
        if attempt_exists(cstatus) and current and current not in self.streamed:
            if self.streamed:
                printer.note(section, f"attempt {len(self.streamed) + 1}")
            else:
                printer.header(section)
            self.streamed.add(current)
            printer.lines(section, self.kube.log_chunks(self.pod_name, section.container, True, False))
            return "streamed"
        ended = state.get("terminated") or (cstatus.get("lastState") or {}).get("terminated") or {}
        ended_id = ended.get("containerID") or ""
        if ended_id in self.streamed:
            if ended.get("exitCode") == 0:
                return "done"
            if ended_id not in self.reported:
                self.reported.add(ended_id)
                printer.note(section, f"{section.container} exited with code {ended.get('exitCode')} "
                             f"({ended.get('reason') or 'Error'})", alarming=True)
        if pod_gone_or_done(pod):
            why = "being deleted" if pod["metadata"].get("deletionTimestamp") else pod["status"].get("phase")
            if not self.streamed:
                printer.note(section, f"Pod {self.pod_name} is {why}: {section.container} did not run",
                             alarming=True)
            return "pod-succeeded" if why == "Succeeded" else "pod-ended"
        return ""
