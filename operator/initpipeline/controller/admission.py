"""The Pod webhook of attach mode: which pipeline a new Pod names, read from the API server (every
replica answers, the standby too, whose watches are paused), and what core.attach adds to the Pod."""

from __future__ import annotations

from ..core.attach.inject import Refusal, inject
from ..spec import names
from ..spec.names import Obj
from .context import Controller
from .kubeapi import ApiError


def admit_pod(ctl: Controller, pod: Obj) -> Obj:
    """The patch for a new Pod that carries the inject label; Refusal when it must not start."""
    meta = pod.get("metadata") or {}
    namespace, wanted = meta.get("namespace") or "default", (meta.get("labels") or {})[names.LABEL_INJECT]
    try:
        pipeline = ctl.client.get_pipeline(namespace, wanted)
    except ApiError as exc:
        if exc.status != 404:
            raise
        raise Refusal(f"InitPipeline {wanted} does not exist in namespace {namespace}: apply it (the workload's "
                      f"controller creates this Pod again by itself), or remove the label {names.LABEL_INJECT} "
                      "from the Pod template") from None
    if pipeline["metadata"].get("deletionTimestamp"):
        raise Refusal(f"InitPipeline {wanted} is being deleted: remove the label {names.LABEL_INJECT} from the "
                      "Pod template to run this workload without it")
    return inject(pipeline, pod, ctl.config.runner_image)
