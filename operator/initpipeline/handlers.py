"""kopf handlers: thin wrappers that hand every trigger to reconcile()."""

from __future__ import annotations

import logging
import os
from typing import Any, cast

import kopf

from . import api
from .api import Obj
from .reconcile import Cluster, Logger, forget, reconcile

RUNNER_IMAGE = os.environ.get("INITPIPELINE_RUNNER_IMAGE", api.DEFAULT_RUNNER_IMAGE)
RESYNC_SECONDS = float(os.environ.get("INITPIPELINE_RESYNC_SECONDS", "10"))


def _post_event(body: Obj, etype: str, reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, body), type=etype, reason=reason, message=message)


_cluster: Cluster | None = None


def cluster() -> Cluster:
    global _cluster
    if _cluster is None:
        _cluster = Cluster.connect(RUNNER_IMAGE, _post_event)
    return _cluster


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
def on_pipeline(body: kopf.Body, logger: Logger, **_: Any) -> None:
    reconcile(cluster(), dict(body), logger)


@kopf.timer(api.GROUP, api.VERSION, api.PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def resync(body: kopf.Body, logger: Logger, **_: Any) -> None:
    # Catches what an event may not bring: the steps' deadline, a missed Pod event.
    reconcile(cluster(), dict(body), logger)


@kopf.on.delete(api.GROUP, api.VERSION, api.PLURAL, optional=True)
def on_delete(body: kopf.Body, **_: Any) -> None:
    forget(body["metadata"]["uid"])


@kopf.on.event("", "v1", "pods", labels={api.LABEL_PIPELINE: kopf.PRESENT})
def on_pod_event(body: kopf.Body, logger: Logger, **_: Any) -> None:
    meta = body["metadata"]
    owner = next((ref for ref in meta.get("ownerReferences") or []
                  if ref.get("kind") == api.KIND and ref.get("apiVersion", "").startswith(api.GROUP + "/")), None)
    if owner is None:
        return
    pipeline = {"metadata": {"name": owner["name"], "namespace": meta["namespace"], "uid": owner["uid"]}}
    reconcile(cluster(), pipeline, logger)
