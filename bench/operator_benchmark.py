"""The operator's targets, measured from outside on the local cluster, side by side with raw Kubernetes.

1. Latency: N one-step pipelines and N raw Pods of the same shape, applied interleaved. Times are taken
   by this script's own watches (milliseconds, not the API's one-second timestamps):
   apply -> Pod created, Pod Running -> status Running, Pod Ready -> status Ready, apply -> Ready.
   Once at a pair every 0.5 s, which the 2-core node keeps up with (a Pod is Ready in about 2.5 s),
   and once at a pair every 0.1 s, which swamps it (about 12 s): there, every process waits for CPU.
   Then the writes of three pipelines of three steps each.
2. A 10-replica Deployment pipeline against a raw Deployment with the same init container: apply -> Ready.
3. Scale: M pipelines whose Pods cannot be scheduled. When the last Pod exists after the last apply; the
   operator's memory (peak RSS, from its metrics) while they are applied, at rest, and while their
   namespace is deleted; its restarts; and, from the API server's audit log (hack/cluster.sh records the
   operator's requests), its writes and reads at rest.

4. Attach mode, by the API server's MutatingAdmissionPolicy and by the operator's webhook in turn (the
   operator reinstalled for each): the time each adds to creating a Pod, next to the same Pods unlabelled
   created interleaved with them, with the Pod's pipeline alone in its namespace, among 10 more and among
   100 more; and an attached Deployment of 100 Pods created at once, next to a raw one.

5. waitForObject: a Job that completes after a random 3 to 6 s, waited for by a pipeline's waitForObject step
   and, side by side, by the classic init container (what k8s-wait-for does: ask the API server for the Job
   every 2 s, with a Role and RoleBinding written by hand). The time from the Job's Complete condition (this
   script's watch, wall clock) to each waiting program's exit (its own last log line's time, same clock):
   the kubelet reports a container's end only at its next relist, once a second, which would hide the rest.

    python bench/operator_benchmark.py [--pipelines 30] [--intervals 0.5,0.1] [--replicas 10] [--scale 1000]
                                      [--quiet 60] [--attach-pods 50] [--attach-replicas 100]
                                      [--attach-neighbours 10,100] [--injection policy,webhook] [--object-rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from initpipeline.spec.names import API_VERSION, GROUP, KIND, PLURAL, VERSION

CACHE = Path(os.environ.get("INITPIPELINE_CACHE", Path.home() / ".cache" / "initpipeline"))
AUDIT_LOG = CACHE / "cluster" / "audit.log"
OPERATOR_NS = "initpipeline-system"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:initpipeline"
BUSYBOX = "initpipeline.local/busybox:1.35"
Obj = dict[str, Any]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, values: list[float], unit: str = "ms", scale: float = 1000) -> str:
    if not values:
        return f"  {name:44} (no samples)"
    return (f"  {name:44} p50 {pct(values, .5) * scale:8.0f} {unit}   p90 {pct(values, .9) * scale:8.0f} {unit}"
            f"   p99 {pct(values, .99) * scale:8.0f} {unit}   (n={len(values)})")


class Seen:
    """First moments (monotonic) at which this script's watches saw things, by key."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.lock = threading.Lock()

    def mark(self, key: str) -> None:
        with self.lock:
            self.first.setdefault(key, time.monotonic())

    def get(self, key: str) -> float | None:
        with self.lock:
            return self.first.get(key)


def watch_in_background(list_call: Callable[..., Any], args: tuple[Any, ...], on_event: Callable[[Obj], None],
                        stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(list_call, *args, timeout_seconds=5, _preload_content=True):
                    obj = event["object"]
                    if not isinstance(obj, dict):
                        obj = client.ApiClient().sanitize_for_serialization(obj)
                    on_event(obj)
                    if stop.is_set():
                        break
            except Exception:  # a watch that broke is started again
                time.sleep(0.2)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def cond(obj: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def pod_shape(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "initContainers": [{"name": "prepare", "image": BUSYBOX, "command": ["true"]}],
                     "containers": [{"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]}]}}


def pipeline_shape(name: str, **spec: Any) -> Obj:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
            "spec": {"steps": [{"name": "prepare", "container": {"image": BUSYBOX, "command": ["true"]}}],
                     "template": {"spec": {"containers": [
                         {"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]}],
                         "terminationGracePeriodSeconds": 0, **spec.pop("template_spec", {})}}, **spec}}


class Audit:
    """The operator's requests from the API server's audit log, from a byte offset on."""

    def __init__(self) -> None:
        self.offset = AUDIT_LOG.stat().st_size if AUDIT_LOG.exists() else None

    def requests(self) -> list[Obj]:
        if self.offset is None:
            return []
        out = []
        with AUDIT_LOG.open("rb") as log:
            log.seek(self.offset)
            for raw in log:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if entry.get("user", {}).get("username") == OPERATOR_USER:
                    out.append(entry)
        return out


def kind_of(entry: Obj) -> str:
    ref = entry.get("objectRef") or {}
    return ref.get("resource", "?") + ("/" + ref["subresource"] if ref.get("subresource") else "")


WRITES = ("create", "update", "patch", "delete", "deletecollection")


def namespace(core: Any, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    return name


def delete_namespace(core: Any, ns: str) -> None:
    """Delete a run's namespace and wait until its Pods are gone."""
    core.delete_namespace(ns)
    while core.list_namespaced_pod(ns).items:
        time.sleep(0.5)


def print_writes(audit: Audit, ns: str, n: int, target: str) -> None:
    """The operator's writes in the namespace since the audit's offset, Events aside, per pipeline."""
    if audit.offset is None:
        print("  writes per pipeline: no audit log (run on the local cluster of hack/cluster.sh)")
        return
    requests = [r for r in audit.requests() if (r.get("objectRef") or {}).get("namespace") == ns]
    writes = Counter(f"{r['verb']} {kind_of(r)}" for r in requests if r["verb"] in WRITES and kind_of(r) != "events")
    detail = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(writes.items()))
    print(f"  {'API writes per pipeline, Events aside':44} {sum(writes.values()) / n:.2f}   ({detail}; {target})")


def latency(core: Any, custom: Any, n: int, interval: float) -> None:
    ns = namespace(core, "bench-latency")
    seen, stop = Seen(), threading.Event()

    def on_pod(pod: Obj) -> None:
        name = pod["metadata"]["name"]
        seen.mark(f"pod-added/{name}")
        if (pod.get("status") or {}).get("phase") == "Running":
            seen.mark(f"pod-running/{name}")
        if cond(pod, "Ready"):
            seen.mark(f"pod-ready/{name}")

    def on_pipeline(p: Obj) -> None:
        name, status = p["metadata"]["name"], p.get("status") or {}
        if status.get("phase") == "Running":
            seen.mark(f"ipl-running/{name}")
        if cond(p, "Ready"):
            seen.mark(f"ipl-ready/{name}")

    watch_in_background(core.list_namespaced_pod, (ns,), on_pod, stop)
    watch_in_background(custom.list_namespaced_custom_object, (GROUP, VERSION, ns, PLURAL), on_pipeline, stop)
    time.sleep(1)
    audit = Audit()
    applied: dict[str, float] = {}

    def apply_raw(i: int) -> None:
        applied[f"raw-{i}"] = time.monotonic()
        core.create_namespaced_pod(ns, pod_shape(f"raw-{i}"))

    def apply_pipeline(i: int) -> None:
        applied[f"ipl-{i}"] = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, pipeline_shape(f"ipl-{i}"))

    for i in range(n):
        # alternate which goes first: the kubelet starts Pods in the order they arrive, and the second
        # of a pair waits for the first one's sandbox
        for apply in ((apply_raw, apply_pipeline) if i % 2 == 0 else (apply_pipeline, apply_raw)):
            apply(i)
        time.sleep(interval)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not all(
            seen.get(f"pod-ready/raw-{i}") and seen.get(f"ipl-ready/ipl-{i}") for i in range(n)):
        time.sleep(0.5)
    time.sleep(3)  # let the last status writes land in the audit log
    stop.set()

    def gaps(starts: dict[str, float | None], end: str) -> list[float]:
        """end's moment minus the start, for each name whose both moments were seen."""
        out = []
        for name, begun in starts.items():
            ended = seen.get(end.format(name=name))
            if begun is not None and ended is not None:
                out.append(ended - begun)
        return out

    ipl = [f"ipl-{i}" for i in range(n)]
    raw = [f"raw-{i}" for i in range(n)]
    print(f"\n1. Latency: {n} one-step pipelines and {n} raw Pods of the same shape, applied interleaved, "
          f"a pair every {interval:g} s")
    print(line("raw Pod: apply -> Pod created", gaps({r: applied[r] for r in raw}, "pod-added/{name}")))
    print(line("pipeline: apply -> Pod created", gaps({p: applied[p] for p in ipl}, "pod-added/{name}-1")))
    print(line("pipeline: Pod Running -> status Running",
               gaps({p: seen.get(f"pod-running/{p}-1") for p in ipl}, "ipl-running/{name}")))
    print(line("pipeline: Pod Ready -> status Ready",
               gaps({p: seen.get(f"pod-ready/{p}-1") for p in ipl}, "ipl-ready/{name}")))
    raw_ready = gaps({r: applied[r] for r in raw}, "pod-ready/{name}")
    ipl_ready = gaps({p: applied[p] for p in ipl}, "ipl-ready/{name}")
    print(line("raw Pod: apply -> Ready", raw_ready))
    print(line("pipeline: apply -> Ready", ipl_ready))
    if raw_ready and ipl_ready:
        print(f"  {'apply -> Ready, pipeline / raw Pod':44} p50 {pct(ipl_ready, .5) / pct(raw_ready, .5):.3f}   "
              f"p90 {pct(ipl_ready, .9) / pct(raw_ready, .9):.3f}")
    print_writes(audit, ns, n, "one step: target <= 4")
    delete_namespace(core, ns)


def calm_node(limit: float = 180) -> None:
    """Wait until this machine (the local cluster's node) has no more runnable tasks than cores for 3 s in a
    row: tearing down 60 containers goes on for a minute after their Pods are gone, and would slow the next run."""
    cores, calm, deadline = os.cpu_count() or 1, 0, time.monotonic() + limit
    while calm < 6 and time.monotonic() < deadline:
        runnable = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - 1  # not counting this one
        calm = calm + 1 if runnable <= cores else 0
        time.sleep(0.5)


def step_writes(core: Any, custom: Any, n: int, steps: int = 3) -> None:
    """The operator's writes for pipelines of several steps that take a second each, applied one at a time."""
    ns = namespace(core, "bench-steps")
    audit = Audit()
    for i in range(n):
        doc = pipeline_shape(f"steps-{i}")
        doc["spec"]["steps"] = [{"name": f"step-{k}", "container": {"image": BUSYBOX, "command": ["sleep", "1"]}}
                                for k in range(steps)]
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, doc)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not cond(
                custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, f"steps-{i}"), "Ready"):
            time.sleep(0.2)
    time.sleep(3)  # let the last status writes land in the audit log
    print(f"\n1b. {n} pipelines of {steps} steps (sleep 1 each), one at a time")
    print_writes(audit, ns, n, f"target <= {steps + 3}")
    delete_namespace(core, ns)


def deployment_ratio(core: Any, apps: Any, custom: Any, replicas: int, rounds: int) -> None:
    print(f"\n2. A {replicas}-replica Deployment pipeline against a raw Deployment with the same init container")
    times: dict[str, list[float]] = {"raw": [], "pipeline": []}

    def raw_ready(ns: str) -> bool:
        status = apps.read_namespaced_deployment_status("app", ns).status
        return bool((status.ready_replicas or 0) == replicas and (status.updated_replicas or 0) == replicas)

    def pipeline_ready(ns: str) -> bool:
        return cond(custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "app"), "Ready")

    for r in range(rounds):
        # alternate the order, and let each run have the node to itself
        for kind in (("raw", "pipeline") if r % 2 == 0 else ("pipeline", "raw")):
            calm_node()
            ns = namespace(core, "bench-deploy")
            start = time.monotonic()
            if kind == "raw":
                labels = {"app": "app"}
                apps.create_namespaced_deployment(ns, {
                    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
                    "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                             "template": {"metadata": {"labels": labels}, "spec": pod_shape("x")["spec"]}}})
            else:
                custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, pipeline_shape(
                    "app", workload={"kind": "Deployment", "replicas": replicas},
                    ))
            ready = raw_ready if kind == "raw" else pipeline_ready
            while not ready(ns):
                time.sleep(0.05)
            times[kind].append(time.monotonic() - start)
            delete_namespace(core, ns)
    print(line("raw Deployment: apply -> all ready", times["raw"], "s", 1))
    print(line("pipeline Deployment: apply -> Ready", times["pipeline"], "s", 1))
    print(f"  {'apply -> Ready, pipeline / raw Deployment':44} p50 "
          f"{statistics.median(times['pipeline']) / statistics.median(times['raw']):.3f}")


def operator_rss(core: Any) -> float:
    """The highest resident memory (MB) of the operator replicas, from their metrics."""
    best = 0.0
    for pod in core.list_namespaced_pod(OPERATOR_NS, label_selector="app.kubernetes.io/name=initpipeline").items:
        if pod.status.phase != "Running" or pod.metadata.deletion_timestamp:
            continue
        try:
            text = core.connect_get_namespaced_pod_proxy_with_path(f"{pod.metadata.name}:8081", OPERATOR_NS,
                                                                  "metrics")
        except Exception:
            continue
        for row in str(text).splitlines():
            if row.startswith("process_resident_memory_bytes "):
                best = max(best, float(row.split()[1]) / 1e6)
    return best


def restarts(core: Any) -> int:
    pods = core.list_namespaced_pod(OPERATOR_NS, label_selector="app.kubernetes.io/name=initpipeline").items
    return sum(cs.restart_count for p in pods for cs in p.status.container_statuses or [])


class RssSampler:
    def __init__(self, core: Any) -> None:
        self.core, self.peak, self.stop = core, 0.0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, operator_rss(self.core))
            time.sleep(1)

    def done(self) -> float:
        self.stop.set()
        self.thread.join()
        return self.peak


def scale(core: Any, custom: Any, count: int, quiet: int) -> None:
    print(f"\n3. {count} pipelines whose Pods cannot be scheduled")
    ns = namespace(core, "bench-scale")
    restarts_before = restarts(core)
    print(f"  {'operator RSS before':44} {operator_rss(core):.0f} MB")
    sampler = RssSampler(core)
    pods_seen: set[str] = set()
    stop = threading.Event()
    watch_in_background(core.list_namespaced_pod, (ns,), lambda p: pods_seen.add(p["metadata"]["name"]), stop)
    unschedulable = {"nodeSelector": {"initpipeline.dev/bench": "nowhere"}}
    begun = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, pipeline_shape(f"p{i}", template_spec=unschedulable)), range(count)))
    last_apply = time.monotonic()
    while len(pods_seen) < count and time.monotonic() - last_apply < 300:
        time.sleep(0.2)
    all_pods = time.monotonic()
    print(f"  {'applied in':44} {last_apply - begun:.1f} s")
    print(f"  {'every Pod exists, after the last apply':44} {all_pods - last_apply:.1f} s"
          f"   ({len(pods_seen)}/{count} Pods; target <= 30 s)")
    # settled: the operator has written nothing (keep-alives aside) for 10 s
    settle = Audit()
    while time.monotonic() - last_apply < 600:
        time.sleep(10)
        recent = [r for r in settle.requests() if r["verb"] in WRITES and "kopfpeering" not in kind_of(r)]
        if settle.offset is None or not recent:
            break
        settle = Audit()
    print(f"  {'settled (10 s without a write), after the last apply':44} {time.monotonic() - last_apply:.1f} s")
    audit = Audit()
    time.sleep(quiet)
    at_rest = audit.requests()
    loaded_peak = sampler.done()
    print(f"  {'operator RSS peak, applying and at rest':44} {loaded_peak:.0f} MB")
    if audit.offset is not None:
        peering = [r for r in at_rest if "kopfpeering" in kind_of(r)]
        rest = [r for r in at_rest if r not in peering]
        writes = sum(1 for r in rest if r["verb"] in WRITES)
        reads = sum(1 for r in rest if r["verb"] not in WRITES)
        print(f"  {f'at rest for {quiet} s: writes':44} {writes}   (peering keep-alives aside: {len(peering)})")
        print(f"  {f'at rest for {quiet} s: reads per second':44} {reads / quiet:.2f}   "
              f"({Counter(r['verb'] for r in rest if r['verb'] not in WRITES)})")
    sampler = RssSampler(core)
    core.delete_namespace(ns)
    while True:
        try:
            core.read_namespace(ns)
        except client.ApiException as exc:
            if exc.status == 404:
                break
        time.sleep(1)
    stop.set()
    print(f"  {'operator RSS peak while the namespace is deleted':44} {sampler.done():.0f} MB")
    print(f"  {'operator restarts':44} {restarts(core) - restarts_before}")


INJECT = f"{GROUP}/inject"
ROOT = Path(__file__).resolve().parents[1]
NOWHERE = {"initpipeline.dev/bench": "no-such-node"}  # Pods that are created but never scheduled


def attached_pipeline(name: str, once: bool) -> Obj:
    steps: list[Obj] = [{"name": "prepare", "container": {"image": BUSYBOX, "command": ["true"]}}]
    if once:
        # not the app's settings: its CPU request keeps the app's Pods unscheduled, and the Job's must run
        steps.insert(0, {"name": "seed", "once": True, "container": {"imageFrom": "app", "inheritSettings": False,
                                                                      "command": ["true"]}})
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
            "spec": {"attach": {"kind": "Deployment", "name": name}, "steps": steps}}


def install_operator(injection: str | None) -> None:
    """Install the operator as `make bench-operator` does, with attach mode's mechanism (None: auto)."""
    values = ["--set", f"injection={injection}"] if injection else []
    subprocess.run(["bash", str(ROOT / "hack" / "install-operator.sh"), *values], check=True)


def refuses_unknown_pipelines(core: Any, ns: str) -> bool:
    """Whether a labelled Pod that names no pipeline is refused: the mechanism is in the admission chain."""
    body = {"metadata": {"generateName": "probe-", "labels": {INJECT: "no-such-pipeline"}},
            "spec": {"containers": [{"name": "app", "image": BUSYBOX}]}}
    try:
        core.create_namespaced_pod(ns, body, dry_run="All")
    except client.ApiException as exc:
        return exc.status in (400, 403) and "does not exist" in str(exc.body)
    return False


def attach(core: Any, apps: Any, custom: Any, pods: int, replicas: int, neighbours: list[int], mechanism: str) -> None:
    """4. Attach mode: the time the policy or the webhook adds to a Pod's creation (the API call, side by
    side with the same Pods unlabelled, interleaved), also with `neighbours` more pipelines in the Pod's
    namespace (the policy evaluates its CEL once per pipeline there), and an attached Deployment of
    `replicas` Pods created at once next to a raw one: when all its Pods exist, and when their gates are
    lifted after the once-step."""
    ns = namespace(core, "bench-attach")
    try:
        start = time.monotonic()
        while not refuses_unknown_pipelines(core, ns):
            if time.monotonic() - start > 120:
                raise TimeoutError(f"the {mechanism} did not come into the admission chain")
            time.sleep(0.5)
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, attached_pipeline("web", once=False))
        time.sleep(3)  # rendered for the policy
        print(f"4. attach mode by {mechanism}: creating a Pod ({pods} of each, interleaved)")
        made = 0
        for others in sorted({0, *neighbours}):
            if others > made:  # a later round: more pipelines beside it
                for i in range(made, others):
                    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL,
                                                           attached_pipeline(f"n{i}", False))
                made = others
                time.sleep(5)
            timings: dict[bool, list[float]] = {True: [], False: []}
            for i in range(pods):
                for labelled in (True, False):
                    labels = {"pod-template-hash": "bench", **({INJECT: "web"} if labelled else {})}
                    body = {"metadata": {"name": f"{'in' if labelled else 'raw'}-{others}-{i}", "labels": labels},
                            "spec": {"nodeSelector": NOWHERE, "terminationGracePeriodSeconds": 0,
                                     "containers": [{"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]}]}}
                    start = time.monotonic()
                    core.create_namespaced_pod(ns, body)
                    timings[labelled].append(time.monotonic() - start)
            where = f"{1 + others} pipelines in the namespace"
            print(line(f"Pod create, unlabelled (raw), {where}", timings[False]))
            print(line(f"Pod create, labelled ({mechanism}), {where}", timings[True]))
            added = [a - b for a, b in zip(sorted(timings[True]), sorted(timings[False]), strict=True)]
            print(line(f"what the {mechanism} adds (by percentile)", added))

        def deployment(name: str, labelled: bool) -> Obj:
            labels = {"app": name, **({INJECT: name} if labelled else {})}
            # the app asks for more CPU than the node has: its Pods are never scheduled, and the once-step
            # Job's Pod (the steps only, with their own requests) is
            app = {"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"],
                   "resources": {"requests": {"cpu": "1000"}}}
            return {"metadata": {"name": name}, "spec": {
                "replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": labels}, "spec": {
                    "terminationGracePeriodSeconds": 0, "containers": [app]}}}}

        def count(selector: str, gated: bool | None = None) -> int:
            items = core.list_namespaced_pod(ns, label_selector=selector).items
            return sum(1 for p in items if gated is None or bool(p.spec.scheduling_gates) == gated)

        def until(what: Callable[[], bool], limit: float = 300) -> float:
            start = time.monotonic()
            while not what():
                if time.monotonic() - start > limit:
                    raise TimeoutError
                time.sleep(0.05)
            return time.monotonic()

        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, attached_pipeline("shop", once=True))
        time.sleep(3)
        start = time.monotonic()
        apps.create_namespaced_deployment(ns, deployment("plain", False))
        plain = until(lambda: count("app=plain") == replicas) - start
        start = time.monotonic()
        apps.create_namespaced_deployment(ns, deployment("shop", True))
        created = until(lambda: count("app=shop") == replicas) - start
        lifted = until(lambda: count("app=shop", gated=False) == replicas) - start
        print(f"  a Deployment of {replicas} Pods, created at once (they are never scheduled: the node is spared)")
        print(f"  {'all Pods exist, raw Deployment':44} {plain:8.2f} s")
        print(f"  {f'all Pods exist, attached ({mechanism}, gated)':44} {created:8.2f} s")
        print(f"  {'all gates lifted (once-step Job included)':44} {lifted:8.2f} s")
    finally:
        delete_namespace(core, ns)


RUNNER = "docker.io/initpipeline/initpipeline:0.1.0"
# The classic wait for a Job, as k8s-wait-for does it: ask the API server every 2 s with the Pod's token. A
# fixed program: the Job's name comes from the environment.
CLASSIC_JOB_WAIT = """
import json, os, ssl, time, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
url = (f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
       f"/apis/batch/v1/namespaces/{open(sa + 'namespace').read()}/jobs/{os.environ['JOB']}")
context = ssl.create_default_context(cafile=sa + "ca.crt")
while True:
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + open(sa + "token").read()})
    try:
        job = json.load(urllib.request.urlopen(request, context=context))
        if any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"].get("conditions", [])):
            break
    except Exception:
        pass
    time.sleep(2)
print(f"exit {time.time():.3f}")  # for the benchmark: when the wait ended
"""


def log_end(core: Any, ns: str, pod: str, around: float) -> float:
    """When the wait-seed container's program ended, by its last log line: the step's "HH:MM:SS.mmm ..." (UTC,
    on the day of `around`) or the classic program's "exit <epoch>"."""
    import datetime as dt

    last = core.read_namespaced_pod_log(pod, ns, container="wait-seed").strip().splitlines()[-1]
    if last.startswith("exit "):
        return float(last.split()[1])
    day = dt.datetime.fromtimestamp(around, dt.UTC).date()
    clock = dt.datetime.strptime(last.split()[0], "%H:%M:%S.%f").time()
    return dt.datetime.combine(day, clock, dt.UTC).timestamp()


def object_waits(core: Any, batch: Any, rbac: Any, custom: Any, rounds: int) -> None:
    """5. waitForObject against the classic polling init container, on the same Jobs."""
    import random

    ns = namespace(core, "bench-objects")
    seen, stop = Seen(), threading.Event()

    completed: dict[str, float] = {}

    def on_job(job: Obj) -> None:
        if cond(job, "Complete"):
            completed.setdefault(job["metadata"]["name"], time.time())
            seen.mark(f"complete/{job['metadata']['name']}")

    def on_pod(pod: Obj) -> None:
        for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
            if (status.get("state") or {}).get("terminated"):
                seen.mark(f"exit/{pod['metadata']['name']}/{status['name']}")
    try:
        rbac.create_namespaced_role(ns, {"metadata": {"name": "read-jobs"}, "rules": [
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]}]})
        rbac.create_namespaced_role_binding(ns, {
            "metadata": {"name": "read-jobs"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-jobs"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}]})
        watch_in_background(batch.list_namespaced_job, (ns,), on_job, stop)
        watch_in_background(core.list_namespaced_pod, (ns,), on_pod, stop)
        rng = random.Random(1)
        ours, classic = [], []
        for i in range(rounds):
            job, seconds = f"seed-{i}", rng.uniform(3, 6)
            app = {"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]}
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {
                "apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": f"ours-{i}"},
                "spec": {"steps": [{"name": "wait-seed", "waitForObject": {
                    "apiVersion": "batch/v1", "kind": "Job", "name": job}}],
                    "template": {"spec": {"terminationGracePeriodSeconds": 0, "containers": [app]}}}})
            core.create_namespaced_pod(ns, {"metadata": {"name": f"classic-{i}"}, "spec": {
                "terminationGracePeriodSeconds": 0, "containers": [app],
                "initContainers": [{"name": "wait-seed", "image": RUNNER, "imagePullPolicy": "IfNotPresent",
                                    "command": ["python", "-c", CLASSIC_JOB_WAIT],
                                    "env": [{"name": "JOB", "value": job}]}]}})
            batch.create_namespaced_job(ns, {"metadata": {"name": job}, "spec": {"backoffLimit": 0, "template": {
                "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "containers": [
                    {"name": "seed", "image": BUSYBOX, "command": ["sleep", f"{seconds:.1f}"]}]}}}})
            deadline = time.monotonic() + 120
            keys = (f"complete/{job}", f"exit/ours-{i}-1/wait-seed", f"exit/classic-{i}/wait-seed")
            while any(seen.get(k) is None for k in keys):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"round {i}: {[k for k in keys if seen.get(k) is None]} never seen")
                time.sleep(0.05)
            ours.append(log_end(core, ns, f"ours-{i}-1", completed[job]) - completed[job])
            classic.append(log_end(core, ns, f"classic-{i}", completed[job]) - completed[job])
            print(f"  round {i + 1:>2}: Job ran {seconds:.1f} s; after its Complete: waitForObject "
                  f"{ours[-1]:6.3f} s, classic poll {classic[-1]:6.3f} s", flush=True)
        print(f"5. waitForObject: Job Complete -> the waiting program exits ({rounds} rounds)")
        print(line("waitForObject (operator's watch, Pod annotation)", ours))
        print(line("classic: GET the Job every 2 s (RBAC by hand)", classic))
        print(f"  {'mean':44} waitForObject {statistics.mean(ours):.3f} s, classic {statistics.mean(classic):.3f} s")
    finally:
        stop.set()
        delete_namespace(core, ns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", type=int, default=30)
    parser.add_argument("--intervals", default="0.5,0.1",
                        help="seconds between two pairs in the latency runs, one run each (default: %(default)s)")
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--scale", type=int, default=1000)
    parser.add_argument("--quiet", type=int, default=60)
    parser.add_argument("--attach-pods", type=int, default=50,
                        help="Pods created through the webhook and as many without (0: no attach run)")
    parser.add_argument("--attach-replicas", type=int, default=100)
    parser.add_argument("--attach-neighbours", default="10,100",
                        help="more pipelines in the namespace for later rounds of Pod creations (default: %(default)s)")
    parser.add_argument("--injection", default="policy,webhook",
                        help="attach mode's mechanisms to measure, in turn (default: %(default)s)")
    parser.add_argument("--object-rounds", type=int, default=10, help="waitForObject rounds (0: none)")
    args = parser.parse_args()
    config.load_kube_config()
    core, apps, custom = client.CoreV1Api(), client.AppsV1Api(), client.CustomObjectsApi()
    if args.pipelines:
        for interval in (float(i) for i in args.intervals.split(",")):
            calm_node()
            latency(core, custom, args.pipelines, interval)
        calm_node()
        step_writes(core, custom, 3)
    if args.replicas:
        deployment_ratio(core, apps, custom, args.replicas, args.rounds)
    if args.attach_pods:
        # each mechanism in turn (the operator reinstalled for it), each against unlabelled Pods of its time
        for mechanism in args.injection.split(","):
            install_operator(mechanism)
            calm_node()
            attach(core, apps, custom, args.attach_pods, args.attach_replicas,
                   [int(n) for n in args.attach_neighbours.split(",") if n], mechanism)
        install_operator(None)
    if args.object_rounds:
        calm_node()
        object_waits(core, client.BatchV1Api(), client.RbacAuthorizationV1Api(), custom, args.object_rounds)
    if args.scale:
        calm_node()
        scale(core, custom, args.scale, args.quiet)


if __name__ == "__main__":
    main()
