"""Brings one InitPipeline's Pod and status in line with its spec (the operator's only writer)."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from ..core.build import build_once_job, build_pod, build_workload, pod_name
from ..core.pod_status import build_status, finished_steps, handover_only, invalid_status, same_status, step_events
from ..core.workload import ANNOTATION_SPEC_HASH, plan, progress_only, spec_hash, workload_status
from ..spec import names, views
from ..spec.names import Obj
from ..spec.validation import validate_pipeline
from .alarms import Alarms
from .kubeapi import ApiError, KubeApi
from .metrics import Metrics
from .workqueue import WorkQueue

TERMINATING_MEMORY = 120  # seconds: a namespace's deletion has finished (or failed) by then
PROGRESS_WRITE_INTERVAL = 1.0  # seconds: a workload's progress-only status changes, at most this often
# seconds a Pod pipeline's step handover (status.handover_only) waits for the next step's start: the
# kubelet took 0.4 to 2 s to start the next container on the 2-core test node
HANDOVER_HOLD = 2.0
# A pipeline's alarms, keyed by purpose + uid: its steps' deadline (no prefix), a held progress write,
# and a retry. Each wakes the pipeline on the work queue.
WRITE_KEY = "write/"
RETRY_KEY = "retry/"
FIELD_MANAGER = "initpipeline"  # how the operator's writes show in managedFields
EventPoster = Callable[[Obj, str, str, str], None]
Logger = logging.Logger | logging.LoggerAdapter[Any]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def rfc3339(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def prune_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: prune_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_none(v) for v in value]
    return value


@dataclass
class Cluster:
    """The operator's configuration and its API clients. One object, shared by reference through
    kopf's memo, so that a new login (connect) reaches every handler."""

    runner_image: str
    post_event: EventPoster
    metrics: Metrics
    reconcile_threads: int = 4  # the work queue's: blocking API calls overlap; Python runs one at a time anyway
    api: KubeApi | None = None
    alarms: Alarms = field(default_factory=Alarms)
    queue: WorkQueue = field(default_factory=WorkQueue)
    # The operator is the only writer of the status: what it last wrote is newer than a cached
    # body that the watch has not brought up to date yet (by pipeline uid).
    written: dict[str, Obj] = field(default_factory=dict)
    # The newest generation reconciled, by pipeline uid: a handler with an older body does nothing.
    handled: dict[str, int] = field(default_factory=dict)
    # Namespaces seen being deleted (when): the deletions of their Pods recreate nothing.
    terminating: dict[str, dt.datetime] = field(default_factory=dict)
    # When the status was last written (monotonic seconds), by pipeline uid: progress writes are spaced.
    last_write: dict[str, float] = field(default_factory=dict)
    # Unexpected failures in a row, by pipeline uid: their retries back off.
    failures: dict[str, int] = field(default_factory=dict)
    # Since when (monotonic seconds) a step handover has been held unwritten, by pipeline uid.
    handover_since: dict[str, float] = field(default_factory=dict)

    def forget(self, uid: str, namespace: str, name: str) -> None:
        """A deleted pipeline: nothing of it stays in memory or in the metrics, and none of its alarms fires."""
        for memory in (self.written, self.handled, self.last_write, self.failures, self.handover_since):
            memory.pop(uid, None)
        for purpose in ("", WRITE_KEY, RETRY_KEY):
            self.alarms.cancel(purpose + uid)
        self.metrics.forget(namespace, name)

    def wake_at(self, moment: dt.datetime, uid: str, purpose: str = "") -> None:
        """Reconcile the pipeline again at that moment (one alarm per purpose; setting it again moves it)."""
        self.alarms.at(moment, purpose + uid, functools.partial(self.queue.wake, uid))

    def connect(self, api_client: KubeApi) -> None:
        """The API client, as the login just made it (again, after a new login)."""
        self.api = api_client

    def _call(self, method: str, path: str, body: Obj | None = None, **params: str) -> Obj:
        if self.api is None:
            raise kopf.TemporaryError("not logged in to the API server yet", delay=1)
        return self.api.request(method, path, body, params or None)

    def _create(self, body: Obj) -> Obj | None:
        """POST a child; None when one of that name exists (409)."""
        try:
            return self._call("POST", _collection(body["kind"], body["metadata"]["namespace"]), body,
                              fieldManager=FIELD_MANAGER)
        except ApiError as exc:
            if exc.status != 409:
                raise
        return None

    def create_pod(self, pod: Obj) -> tuple[Obj, bool]:
        """Create, or read the one that exists: (pod, created)."""
        created = self._create(pod)
        if created is not None:
            return created, True
        meta = pod["metadata"]
        return self._call("GET", f"{_collection('Pod', meta['namespace'])}/{meta['name']}"), False

    def delete_pod(self, namespace: str, name: str) -> None:
        self.delete_child("Pod", namespace, name)

    def create_child(self, body: Obj) -> bool:
        """Create a Deployment, StatefulSet or Job; False when one of that name exists (409)."""
        return self._create(body) is not None

    def replace_workload(self, body: Obj) -> None:
        """PUT the whole object (at the cached resourceVersion): fields the spec no longer sets go."""
        meta = body["metadata"]
        self._call("PUT", f"{_collection(body['kind'], meta['namespace'])}/{meta['name']}", body,
                   fieldManager=FIELD_MANAGER)

    def delete_child(self, kind: str, namespace: str, name: str) -> None:
        """Delete a child of the pipeline; a workload's or Job's Pods go with it (in the background)."""
        try:
            self._call("DELETE", f"{_collection(kind, namespace)}/{name}", {"propagationPolicy": "Background"})
        except ApiError as exc:
            if exc.status != 404:
                raise

    def set_pod_deadline(self, namespace: str, name: str, seconds: int) -> None:
        self._call("PATCH", f"{_collection('Pod', namespace)}/{name}", {"spec": {"activeDeadlineSeconds": seconds}},
                   fieldManager=FIELD_MANAGER)

    def write_status(self, namespace: str, name: str, status: Obj) -> None:
        self._call("PATCH", f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{namespace}/{names.PLURAL}/{name}/status",
                   {"status": status}, fieldManager=FIELD_MANAGER)


_COLLECTIONS = {"Pod": "/api/v1/namespaces/{}/pods", "Deployment": "/apis/apps/v1/namespaces/{}/deployments",
                "StatefulSet": "/apis/apps/v1/namespaces/{}/statefulsets", "Job": "/apis/batch/v1/namespaces/{}/jobs"}


def _collection(kind: str, namespace: str) -> str:
    return _COLLECTIONS[kind].format(namespace)


def _owned_by(pod: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])


def steps_deadline(pipeline: Obj, pod: Obj) -> dt.datetime | None:
    """When the steps overrun activeDeadlineSeconds, while that can still happen; else None.

    The deadline bounds the steps only, so the app is never killed by it: once it falls due,
    the operator sets the same deadline on the Pod (allowed on a live Pod) and the kubelet stops
    the Pod with DeadlineExceeded.
    """
    deadline = pipeline["spec"].get("activeDeadlineSeconds")
    status = pod.get("status") or {}
    if not deadline or pod["spec"].get("activeDeadlineSeconds") or status.get("phase") != "Pending":
        return None
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    started = views.parse_time(status.get("startTime"))
    if initialized or started is None:
        return None
    return started + dt.timedelta(seconds=int(deadline))


@dataclass
class Children:
    """A pipeline's children as the watches' caches hold them: its Pods (its own, its workload's and
    its Jobs'), its Deployment or StatefulSet, and its once-steps Jobs."""

    pods: list[Obj] = field(default_factory=list)
    workloads: list[Obj] = field(default_factory=list)
    jobs: list[Obj] = field(default_factory=list)


View = Callable[[], tuple[Obj | None, Children]]


def reconcile(cluster: Cluster, uid: str, view: View, log: Logger) -> Obj:
    """Create, replace or recreate the Pod or workload as needed and refresh the status; returns the status.

    `view` gives the pipeline and its children as the watches' caches hold them now. The work queue
    never runs two passes of one pipeline at once, and each pass looks at the caches when it starts,
    so it never acts on an older spec than the pass before it."""
    pipeline, children = view()
    if pipeline is None or pipeline["metadata"].get("deletionTimestamp"):
        return {}  # gone or being deleted: garbage collection removes the Pod
    namespace = pipeline["metadata"]["namespace"]
    if _in_terminating_namespace(cluster, pipeline):
        return {}  # the namespace is going away, and the pipeline with it
    generation = int(pipeline["metadata"].get("generation", 1))
    if generation < cluster.handled.get(uid, 0):
        return {}  # the cache has not caught up with a spec already handled; its event will come
    cluster.handled[uid] = generation
    try:
        errors = validate_pipeline(pipeline)
        if views.workload_kind(pipeline.get("spec") or {}) != "Pod" and not errors:
            return _reconcile_workload(cluster, pipeline, children, log)
        return _reconcile_pod(cluster, pipeline, children, log, [str(e) for e in errors])
    except ApiError as exc:
        if _terminating(exc):
            cluster.terminating[namespace] = utcnow()
            return {}  # the namespace is going away, and the pipeline with it
        if exc.status == 404 and names.PLURAL in str(exc.body):
            return {}  # deleted since the cache saw it; its DELETED event forgets it
        raise kopf.TemporaryError(f"Kubernetes API error {exc.status} {exc.reason}: {exc.message}",
                                  delay=5) from None


def _terminating(exc: ApiError) -> bool:
    """The API server refused a create because the namespace is being deleted."""
    return exc.status == 403 and "being terminated" in str(exc.body)


def _in_terminating_namespace(cluster: Cluster, pipeline: Obj) -> bool:
    """Whether the API server recently refused a create in this pipeline's namespace because it is being
    deleted. A pipeline created after that lives in a new namespace of the same name."""
    seen = cluster.terminating.get(pipeline["metadata"]["namespace"])
    if seen is None:
        return False
    created = views.parse_time(pipeline["metadata"].get("creationTimestamp"))
    if utcnow() - seen > dt.timedelta(seconds=TERMINATING_MEMORY) or (created is not None and created > seen):
        cluster.terminating.pop(pipeline["metadata"]["namespace"], None)
        return False
    return True


def _rejected(previous: Obj, generation: int, reason: str = "PodRejected") -> bool:
    failed: Obj = next((c for c in previous.get("conditions") or [] if c.get("type") == "Failed"), {})
    return failed.get("reason") == reason and previous.get("observedGeneration") == generation


def _with_previous(cluster: Cluster, pipeline: Obj) -> tuple[Obj, Obj]:
    """The pipeline with the status the operator last wrote (newer than a cache that is behind), which
    build_status carries over (conditions' times), and that status."""
    previous: Obj = cluster.written.get(pipeline["metadata"]["uid"]) or pipeline.get("status") or {}
    return {**pipeline, "status": previous}, previous


def _reconcile_pod(cluster: Cluster, pipeline: Obj, children: Children, log: Logger, errors: list[str]) -> Obj:
    """A Pod of its own (kind Pod), or an invalid spec of any kind (only a status to write)."""
    meta = pipeline["metadata"]
    name, namespace, generation = meta["name"], meta["namespace"], int(meta.get("generation", 1))
    pipeline, previous = _with_previous(cluster, pipeline)
    now = utcnow()

    if errors:
        status = invalid_status(pipeline, errors, rfc3339(now))
        _publish(cluster, pipeline, previous, status)
        return status

    for child in children.workloads + children.jobs:
        if _owned_by(child, meta["uid"]) and not child["metadata"].get("deletionTimestamp"):
            log.info("deleting %s %s: the pipeline now runs a Pod", child.get("kind"), child["metadata"]["name"])
            cluster.delete_child(str(child.get("kind")), namespace, child["metadata"]["name"])
    pods = children.pods
    wanted = pod_name(name, generation)
    current: Obj | None = None
    for pod in pods:
        if not _owned_by(pod, meta["uid"]):
            continue
        if pod["metadata"]["name"] == wanted:
            current = pod
        elif not pod["metadata"].get("deletionTimestamp"):
            log.info("deleting Pod %s of an older generation", pod["metadata"]["name"])
            cluster.delete_pod(namespace, pod["metadata"]["name"])

    extra: Obj = {}
    created = False
    if current is not None and current["metadata"].get("deletionTimestamp"):
        # Deleted by someone else and still terminating; its DELETED event brings us back.
        current = None
    elif current is None:
        if _rejected(previous, generation):
            return previous  # the same spec would be refused again; wait for a new generation
        pod = build_pod(pipeline, cluster.runner_image)
        kopf.adopt(pod, owner=cast(kopf.Body, pipeline))  # kopf reads a plain dict the same way
        try:
            current, created = cluster.create_pod(pod)
        except ApiError as exc:
            if exc.status not in (400, 403, 422) or _terminating(exc):
                raise
            # invalid (422), or refused by admission such as PodSecurity (403): the spec must change
            status = invalid_status(pipeline, [exc.message], rfc3339(now), reason="PodRejected")
            _publish(cluster, pipeline, previous, status)
            return status
        if not created and not _owned_by(current, meta["uid"]):
            # the name is taken: most often by the Pod of a deleted pipeline of the same name that
            # the garbage collector has not removed yet; its deletion brings us back too
            raise kopf.TemporaryError(f"Pod {wanted} exists but belongs to something else; waiting for it to go",
                                      delay=5)
        if created:
            log.info("created Pod %s", wanted)
            if previous.get("podName") == wanted and previous.get("observedGeneration") == generation:
                extra["podRecreations"] = int(previous.get("podRecreations", 0)) + 1
                cluster.post_event(pipeline, "Warning", "PodRecreated",
                                   f"Pod {wanted} was deleted and has been recreated")

    due = steps_deadline(pipeline, current) if current is not None else None
    if due is not None and due <= now:
        deadline = int(pipeline["spec"]["activeDeadlineSeconds"])
        log.info("steps exceeded activeDeadlineSeconds=%s; stopping Pod %s", deadline, wanted)
        cluster.set_pod_deadline(namespace, wanted, deadline)
    elif due is not None:
        cluster.wake_at(due, meta["uid"])

    status = build_status(pipeline, current, rfc3339(now), extra)
    if current is None:
        # keep the name: it is how the next pass knows that the Pod it creates is a recreation
        status["podName"] = wanted
        status["message"] = f"Pod {wanted} is being deleted; it will be recreated"
    if created and "podRecreations" not in extra:
        # The new Pod's ADDED event follows at once and brings the first status of this generation:
        # writing one now as well would be a write more per pipeline for a state nobody can see.
        return status
    _publish(cluster, pipeline, previous, status)
    return status


def _reconcile_workload(cluster: Cluster, pipeline: Obj, children: Children, log: Logger) -> Obj:
    """A Deployment or StatefulSet: the once-steps' Job first, then the workload at this revision."""
    meta = pipeline["metadata"]
    namespace, uid = meta["namespace"], meta["uid"]
    pipeline, previous = _with_previous(cluster, pipeline)
    now = utcnow()
    if _rejected(previous, int(meta.get("generation", 1)), "WorkloadRejected"):
        return previous  # the same spec would be refused again; wait for a new generation
    owner = cast(kopf.Body, pipeline)
    desired = build_workload(pipeline, cluster.runner_image)
    desired["metadata"].setdefault("annotations", {})[ANNOTATION_SPEC_HASH] = spec_hash(desired)
    kopf.adopt(desired, owner=owner)
    job = build_once_job(pipeline, cluster.runner_image)
    mine = [w for w in children.workloads if _owned_by(w, uid)]
    workload = next((w for w in mine if w.get("kind") == desired["kind"] and w["metadata"]["name"] == meta["name"]),
                    None)
    jobs = [j for j in children.jobs if _owned_by(j, uid)]
    step = plan(pipeline["spec"], desired, job is not None, workload, jobs, previous)
    try:
        # what an earlier spec of another kind left: its own Pod, or a workload of the other kind
        for pod in children.pods:
            if _owned_by(pod, uid) and not pod["metadata"].get("deletionTimestamp"):
                log.info("deleting Pod %s: the pipeline now runs a %s", pod["metadata"]["name"], desired["kind"])
                cluster.delete_pod(namespace, pod["metadata"]["name"])
        for other in mine:
            if other is not workload and not other["metadata"].get("deletionTimestamp"):
                log.info("deleting %s %s: the pipeline now runs a %s", other.get("kind"), other["metadata"]["name"],
                         desired["kind"])
                cluster.delete_child(str(other.get("kind")), namespace, other["metadata"]["name"])
        if step.create_job and job is not None:
            kopf.adopt(job, owner=owner)
            if cluster.create_child(job):
                log.info("created Job %s for the once-steps of revision %s", job["metadata"]["name"], step.revision)
        if step.write_workload == "create":
            if cluster.create_child(desired):
                log.info("created %s %s at revision %s", desired["kind"], meta["name"], step.revision)
            else:
                raise kopf.TemporaryError(f"{desired['kind']} {meta['name']} exists but is not ours (yet); "
                                          "waiting for it to go", delay=5)
        elif step.write_workload == "replace" and workload is not None:
            desired["metadata"]["resourceVersion"] = workload["metadata"]["resourceVersion"]
            cluster.replace_workload(desired)
            log.info("updated %s %s to revision %s", desired["kind"], meta["name"], step.revision)
        for name in step.delete_jobs:
            log.info("deleting Job %s of an earlier revision", name)
            cluster.delete_child("Job", namespace, name)
    except ApiError as exc:
        if _terminating(exc):
            raise
        if exc.status == 409:  # the workload changed since the cache saw it; its event brings us back
            raise kopf.TemporaryError("the workload changed meanwhile; trying again", delay=1) from None
        if exc.status not in (400, 403, 422):
            raise
        status = invalid_status(pipeline, [exc.message], rfc3339(now), reason="WorkloadRejected")
        _publish(cluster, pipeline, previous, status)
        return status
    status = workload_status(pipeline, step, workload, children.pods, rfc3339(now))
    if step.create_job or step.write_workload == "create":
        return status  # as for a Pod: the new child's ADDED event brings the status
    _publish(cluster, pipeline, previous, status)
    return status


def _publish(cluster: Cluster, pipeline: Obj, previous: Obj, status: Obj) -> None:
    meta = pipeline["metadata"]
    # in memory, so also after a restart, when the stored status is already right
    cluster.metrics.phase(meta["namespace"], meta["name"], status["phase"])
    stored = prune_none(status)  # as the API server keeps it: a null in a merge patch deletes the key
    uid = meta["uid"]
    if same_status(stored, previous):
        cluster.handover_since.pop(uid, None)
        return
    wait = _hold(cluster, uid, pipeline, previous, stored)
    if wait > 0:
        # held: the pass that this alarm wakes writes the newest status then, unless an event did first
        cluster.wake_at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait), uid, WRITE_KEY)
        return
    cluster.write_status(meta["namespace"], meta["name"], status)
    cluster.handover_since.pop(uid, None)
    cluster.written[uid] = stored
    cluster.last_write[uid] = time.monotonic()
    # counted after the write, so that a failed write is counted by the retry that succeeds
    cluster.metrics.step_runs(meta["namespace"], meta["name"],
                              finished_steps(previous.get("steps"), status.get("steps") or []))
    for etype, reason, message in step_events(previous.get("steps"), status.get("steps") or []):
        cluster.post_event(pipeline, etype, reason, message)
    if status["phase"] != previous.get("phase"):
        etype = "Warning" if status["phase"] == "Failed" else "Normal"
        cluster.post_event(pipeline, etype, f"Pipeline{status['phase']}", status["message"])


def _hold(cluster: Cluster, uid: str, pipeline: Obj, previous: Obj, stored: Obj) -> float:
    """Seconds for which this status change waits before it is written (0: write it now). A workload's
    progress is written at most once a second; a Pod pipeline's step handover waits for the next
    step's start, for at most HANDOVER_HOLD. Anything else is written at once."""
    now = time.monotonic()
    if views.workload_kind(pipeline["spec"]) != "Pod":
        if not progress_only(previous, stored):
            return 0
        return cluster.last_write.get(uid, -math.inf) + PROGRESS_WRITE_INTERVAL - now
    if not handover_only(previous, stored):
        cluster.handover_since.pop(uid, None)
        return 0
    return cluster.handover_since.setdefault(uid, now) + HANDOVER_HOLD - now
