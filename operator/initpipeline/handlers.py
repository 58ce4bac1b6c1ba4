"""kopf handlers: thin wrappers that hand every trigger to reconcile().

`initpipeline run` builds the configuration (a Cluster: runner image, metrics,
events) and passes it in kopf's memo; the login handler connects it.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import kopf

from . import api
from .api import Obj
from .reconcile import Cluster, Logger, forget, reconcile


def post_event(body: Obj, etype: str, reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, body), type=etype, reason=reason, message=message)


def _reconcile(memo: kopf.Memo, body: Obj, logger: Logger) -> None:
    cluster: Cluster = memo.cluster
    with cluster.metrics.reconcile_duration.time():
        reconcile(cluster, body, logger)


@kopf.on.login()
def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
    # The kubernetes client's own config loading (in-cluster, or the kubeconfig), shared by kopf and
    # by our Cluster, which is built once that config exists.
    info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
    memo.cluster.connect()
    return info


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Keep kopf's bookkeeping in annotations so that .status holds only our API.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=api.GROUP, key="last-handled-configuration")
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300


@kopf.on.resume(api.GROUP, api.VERSION, api.PLURAL)
@kopf.on.create(api.GROUP, api.VERSION, api.PLURAL)
@kopf.on.update(api.GROUP, api.VERSION, api.PLURAL, field="spec")
def on_pipeline(body: kopf.Body, memo: kopf.Memo, logger: Logger, **_: Any) -> None:
    _reconcile(memo, dict(body), logger)


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
def on_gone(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # The watch's DELETED event: an on.delete handler would need a finalizer to be called at all.
    if type != "DELETED":
        return
    meta = body["metadata"]
    forget(meta["uid"])
    memo.cluster.alarms.cancel(meta["uid"])
    memo.cluster.metrics.forget(meta["namespace"], meta["name"])


@kopf.on.event("", "v1", "pods", labels={api.LABEL_PIPELINE: kopf.PRESENT})
def on_pod_event(body: kopf.Body, memo: kopf.Memo, logger: Logger, **_: Any) -> None:
    meta = body["metadata"]
    owner = next((ref for ref in meta.get("ownerReferences") or []
                  if ref.get("kind") == api.KIND and ref.get("apiVersion", "").startswith(api.GROUP + "/")), None)
    if owner is None:
        return
    pipeline = {"metadata": {"name": owner["name"], "namespace": meta["namespace"], "uid": owner["uid"]}}
    _reconcile(memo, pipeline, logger)
