"""kopf handlers: thin, async, and quick. Each says which pipeline an event concerns and returns.

`initpipeline run` builds the configuration (a Cluster: runner image, metrics, events) and passes it
in kopf's memo; the login handler connects it. What the operator knows of pipelines and their
children (Pods, Deployments, StatefulSets, Jobs) comes from kopf indexes fed by the watches, so an
event costs no API read. The indexers and handlers are coroutines that only slim a body or wake a
pipeline, so kopf runs them on its loop at once and drops the event's body; the reconciling itself
happens on the work queue's threads (the operator's client blocks), from the indexes.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import logging
from typing import Any, cast

import kopf

from ..spec import names
from ..spec.names import Obj
from .kubeapi import KubeApi
from .reconciler import RETRY_KEY, Children, Cluster, reconcile

RETRY_DELAY = 10.0  # after an unexpected failure; doubled for each one in a row, up to RETRY_DELAY_MAX
RETRY_DELAY_MAX = 300.0
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # where kopf's login reads it
INDEXES = ("pipelines_by_uid", "pods_by_owner", "deployments_by_owner", "statefulsets_by_owner", "jobs_by_owner")
_log = logging.getLogger(__name__)


def post_event(body: Obj, etype: str, reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, body), type=etype, reason=reason, message=message)


def _cached_pipeline(indexes: dict[str, Any], uid: str) -> Obj | None:
    return next(iter(indexes["pipelines_by_uid"].get(uid, [])), None)


def _view(indexes: dict[str, Any], uid: str) -> tuple[Obj | None, Children]:
    return _cached_pipeline(indexes, uid), Children(
        pods=list(indexes["pods_by_owner"].get(uid, [])),
        workloads=[*indexes["deployments_by_owner"].get(uid, []), *indexes["statefulsets_by_owner"].get(uid, [])],
        jobs=list(indexes["jobs_by_owner"].get(uid, [])))


def _work(cluster: Cluster, indexes: dict[str, Any], uid: str) -> None:
    """One pass over a pipeline, on a work-queue thread. Nothing here is retried by kopf: a "not yet"
    (TemporaryError) or a failure wakes the pipeline again after its delay (an alarm)."""
    cached = _cached_pipeline(indexes, uid)
    logger = _pipeline_logger(cached) if cached else _log
    try:
        with cluster.metrics.reconcile_duration.time():
            reconcile(cluster, uid, functools.partial(_view, indexes, uid), logger)
    except kopf.TemporaryError as exc:
        logger.warning("%s; trying again in %ss", exc, exc.delay)
        _retry(cluster, uid, float(exc.delay or RETRY_DELAY))
    except Exception:
        failures = cluster.failures[uid] = cluster.failures.get(uid, 0) + 1
        delay = retry_delay(failures)
        logger.exception("reconciling failed (%s in a row); trying again in %ss", failures, delay)
        _retry(cluster, uid, delay)
    else:
        cluster.failures.pop(uid, None)
        cluster.alarms.cancel(RETRY_KEY + uid)
    finally:
        if cached is not None and _cached_pipeline(indexes, uid) is None:
            # deleted during this pass: its DELETED event may have forgotten it before the pass
            # stored what it wrote, set an alarm or counted its phase
            cluster.forget(uid, cached["metadata"]["namespace"], cached["metadata"]["name"])


def retry_delay(failures: int) -> float:
    """After the n-th unexpected failure in a row: 10 s, 20 s, 40 s ... at most 5 minutes, so that a
    pipeline that keeps failing (an API server that refuses it with 500s) does not hammer it."""
    return min(RETRY_DELAY * float(2 ** min(failures - 1, 16)), RETRY_DELAY_MAX)


def _pipeline_logger(pipeline: Obj) -> logging.LoggerAdapter[logging.Logger]:
    """What kopf gives an event handler: its per-object logger (the pipeline's namespace and name in
    every line, also in JSON), which posts no Events of its own."""
    meta = pipeline["metadata"]
    ref = {"apiVersion": pipeline.get("apiVersion"), "kind": pipeline.get("kind"), "name": meta.get("name"),
           "uid": meta.get("uid"), "namespace": meta.get("namespace")}
    return logging.LoggerAdapter(logging.getLogger("kopf.objects"), {"k8s_ref": ref, "k8s_skip": True})


def _retry(cluster: Cluster, uid: str, delay: float) -> None:
    cluster.wake_at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay), uid, RETRY_KEY)


def _wake(memo: kopf.Memo, uid: str, kwargs: dict[str, Any]) -> None:
    """Queue a pipeline's reconcile. `kwargs` are a handler's: the indexes come as keyword arguments
    named after their functions."""
    cluster: Cluster = memo.cluster  # kopf hands each object a copy of the memo, but not of this
    if not cluster.queue.started:
        # the first event: from here on the indexes are the same objects; the threads run in a copy
        # of kopf's context, which Event posting needs
        indexes = {name: kwargs[name] for name in INDEXES}
        cluster.queue.start(functools.partial(_work, cluster, indexes), cluster.reconcile_threads,
                            contextvars.copy_context())
    cluster.queue.wake(uid)


def _owner_uid(child: kopf.Body) -> str | None:
    """The pipeline a child belongs to: the uid label of a workload's or Job's Pod (owned by a
    ReplicaSet, StatefulSet or Job), else the owner reference."""
    uid = (child["metadata"].get("labels") or {}).get(names.LABEL_UID)
    if uid:
        return str(uid)
    for ref in child["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == names.KIND and ref.get("apiVersion", "").startswith(names.GROUP + "/"):
            return str(ref["uid"])
    return None


@kopf.index(names.GROUP, names.VERSION, names.PLURAL)
async def pipelines_by_uid(body: kopf.Body, **_: Any) -> dict[str, Obj]:
    pipeline = dict(body)
    pipeline["metadata"] = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {body["metadata"]["uid"]: pipeline}


@kopf.index("", "v1", "pods", labels={names.LABEL_PIPELINE: kopf.PRESENT})
async def pods_by_owner(body: kopf.Body, **_: Any) -> dict[str, Obj] | None:
    # what reconcile and the status read of a Pod, not its whole spec
    owner = _owner_uid(body)
    if owner is None:
        return None
    pod = {"metadata": dict(body["metadata"]), "spec": {"activeDeadlineSeconds": body["spec"].get(
        "activeDeadlineSeconds")}, "status": dict(body.get("status") or {})}
    pod["metadata"].pop("managedFields", None)
    return {owner: pod}


def _slim(body: kopf.Body, spec: Obj) -> Obj:
    """What reconcile and the status read of a child: metadata, the given spec fields and status."""
    meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {"kind": body.get("kind"), "metadata": meta, "spec": spec, "status": dict(body.get("status") or {})}


def _workload_entry(body: kopf.Body) -> dict[str, Obj] | None:
    owner = _owner_uid(body)
    if owner is None:
        return None
    labels = body["spec"].get("template", {}).get("metadata", {}).get("labels") or {}
    return {owner: _slim(body, {"replicas": body["spec"].get("replicas"),
                                "template": {"metadata": {"labels": dict(labels)}}})}


@kopf.index("apps", "v1", "deployments", labels={names.LABEL_PIPELINE: kopf.PRESENT})
async def deployments_by_owner(body: kopf.Body, **_: Any) -> dict[str, Obj] | None:
    return _workload_entry(body)


@kopf.index("apps", "v1", "statefulsets", labels={names.LABEL_PIPELINE: kopf.PRESENT})
async def statefulsets_by_owner(body: kopf.Body, **_: Any) -> dict[str, Obj] | None:
    return _workload_entry(body)


@kopf.index("batch", "v1", "jobs", labels={names.LABEL_PIPELINE: kopf.PRESENT})
async def jobs_by_owner(body: kopf.Body, **_: Any) -> dict[str, Obj] | None:
    owner = _owner_uid(body)
    return None if owner is None else {owner: _slim(body, {})}


@kopf.on.login()
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    """One set of credentials for kopf's watches and for the operator's own client: the service
    account in a Pod; elsewhere the kubeconfig, read by the kubernetes client where it is installed
    (it knows every kind of kubeconfig, exec plugins too), else by kopf."""
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
    token_path = SERVICE_ACCOUNT_TOKEN if info is not None else None
    if info is None:
        try:
            info = kopf.login_via_client(**kwargs)
        except ImportError:  # the image has no kubernetes client
            info = kopf.login_with_kubeconfig(**kwargs)
    if info is not None:
        memo.cluster.connect(KubeApi(info, token_path))
    return info


@kopf.on.event(names.GROUP, names.VERSION, names.PLURAL)
async def on_pipeline(type: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    # An event handler, not on.create/update/resume: kopf then writes no annotations of its own on the
    # pipeline (no diff base, no progress) and adds no finalizer. reconcile() is level-based: it looks
    # at the spec and the children, not at what changed, and writes only what differs.
    meta = body["metadata"]
    if type == "DELETED":
        cluster: Cluster = memo.cluster
        cluster.forget(meta["uid"], meta["namespace"], meta["name"])
        return
    _wake(memo, meta["uid"], kwargs)


@kopf.on.event("", "v1", "pods", labels={names.LABEL_PIPELINE: kopf.PRESENT})
@kopf.on.event("apps", "v1", "deployments", labels={names.LABEL_PIPELINE: kopf.PRESENT})
@kopf.on.event("apps", "v1", "statefulsets", labels={names.LABEL_PIPELINE: kopf.PRESENT})
@kopf.on.event("batch", "v1", "jobs", labels={names.LABEL_PIPELINE: kopf.PRESENT})
async def on_child_event(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    owner = _owner_uid(body)
    if owner is not None:
        _wake(memo, owner, kwargs)
