"""Names and defaults of the InitPipeline API, shared by the builder, the operator and the CLI."""

from __future__ import annotations

import datetime as dt
from typing import Any

GROUP = "initpipeline.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InitPipeline"
PLURAL = "initpipelines"

# Labels and annotations the operator puts on the Pods it owns.
LABEL_PIPELINE = f"{GROUP}/pipeline"
LABEL_GENERATION = f"{GROUP}/generation"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "initpipeline"
# A workload's selector: the pipeline's uid, so it never matches a user's Pods (users may not set
# labels under the initpipeline.dev/ prefix) nor those of a deleted pipeline of the same name.
LABEL_UID = f"{GROUP}/pipeline-uid"
# What a workload Pod or a once-steps Job runs: a hash of steps and template (not of replicas).
LABEL_REVISION = f"{GROUP}/revision"
LABEL_ROLE = f"{GROUP}/role"
RESERVED_LABEL_PREFIX = f"{GROUP}/"

WORKLOAD_KINDS = ("Pod", "Deployment", "StatefulSet")
DEPLOYMENT_FIELDS = ("strategy", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds")
STATEFULSET_FIELDS = ("serviceName", "podManagementPolicy", "updateStrategy", "volumeClaimTemplates",
                      "minReadySeconds", "revisionHistoryLimit", "persistentVolumeClaimRetentionPolicy")
MAX_REPLICAS = 1000

STEP_KINDS = ("waitForService", "migration", "configDownload", "container")
BUILTIN_KINDS = ("waitForService", "migration", "configDownload")

# Pipeline names end up in Pod names ("<name>-<generation>") and label values (<= 63 chars).
MAX_PIPELINE_NAME = 50
MAX_STEPS = 32

DEFAULT_RUNNER_IMAGE = "initpipeline/initpipeline:0.1.0"
DEFAULT_RESTART_POLICY = "Always"

# Per-kind defaults; the CRD's descriptions quote the same numbers.
DEFAULT_WAIT_TIMEOUT = 300
DEFAULT_WAIT_MAX_INTERVAL = 1
DEFAULT_DOWNLOAD_TIMEOUT = 300
DEFAULT_DOWNLOAD_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_LOCK_TIMEOUT = 60
DEFAULT_CONNECT_TIMEOUT = 30
DEFAULT_HISTORY_TABLE = "initpipeline_schema_history"  # of the plain layout; the others use their tool's
# Migration folder layouts of the built-in runner; a sql step without one has it detected from the files.
MIGRATION_LAYOUTS = ("golang-migrate", "flyway", "dbmate", "plain")
DEFAULT_DATABASE_URL_ENV = "DATABASE_URL"
DEFAULT_STEP_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "10m", "memory": "32Mi"},
    "limits": {"memory": "256Mi"},
}

Obj = dict[str, Any]


def step_kind(step: Obj) -> str:
    """The kind of a validated step (exactly one of STEP_KINDS is set)."""
    for kind in STEP_KINDS:
        if kind in step:
            return kind
    raise ValueError(f"step {step.get('name')!r} has no kind")


def workload_kind(spec: Obj) -> str:
    return str((spec.get("workload") or {}).get("kind") or "Pod")


def is_once(step: Obj, kind: str) -> bool:
    """Whether a step runs once per revision (in a Job) rather than in every Pod: `once` when set,
    else true for migrations of a Deployment or StatefulSet."""
    if kind == "Pod":
        return False
    if "once" in step:
        return bool(step["once"])
    return "migration" in step


def parse_time(value: str | None) -> dt.datetime | None:
    """A Kubernetes timestamp ("2026-11-22T10:00:00Z") as an aware datetime; None stays None."""
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
