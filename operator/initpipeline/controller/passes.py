"""One reconcile pass on a work-queue thread: the view of the caches, the pipeline's logger, and what
happens after a pass that could not finish (a retry, backing off after unexpected failures)."""

from __future__ import annotations

import functools
import logging
from typing import Any

from ..core.children import Children
from ..spec.names import Obj
from .context import RETRY_KEY, Controller
from .errors import TryAgain
from .reconciler import reconcile

RETRY_DELAY = 10.0  # after an unexpected failure; doubled for each one in a row, up to RETRY_DELAY_MAX
RETRY_DELAY_MAX = 300.0
INDEXES = ("pipelines_by_uid", "pods_by_owner", "deployments_by_owner", "statefulsets_by_owner", "jobs_by_owner",
           "pipelines_by_name", "replicasets_by_pipeline", "controllerrevisions_by_pipeline")
_log = logging.getLogger(__name__)


class Caches:
    """kopf's indexes (the watches' caches), by the names of their functions in handlers.py."""

    def __init__(self, indexes: dict[str, Any]):
        self.indexes = indexes

    def pipeline(self, uid: str) -> Obj | None:
        return next(iter(self.indexes["pipelines_by_uid"].get(uid, [])), None)

    def view(self, uid: str) -> tuple[Obj | None, Children]:
        get = self.indexes
        pipeline = self.pipeline(uid)
        by_name = (pipeline["metadata"]["namespace"], pipeline["metadata"]["name"]) if pipeline else None
        return pipeline, Children(
            pods=list(get["pods_by_owner"].get(uid, [])),
            workloads=[*get["deployments_by_owner"].get(uid, []), *get["statefulsets_by_owner"].get(uid, [])],
            jobs=list(get["jobs_by_owner"].get(uid, [])),
            revisions=[*get["replicasets_by_pipeline"].get(by_name, []),
                       *get["controllerrevisions_by_pipeline"].get(by_name, [])] if by_name else [])


def run_pass(ctl: Controller, caches: Caches, uid: str) -> None:
    """One pass over a pipeline. Nothing here is retried by kopf: a "not yet" (TryAgain) or a failure
    wakes the pipeline again after its delay (an alarm)."""
    cached = caches.pipeline(uid)
    logger = pipeline_logger(cached) if cached else _log
    try:
        with ctl.metrics.reconcile_duration.time():
            reconcile(ctl, uid, functools.partial(caches.view, uid), logger)
    except TryAgain as exc:
        logger.warning("%s; trying again in %ss", exc, exc.delay)
        _retry(ctl, uid, exc.delay)
    except Exception:
        memory = ctl.remember(uid)
        memory.failures += 1
        delay = retry_delay(memory.failures)
        logger.exception("reconciling failed (%s in a row); trying again in %ss", memory.failures, delay)
        _retry(ctl, uid, delay)
    else:
        if uid in ctl.memory:
            ctl.memory[uid].failures = 0
        ctl.alarms.cancel(RETRY_KEY + uid)
    finally:
        if cached is not None and caches.pipeline(uid) is None:
            # deleted during this pass: its DELETED event may have forgotten it before the pass
            # stored what it wrote, set an alarm or counted its phase
            ctl.forget(uid, cached["metadata"]["namespace"], cached["metadata"]["name"])


def retry_delay(failures: int) -> float:
    """After the n-th unexpected failure in a row: 10 s, 20 s, 40 s ... at most 5 minutes, so that a
    pipeline that keeps failing (an API server that refuses it with 500s) does not hammer it."""
    return min(RETRY_DELAY * float(2 ** min(failures - 1, 16)), RETRY_DELAY_MAX)


def pipeline_logger(pipeline: Obj) -> logging.LoggerAdapter[logging.Logger]:
    """What kopf gives an event handler: its per-object logger (the pipeline's namespace and name in
    every line, also in JSON), which posts no Events of its own."""
    meta = pipeline["metadata"]
    ref = {"apiVersion": pipeline.get("apiVersion"), "kind": pipeline.get("kind"), "name": meta.get("name"),
           "uid": meta.get("uid"), "namespace": meta.get("namespace")}
    return logging.LoggerAdapter(logging.getLogger("kopf.objects"), {"k8s_ref": ref, "k8s_skip": True})


def _retry(ctl: Controller, uid: str, delay: float) -> None:
    ctl.wake_in(delay, uid, RETRY_KEY)
