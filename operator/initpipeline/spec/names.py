"""Names, labels, limits and defaults of the InitPipeline API: constants, shared by every part."""

from __future__ import annotations

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

LABEL_INJECT = f"{GROUP}/inject"
# The label by which each controller names the revision of the Pods it creates.
WORKLOAD_REVISION_LABELS = {"Deployment": "pod-template-hash", "StatefulSet": "controller-revision-hash"}
# Holds an attached Pod of a revision whose once-steps have not succeeded yet.
ONCE_GATE = f"{GROUP}/once-steps"
# Set by the admission policy (`injection: policy`) on a Pod it refuses; its validating half then refuses
# the Pod with this message, so the annotation is never stored.
ANNOTATION_REFUSED = f"{GROUP}/refused"
# waitForObject: the operator watches the object and, once its condition holds, names the step in this
# annotation of the pipeline's Pods; the step reads it through a downward API volume (no RBAC in the Pod).
ANNOTATION_OBJECTS_MET = f"{GROUP}/objects-met"
# The condition a waitForObject step waits for when it names none, by (apiVersion, kind).
DEFAULT_OBJECT_CONDITIONS = {("batch/v1", "Job"): "Complete", ("apps/v1", "Deployment"): "Available"}
MAX_SUCCEEDED_REVISIONS = 20  # of an attached workload, kept in status so a rollback runs nothing again
DEPLOYMENT_FIELDS = ("strategy", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds")
STATEFULSET_FIELDS = ("serviceName", "podManagementPolicy", "updateStrategy", "volumeClaimTemplates",
                      "minReadySeconds", "revisionHistoryLimit", "persistentVolumeClaimRetentionPolicy")

STEP_KINDS = ("waitForService", "waitForObject", "migration", "configDownload", "gitClone", "container")
BUILTIN_KINDS = ("waitForService", "waitForObject", "migration", "configDownload", "gitClone")
# The steps that wait, and so also run before the once-steps in their Job.
WAIT_KINDS = ("waitForService", "waitForObject")


DEFAULT_RUNNER_IMAGE = "initpipeline/initpipeline:0.1.0"
DEFAULT_RESTART_POLICY = "Always"

# Per-kind defaults; the CRD's descriptions quote the same numbers.
DEFAULT_WAIT_TIMEOUT = 300
DEFAULT_WAIT_MAX_INTERVAL = 1
DEFAULT_OBJECT_WAIT_TIMEOUT = 300
DEFAULT_DOWNLOAD_TIMEOUT = 300
DEFAULT_DOWNLOAD_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_GIT_TIMEOUT = 300
DEFAULT_GIT_DEPTH = 1
# The once-steps Job's own container (it only marks the end): no step may take its name
JOB_DONE_CONTAINER = "done"
# A step's `when`: before its revision's Pods start (the default), or once they all serve and no older one is left
BEFORE_ROLLOUT, AFTER_ROLLOUT = "BeforeRollout", "AfterRollout"
# The migration runner's --when: the files before the first marked after-rollout, or every pending one
RUN_BEFORE_ROLLOUT, RUN_AFTER_ROLLOUT = "before-rollout", "after-rollout"
# sql.lint's values, and the runner's --lint for each (not "Off", which YAML 1.1, kubectl's, reads as false)
LINT_POLICIES = {"Block": "block", "Warn": "warn", "Disabled": "off"}
DEFAULT_LOCK_TIMEOUT = 60  # the wait for another runner's migration lock
# Table locks: how long one statement of a migration waits for a lock, and how long the runner retries
# a file that gave way (the app's queries queue behind a waiting ALTER, so it must not wait long)
DEFAULT_TABLE_LOCK_TIMEOUT = 1
DEFAULT_LOCK_RETRY_BUDGET = 600
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
