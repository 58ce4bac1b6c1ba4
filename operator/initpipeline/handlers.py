"""kopf handlers: thin wrappers that hand every trigger to reconcile().

`initpipeline run` builds the configuration (a Cluster: runner image, metrics,
events) and passes it in kopf's memo; the login handler connects it. What the
operator knows of pipelines and their children (Pods, Deployments, StatefulSets,
Jobs) comes from kopf indexes fed by the watches, so an event costs no API read.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, cast

import kopf

from . import api
from .api import Obj
from .reconcile import Children, Cluster, Logger, forget, reconcile

RETRY_KEY = "retry/"  # alarms: a pipeline's retry, beside its deadline (keyed by the bare uid)
RETRY_DELAY = 10.0


def post_event(body: Obj, etype: str, reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, body), type=etype, reason=reason, message=message)


def _reconcile(memo: kopf.Memo, uid: str, indexes: dict[str, Any], logger: Logger,
               body: Obj | None = None) -> None:
    """Reconcile one pipeline from the indexes (or the body kopf just handed over, which is as fresh).

    Every handler is an event handler, which kopf neither retries nor records in annotations: a
    "not yet" (TemporaryError) or a failure comes back as an alarm after its delay instead."""
    cluster: Cluster = memo.cluster
    pipelines = indexes["pipelines_by_uid"]

    def view() -> tuple[Obj | None, Children]:
        cached = next(iter(pipelines.get(uid, [])), None)
        return cached or body, Children(
            pods=list(indexes["pods_by_owner"].get(uid, [])),
            workloads=[*indexes["deployments_by_owner"].get(uid, []), *indexes["statefulsets_by_owner"].get(uid, [])],
            jobs=list(indexes["jobs_by_owner"].get(uid, [])))

    try:
        with cluster.metrics.reconcile_duration.time():
            reconcile(cluster, uid, view, logger)
    except kopf.TemporaryError as exc:
        logger.warning("%s; trying again in %ss", exc, exc.delay)
        _retry(memo, uid, indexes, logger, float(exc.delay or RETRY_DELAY))
    except Exception:
        logger.exception("reconciling failed; trying again in %ss", RETRY_DELAY)
        _retry(memo, uid, indexes, logger, RETRY_DELAY)
    else:
        cluster.alarms.cancel(RETRY_KEY + uid)


def _retry(memo: kopf.Memo, uid: str, indexes: dict[str, Any], logger: Logger, delay: float) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)
    memo.cluster.alarms.at(when, RETRY_KEY + uid, functools.partial(_reconcile, memo, uid, indexes, logger))


def _owner_uid(child: kopf.Body) -> str | None:
    """The pipeline a child belongs to: the uid label of a workload's or Job's Pod (owned by a
    ReplicaSet, StatefulSet or Job), else the owner reference."""
    uid = (child["metadata"].get("labels") or {}).get(api.LABEL_UID)
    if uid:
        return str(uid)
    for ref in child["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == api.KIND and ref.get("apiVersion", "").startswith(api.GROUP + "/"):
            return str(ref["uid"])
    return None


@kopf.index(api.GROUP, api.VERSION, api.PLURAL)
def pipelines_by_uid(body: kopf.Body, **_: Any) -> dict[str, Obj]:
    pipeline = dict(body)
    pipeline["metadata"] = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {body["metadata"]["uid"]: pipeline}


@kopf.index("", "v1", "pods", labels={api.LABEL_PIPELINE: kopf.PRESENT})
def pods_by_owner(body: kopf.Body, **_: Any) -> dict[str, Obj] | None:
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


@kopf.index("apps", "v1", "deployments", labels={api.LABEL_PIPELINE: kopf.PRESENT})
def deployments_by_owner(body: kopf.Body, **_: Any) -> dict[str, Obj] | None:
    return _workload_entry(body)


@kopf.index("apps", "v1", "statefulsets", labels={api.LABEL_PIPELINE: kopf.PRESENT})
def statefulsets_by_owner(body: kopf.Body, **_: Any) -> dict[str, Obj] | None:
    return _workload_entry(body)


@kopf.index("batch", "v1", "jobs", labels={api.LABEL_PIPELINE: kopf.PRESENT})
def jobs_by_owner(body: kopf.Body, **_: Any) -> dict[str, Obj] | None:
    owner = _owner_uid(body)
    return None if owner is None else {owner: _slim(body, {})}


@kopf.on.login()
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    # The kubernetes client's own config loading (in-cluster, or the kubeconfig), shared by kopf and
    # by our Cluster, which is built once that config exists.
    info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
    memo.cluster.connect()
    return info


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
def on_pipeline(type: str | None, body: kopf.Body, memo: kopf.Memo, logger: Logger, **indexes: Any) -> None:
    # An event handler, not on.create/update/resume: kopf then writes no annotations of its own on the
    # pipeline (no diff base, no progress) and adds no finalizer. reconcile() is level-based: it looks
    # at the spec and the children, not at what changed, and writes only what differs.
    meta = body["metadata"]
    if type == "DELETED":
        forget(meta["uid"])
        memo.cluster.written.pop(meta["uid"], None)
        memo.cluster.handled.pop(meta["uid"], None)
        memo.cluster.alarms.cancel(meta["uid"])
        memo.cluster.alarms.cancel(RETRY_KEY + meta["uid"])
        memo.cluster.metrics.forget(meta["namespace"], meta["name"])
        return
    _reconcile(memo, meta["uid"], indexes, logger, dict(body))


@kopf.on.event("", "v1", "pods", labels={api.LABEL_PIPELINE: kopf.PRESENT})
@kopf.on.event("apps", "v1", "deployments", labels={api.LABEL_PIPELINE: kopf.PRESENT})
@kopf.on.event("apps", "v1", "statefulsets", labels={api.LABEL_PIPELINE: kopf.PRESENT})
@kopf.on.event("batch", "v1", "jobs", labels={api.LABEL_PIPELINE: kopf.PRESENT})
def on_child_event(body: kopf.Body, memo: kopf.Memo, logger: Logger, **indexes: Any) -> None:
    # the indexes come as keyword arguments named after their functions
    owner = _owner_uid(body)
    if owner is not None:
        _reconcile(memo, owner, indexes, logger)
