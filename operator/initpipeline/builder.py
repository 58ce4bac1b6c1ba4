"""Expands an InitPipeline into the Pod that runs it (pure: no cluster access)."""

from __future__ import annotations

import copy

from . import api
from .api import Obj, step_kind

# Where built-in steps find their inputs inside the runner container.
RUN_DIR = "/var/run/initpipeline"
CA_FILE = f"{RUN_DIR}/ca/ca.crt"
SQL_DIR = f"{RUN_DIR}/sql"
OUT_DIR = f"{RUN_DIR}/out"
DATABASE_URL_ENV = "INITPIPELINE_DATABASE_URL"
RUNNER_UID = 65532

RUNNER_SECURITY_CONTEXT: Obj = {
    "runAsNonRoot": True,
    "runAsUser": RUNNER_UID,
    "runAsGroup": RUNNER_UID,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod_name(pipeline_name: str, generation: int) -> str:
    return f"{pipeline_name}-{generation}"


def restart_policy(spec: Obj) -> str:
    template_spec = spec.get("template", {}).get("spec", {})
    return str(spec.get("restartPolicy") or template_spec.get("restartPolicy") or api.DEFAULT_RESTART_POLICY)


def build_pod(pipeline: Obj, runner_image: str = api.DEFAULT_RUNNER_IMAGE) -> Obj:
    """The Pod for a validated InitPipeline: one init container per step, in order.

    Owner references are left to the caller (kopf.adopt), so that `render`
    output can be applied anywhere.
    """
    meta, spec = pipeline["metadata"], pipeline["spec"]
    name, generation = meta["name"], int(meta.get("generation", 1))
    template = copy.deepcopy(spec["template"])
    pod_spec: Obj = template.get("spec", {})
    tmeta: Obj = template.get("metadata", {}) or {}

    volumes: list[Obj] = list(pod_spec.get("volumes", []))
    init_containers: list[Obj] = []
    for index, step in enumerate(spec["steps"]):
        container, extra_volumes = build_step_container(step, index, runner_image)
        init_containers.append(container)
        volumes.extend(extra_volumes)
    if any(step_kind(s) in api.BUILTIN_KINDS for s in spec["steps"]):
        volumes.append({"name": "ipl-tmp", "emptyDir": {"sizeLimit": "64Mi"}})

    # the steps always win: a template's own initContainers (refused by validation) never replace them
    pod_spec = {**pod_spec, "initContainers": init_containers, "restartPolicy": restart_policy(spec)}
    if volumes:
        pod_spec["volumes"] = volumes

    labels = dict(tmeta.get("labels") or {})
    labels.update({
        api.LABEL_PIPELINE: name,
        api.LABEL_GENERATION: str(generation),
        api.LABEL_MANAGED_BY: api.MANAGED_BY,
    })
    metadata: Obj = {"name": pod_name(name, generation), "labels": labels}
    if meta.get("namespace"):
        metadata["namespace"] = meta["namespace"]
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def build_step_container(step: Obj, index: int, runner_image: str) -> tuple[Obj, list[Obj]]:
    """The init container for one step and any volumes it needs."""
    kind = step_kind(step)
    if kind == "container":
        as_given: Obj = {"name": step["name"], **copy.deepcopy(step["container"])}
        as_given["name"] = step["name"]
        as_given.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
        return as_given, []
    body = step[kind]
    if kind == "migration" and "image" in body:
        return _custom_migration(step, body), []
    builders = {"waitForService": _wait_args, "migration": _migrate_args, "configDownload": _download_args}
    args, env, mounts, volumes = builders[kind](body, index)
    container: Obj = {
        "name": step["name"],
        "image": step.get("image", runner_image),
        "imagePullPolicy": "IfNotPresent",
        "command": ["initpipeline", "step", *args],
        "env": env,
        "volumeMounts": [{"name": "ipl-tmp", "mountPath": "/tmp"}, *mounts],
        "resources": copy.deepcopy(step.get("resources", api.DEFAULT_STEP_RESOURCES)),
        "securityContext": copy.deepcopy(RUNNER_SECURITY_CONTEXT),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if not env:
        del container["env"]
    return container, volumes


Parts = tuple[list[str], list[Obj], list[Obj], list[Obj]]


def _http_options(body: Obj, index: int) -> Parts:
    """--header/--ca-file arguments; secret values travel as env vars, never as arguments."""
    args: list[str] = []
    env: list[Obj] = []
    mounts: list[Obj] = []
    volumes: list[Obj] = []
    for h, header in enumerate(body.get("headers", [])):
        if "value" in header:
            args += ["--header", f"{header['name']}: {header['value']}"]
        else:
            var = f"INITPIPELINE_HEADER_{h}"
            env.append({"name": var, "valueFrom": {"secretKeyRef": dict(header["valueFrom"]["secretKeyRef"])}})
            args += ["--header-from-env", f"{header['name']}={var}"]
    ca = body.get("caBundle")
    if ca:
        volume_name = f"ipl-s{index}-ca"
        if "secretKeyRef" in ca:
            ref = ca["secretKeyRef"]
            source: Obj = {"secret": {"secretName": ref["name"], "items": [{"key": ref["key"], "path": "ca.crt"}]}}
        else:
            ref = ca["configMapKeyRef"]
            source = {"configMap": {"name": ref["name"], "items": [{"key": ref["key"], "path": "ca.crt"}]}}
        volumes.append({"name": volume_name, **source})
        mounts.append({"name": volume_name, "mountPath": f"{RUN_DIR}/ca", "readOnly": True})
        args += ["--ca-file", CA_FILE]
    return args, env, mounts, volumes


def _wait_args(body: Obj, index: int) -> Parts:
    args = ["wait"]
    for target in body["targets"]:
        if "url" in target:
            args += ["--http", target["url"]]
        else:
            args += ["--tcp", f"{target['host']}:{target['port']}"]
    args += ["--timeout", str(body.get("timeoutSeconds", api.DEFAULT_WAIT_TIMEOUT))]
    args += ["--max-interval", str(body.get("maxIntervalSeconds", api.DEFAULT_WAIT_MAX_INTERVAL))]
    if body.get("expectStatus"):
        args += ["--expect-status", ",".join(str(code) for code in body["expectStatus"])]
    http_args, env, mounts, volumes = _http_options(body, index)
    return args + http_args, env, mounts, volumes


def _migrate_args(body: Obj, index: int) -> Parts:
    volume_name = f"ipl-s{index}-sql"
    args = [
        "migrate", "--sql-dir", SQL_DIR, "--database-url-env", DATABASE_URL_ENV,
        "--lock-timeout", str(body.get("lockTimeoutSeconds", api.DEFAULT_LOCK_TIMEOUT)),
        "--connect-timeout", str(body.get("connectTimeoutSeconds", api.DEFAULT_CONNECT_TIMEOUT)),
        "--history-table", body.get("historyTable", api.DEFAULT_HISTORY_TABLE),
    ]
    env = [_database_url_env(body, DATABASE_URL_ENV)]
    volumes = [{"name": volume_name, "configMap": {"name": body["sql"]["configMapRef"]["name"]}}]
    mounts = [{"name": volume_name, "mountPath": SQL_DIR, "readOnly": True}]
    return args, env, mounts, volumes


def _download_args(body: Obj, index: int) -> Parts:
    args = ["download"]
    for item in body["files"]:
        args += ["--url", item["url"], "--dest", f"{OUT_DIR}/{item['path']}"]
        if item.get("sha256"):
            args += ["--sha256", item["sha256"].lower()]
        if item.get("validate"):
            args += ["--validate", item["validate"]]
    args += ["--timeout", str(body.get("timeoutSeconds", api.DEFAULT_DOWNLOAD_TIMEOUT))]
    args += ["--max-size", str(body.get("maxSizeBytes", api.DEFAULT_DOWNLOAD_MAX_BYTES))]
    http_args, env, mounts, volumes = _http_options(body, index)
    mounts = [{"name": body["volume"], "mountPath": OUT_DIR}, *mounts]
    return args + http_args, env, mounts, volumes


def _database_url_env(body: Obj, var: str) -> Obj:
    return {"name": var, "valueFrom": {"secretKeyRef": dict(body["databaseUrlFrom"]["secretKeyRef"])}}


def _custom_migration(step: Obj, body: Obj) -> Obj:
    """A user's migration tool (Alembic, Flyway, manage.py...) with the database URL wired in."""
    container: Obj = {
        "name": step["name"],
        "image": body["image"],
        "env": [_database_url_env(body, body.get("databaseUrlEnv", api.DEFAULT_DATABASE_URL_ENV))],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    for key in ("command", "args"):
        if key in body:
            container[key] = list(body[key])
    if "resources" in step:
        container["resources"] = copy.deepcopy(step["resources"])
    return container

