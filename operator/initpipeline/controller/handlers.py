"""kopf handlers: thin, async, and quick. Each says which pipeline an event concerns and returns.

`initpipeline run` builds the configuration once; controller/run.py makes the Controller from it and
passes it in kopf's memo; the login handler connects its client. What the operator knows of pipelines and their
children (Pods, Deployments, StatefulSets, Jobs) comes from kopf indexes fed by the watches, so an
event costs no API read. The indexers and handlers are coroutines that only slim a body or wake a
pipeline, so kopf runs them on its loop at once and drops the event's body; the reconciling itself
happens on the work queue's threads (the operator's client blocks), from the indexes.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
from typing import Any, cast

import kopf

from ..core.attach.inject import Refusal
from ..core.attach.job import job_template
from ..core.attach.revision import gates_of, revision_entry
from ..spec import names
from ..spec.names import Obj
from .admission import admit_pod
from .context import Controller
from .kubeapi import KubeApi
from .passes import INDEXES, Caches, run_pass

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # where kopf's login reads it


def post_event(body: Obj, etype: str, reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, body), type=etype, reason=reason, message=message)


def _wake(memo: kopf.Memo, uid: str, kwargs: dict[str, Any]) -> None:
    """Queue a pipeline's reconcile. `kwargs` are a handler's: the indexes come as keyword arguments
    named after their functions."""
    ctl: Controller = memo.controller  # kopf hands each object a copy of the memo, but not of this
    if not ctl.queue.started:
        # the first event: from here on the indexes are the same objects; the threads run in a copy
        # of kopf's context, which Event posting needs
        caches = Caches({name: kwargs[name] for name in INDEXES})
        ctl.queue.start(functools.partial(run_pass, ctl, caches), ctl.config.reconcile_threads,
                        contextvars.copy_context())
        ctl.alarms.start()
    ctl.queue.wake(uid)


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
    return {body["metadata"]["uid"]: _slim(body)}


@kopf.index("", "v1", "pods", labels={names.LABEL_PIPELINE: kopf.PRESENT})
async def pods_by_owner(body: kopf.Body, **_: Any) -> dict[str, Obj] | None:
    # what reconcile and the status read of a Pod, not its whole spec
    owner = _owner_uid(body)
    if owner is None:
        return None
    kept: Obj = {"activeDeadlineSeconds": body["spec"].get("activeDeadlineSeconds"),
                 "restartPolicy": body["spec"].get("restartPolicy")}
    pod = cast(Obj, body)  # kopf's Body reads as the plain dict that it wraps
    if names.ONCE_GATE in gates_of(pod):
        # an attached Pod waiting for its revision's once-steps: the Job runs with its images and volumes
        kept.update(job_template(pod)["spec"], schedulingGates=list(body["spec"]["schedulingGates"]))
    return {owner: _slim(body, kept)}


def _slim(body: kopf.Body, spec: Obj | None = None) -> Obj:
    """What the caches keep of an object: its metadata without managedFields (its biggest part, which
    nobody here reads) nor kubectl's copy of the last applied spec, its status, and the given spec fields
    (a pipeline keeps its whole spec); its strings interned."""
    meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    annotations = meta.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    if spec is None:
        return cast(Obj, interned({**dict(body), "metadata": meta}))
    return cast(Obj, interned({"kind": body.get("kind"), "metadata": meta, "spec": spec,
                               "status": dict(body.get("status") or {})}))


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SHARED_STRING = 64  # characters: longer strings (messages, scripts) are rarely the same twice


def interned(value: Any) -> Any:
    """The same value with its keys and short strings interned. Every watch event's JSON brings its own
    copy of each key ("metadata", "lastTransitionTime"...) and of each repeated value (a namespace, a
    phase): interned, thousands of cached objects share one of each, which halves what a pipeline's
    cached body takes (8 to 4 KB, measured with tracemalloc; see the README's measurements)."""
    if isinstance(value, dict):
        return {sys.intern(k): interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interned(v) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_STRING:
        return sys.intern(value)
    return value


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


@kopf.index(names.GROUP, names.VERSION, names.PLURAL)
async def pipelines_by_name(body: kopf.Body, **_: Any) -> dict[tuple[str, str], str]:
    meta = body["metadata"]
    return {(sys.intern(meta["namespace"]), sys.intern(meta["name"])): sys.intern(meta["uid"])}


def _revision_entry(body: kopf.Body) -> dict[tuple[str, str], Obj]:
    """An attached workload's ReplicaSet or ControllerRevision (their controllers copy the template's
    labels onto them), by the pipeline that the label names: which revision is the workload's current one."""
    meta = body["metadata"]
    return {(meta["namespace"], meta["labels"][names.LABEL_INJECT]): revision_entry(cast(Obj, body))}


@kopf.index("apps", "v1", "replicasets", labels={names.LABEL_INJECT: kopf.PRESENT})
async def replicasets_by_pipeline(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Obj]:
    return _revision_entry(body)


@kopf.index("apps", "v1", "controllerrevisions", labels={names.LABEL_INJECT: kopf.PRESENT})
async def controllerrevisions_by_pipeline(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Obj]:
    return _revision_entry(body)


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
        ctl: Controller = memo.controller
        ctl.client.connect(KubeApi(info, token_path, lambda: ctl.clock().timestamp()))
    return info


@kopf.on.event(names.GROUP, names.VERSION, names.PLURAL)
async def on_pipeline(type: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    # An event handler, not on.create/update/resume: kopf then writes no annotations of its own on the
    # pipeline (no diff base, no progress) and adds no finalizer. reconcile() is level-based: it looks
    # at the spec and the children, not at what changed, and writes only what differs.
    meta = body["metadata"]
    if type == "DELETED":
        ctl: Controller = memo.controller
        ctl.forget(meta["uid"], meta["namespace"], meta["name"])
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


@kopf.on.event("apps", "v1", "replicasets", labels={names.LABEL_INJECT: kopf.PRESENT})
@kopf.on.event("apps", "v1", "controllerrevisions", labels={names.LABEL_INJECT: kopf.PRESENT})
async def on_revision_event(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    meta = body["metadata"]
    for uid in kwargs["pipelines_by_name"].get((meta["namespace"], meta["labels"][names.LABEL_INJECT]), []):
        _wake(memo, uid, kwargs)


async def inject_steps(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Attach mode: a new Pod of a user's workload gets its pipeline's steps (the API server calls this
    for Pods with the inject label only: the chart's objectSelector)."""
    try:
        changes = await asyncio.to_thread(admit_pod, memo.controller, dict(body))
    except Refusal as exc:
        raise kopf.AdmissionError(str(exc), code=403) from None
    patch.update(changes)


def serve_injection() -> None:
    """Register the Pod webhook (`injection: webhook`). Only then: kopf refuses to start with an admission
    handler and no webhook server, and with `injection: policy` the API server injects by itself."""
    kopf.on.mutate("", "v1", "pods", id="inject", operations=["CREATE"],
                   labels={names.LABEL_INJECT: kopf.PRESENT})(inject_steps)
