"""Expands an InitPipeline into what runs it (pure: no cluster access): its Pod, Deployment or
StatefulSet, its once-steps Job, the revisions, and every step's container and arguments."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

from ..spec import names, views
from ..spec.names import Obj
from ..spec.views import step_kind
from .pod_status import is_sidecar

# Where built-in steps find their inputs inside the runner container.
RUN_DIR = "/var/run/initpipeline"
CA_FILE = f"{RUN_DIR}/ca/ca.crt"
SQL_DIR = f"{RUN_DIR}/sql"
OUT_DIR = f"{RUN_DIR}/out"
OBJECTS_DIR = f"{RUN_DIR}/objects"  # waitForObject: the downward API file of the objects-met annotation
OBJECTS_VOLUME = "ipl-objects"
DATABASE_URL_ENV = "INITPIPELINE_DATABASE_URL"
RUNNER_UID = 65532
STEP_VOLUME_PREFIX = "ipl-"  # the volumes that the steps bring (scratch space, a CA, SQL files)
REVISION_LENGTH = 7  # "<name>-once-<revision>" stays a 63-character Job name for a 50-character pipeline
ROLE_APP, ROLE_ONCE, ROLE_AFTER = "app", "once", "after"
# When a step runs, for what its program is told: no rollout (kind Pod), or before or after a rollout
NO_ROLLOUT, BEFORE_ROLLOUT, AFTER_ROLLOUT = "none", names.RUN_BEFORE_ROLLOUT, names.RUN_AFTER_ROLLOUT
# What a once-steps Job's Pod takes over from the app's template: where and as whom it runs.
JOB_POD_FIELDS = ("serviceAccountName", "automountServiceAccountToken", "imagePullSecrets", "nodeSelector",
                  "affinity", "tolerations", "securityContext", "priorityClassName", "runtimeClassName",
                  "dnsPolicy", "dnsConfig", "hostAliases", "enableServiceLinks")

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
    return str(spec.get("restartPolicy") or template_spec.get("restartPolicy") or names.DEFAULT_RESTART_POLICY)


def revision(spec: Obj) -> str:
    """What the Pods run, as a short hash: the steps and the template, not the replicas, so that
    a scale (which bumps the generation) is not a new revision and runs no once-step again."""
    basis = {"steps": spec.get("steps"), "template": spec.get("template"),
             "restartPolicy": spec.get("restartPolicy")}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:REVISION_LENGTH]


def once_job_name(pipeline_name: str, rev: str) -> str:
    """The once-steps Job of a revision; an attached workload's longer revision is shortened to a digest."""
    if len(rev) > REVISION_LENGTH:
        rev = hashlib.sha256(rev.encode()).hexdigest()[:REVISION_LENGTH]
    return f"{pipeline_name}-once-{rev}"


def after_job_name(pipeline_name: str, rev: str) -> str:
    """The Job of a revision's after-rollout steps."""
    return f"{pipeline_name}-after-{rev}"


def pod_steps(spec: Obj) -> list[Obj]:
    """The steps that run in every Pod, as init containers."""
    kind = views.workload_kind(spec)
    return [s for s in spec["steps"] if not views.is_once(s, kind)]


def job_steps(spec: Obj) -> list[Obj]:
    """The steps of the once-steps Job: the once-steps that run before the rollout, and before the last of
    them the waits and sidecars that they may depend on (a database must be up, a proxy running). Empty: no Job."""
    kind = views.workload_kind(spec)
    return _with_dependencies(spec["steps"], lambda s: views.is_once(s, kind) and not views.after_rollout(s))


def after_steps(spec: Obj) -> list[Obj]:
    """The steps of the after-rollout Job: the steps with `when: AfterRollout`, and the waits and sidecars
    before the last of them. Empty: no such Job."""
    return _with_dependencies(spec["steps"], views.after_rollout)


def _with_dependencies(steps: list[Obj], chosen: Callable[[Obj], bool]) -> list[Obj]:
    last = max((i for i, s in enumerate(steps) if chosen(s)), default=-1)
    return [s for s in steps[:last + 1] if chosen(s) or step_kind(s) in names.WAIT_KINDS or is_sidecar(s)]


def selector_labels(pipeline: Obj) -> dict[str, str]:
    """What selects a pipeline's Pods: its uid; `render`, which has none, shows the name instead."""
    meta = pipeline["metadata"]
    if meta.get("uid"):
        return {names.LABEL_UID: meta["uid"]}
    return {names.LABEL_PIPELINE: meta["name"]}


def selector_text(pipeline: Obj) -> str:
    """The selector of a workload pipeline's Pods as a label selector string (status.selector)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(pipeline).items())


def _own_labels(pipeline: Obj, role: str, rev: str | None = None) -> dict[str, str]:
    meta = pipeline["metadata"]
    labels = {names.LABEL_PIPELINE: meta["name"], names.LABEL_MANAGED_BY: names.MANAGED_BY, names.LABEL_ROLE: role,
              **selector_labels(pipeline)}
    if rev:
        labels[names.LABEL_REVISION] = rev
    return labels


def init_pod_spec(pod_spec: Obj, steps: list[Obj], runner_image: str, keep_volumes: bool = True,
                   app_containers: list[Obj] | None = None, phase: str = BEFORE_ROLLOUT) -> Obj:
    """A Pod spec with one init container per step, and the volumes they need. Without
    keep_volumes only the template's volumes that the steps mount are kept (the Job's case).
    app_containers: where imageFrom looks (default: pod_spec's own containers). phase: when the steps run,
    before a rollout (an older version may still serve), after it, or with no rollout (kind Pod)."""
    volumes: list[Obj] = []
    init_containers: list[Obj] = []
    apps = app_containers if app_containers is not None else pod_spec.get("containers") or []
    job_volumes = None if keep_volumes else {str(v.get("name")) for v in _objects(pod_spec.get("volumes"))}
    for index, step in enumerate(with_app_images(steps, apps, job_volumes)):
        container, extra_volumes = build_step_container(step, index, runner_image, phase)
        init_containers.append(container)
        volumes.extend(extra_volumes)
    if any(step_kind(s) in names.BUILTIN_KINDS for s in steps):
        volumes.append({"name": f"{STEP_VOLUME_PREFIX}tmp", "emptyDir": {"sizeLimit": "64Mi"}})
    if any(step_kind(s) == "waitForObject" for s in steps):
        # the kubelet rewrites the file when the annotation changes, also while an init container runs
        volumes.append({"name": OBJECTS_VOLUME, "downwardAPI": {"items": [{
            "path": "met", "fieldRef": {"fieldPath": f"metadata.annotations['{names.ANNOTATION_OBJECTS_MET}']"}}]}})
    template_volumes = list(pod_spec.get("volumes", []))
    if not keep_volumes:
        mounted = {m.get("name") for c in init_containers for m in c.get("volumeMounts") or []}
        template_volumes = [v for v in template_volumes if v.get("name") in mounted]
    # the steps always win: a template's own initContainers (refused by validation) never replace them
    out = {**pod_spec, "initContainers": init_containers}
    out.pop("volumes", None)
    if template_volumes or volumes:
        out["volumes"] = template_volumes + volumes
    return out


def build_pod(pipeline: Obj, runner_image: str = names.DEFAULT_RUNNER_IMAGE) -> Obj:
    """The Pod for a validated InitPipeline of kind Pod: one init container per step, in order.

    Owner references are left to the caller (kopf.adopt), so that `render`
    output can be applied anywhere.
    """
    meta, spec = pipeline["metadata"], pipeline["spec"]
    name, generation = meta["name"], int(meta.get("generation", 1))
    template = copy.deepcopy(spec["template"])
    tmeta: Obj = template.get("metadata", {}) or {}
    pod_spec = init_pod_spec(template.get("spec", {}), spec["steps"], runner_image, phase=NO_ROLLOUT)
    pod_spec["restartPolicy"] = restart_policy(spec)

    labels = {**(tmeta.get("labels") or {}), **_own_labels(pipeline, ROLE_APP),
              names.LABEL_GENERATION: str(generation)}
    metadata: Obj = {"name": pod_name(name, generation), "labels": labels}
    if meta.get("namespace"):
        metadata["namespace"] = meta["namespace"]
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def _object_meta(pipeline: Obj, name: str, labels: dict[str, str]) -> Obj:
    metadata: Obj = {"name": name, "labels": labels}
    if pipeline["metadata"].get("namespace"):
        metadata["namespace"] = pipeline["metadata"]["namespace"]
    return metadata


def build_workload(pipeline: Obj, runner_image: str = names.DEFAULT_RUNNER_IMAGE) -> Obj:
    """The Deployment or StatefulSet for a validated InitPipeline: the template with the every-Pod
    steps as init containers. Its Pods carry the revision, which tells the status which are current."""
    meta, spec = pipeline["metadata"], pipeline["spec"]
    workload: Obj = spec.get("workload") or {}
    kind = views.workload_kind(spec)
    rev = revision(spec)
    template = copy.deepcopy(spec["template"])
    tmeta: Obj = template.get("metadata", {}) or {}
    pod_spec = init_pod_spec(template.get("spec", {}), pod_steps(spec), runner_image)
    pod_spec["restartPolicy"] = "Always"
    pod_meta: Obj = {"labels": {**(tmeta.get("labels") or {}), **_own_labels(pipeline, ROLE_APP, rev)}}
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    body: Obj = {
        "replicas": 1 if workload.get("replicas") is None else int(workload["replicas"]),
        "selector": {"matchLabels": selector_labels(pipeline)},
        "template": {"metadata": pod_meta, "spec": pod_spec},
    }
    fields = names.DEPLOYMENT_FIELDS if kind == "Deployment" else names.STATEFULSET_FIELDS
    body.update({key: copy.deepcopy(workload[key]) for key in fields if key in workload})
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": _object_meta(pipeline, meta["name"], _own_labels(pipeline, ROLE_APP, rev)),
            "spec": body}


def build_once_job(pipeline: Obj, runner_image: str = names.DEFAULT_RUNNER_IMAGE, rev: str | None = None) -> Obj | None:
    """The Job that runs the once-steps of this revision before its rollout, or None when there are none.

    One Pod, never retried and never replaced while a Pod of it still exists (podReplacementPolicy
    Failed), so that the steps cannot overlap themselves. Its init containers are the steps; its
    one container only marks the end.
    """
    rev = rev or revision(pipeline["spec"])
    name = once_job_name(pipeline["metadata"]["name"], rev)
    return _steps_job(pipeline, job_steps(pipeline["spec"]), name, ROLE_ONCE, rev, BEFORE_ROLLOUT, runner_image)


def build_after_job(pipeline: Obj, runner_image: str = names.DEFAULT_RUNNER_IMAGE) -> Obj | None:
    """The Job that runs this revision's after-rollout steps once it is rolled out, or None when there are
    none; made as the once-steps Job is."""
    rev = revision(pipeline["spec"])
    name = after_job_name(pipeline["metadata"]["name"], rev)
    return _steps_job(pipeline, after_steps(pipeline["spec"]), name, ROLE_AFTER, rev, AFTER_ROLLOUT, runner_image)


def _steps_job(pipeline: Obj, steps: list[Obj], name: str, role: str, rev: str, phase: str,
               runner_image: str) -> Obj | None:
    spec = pipeline["spec"]
    if not steps:
        return None
    template = copy.deepcopy(spec["template"])
    app_spec: Obj = template.get("spec", {})
    pod_spec = {key: app_spec[key] for key in JOB_POD_FIELDS if key in app_spec}
    pod_spec = init_pod_spec({**pod_spec, "volumes": app_spec.get("volumes", [])}, steps, runner_image,
                              keep_volumes=False, app_containers=app_spec.get("containers") or [], phase=phase)
    pod_spec["restartPolicy"] = "Never"
    pod_spec["containers"] = [{
        "name": names.JOB_DONE_CONTAINER, "image": runner_image, "imagePullPolicy": "IfNotPresent",
        "command": ["initpipeline", "--version"],
        "resources": copy.deepcopy(names.DEFAULT_STEP_RESOURCES),
        "securityContext": copy.deepcopy(RUNNER_SECURITY_CONTEXT),
    }]
    labels = _own_labels(pipeline, role, rev)
    job_spec: Obj = {
        "parallelism": 1, "completions": 1, "backoffLimit": 0, "podReplacementPolicy": "Failed",
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }
    if spec.get("activeDeadlineSeconds"):
        job_spec["activeDeadlineSeconds"] = int(spec["activeDeadlineSeconds"])
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": _object_meta(pipeline, name, labels), "spec": job_spec}


def render(pipeline: Obj, runner_image: str = names.DEFAULT_RUNNER_IMAGE) -> list[Obj]:
    """Everything a validated pipeline expands into: its Pod, or its workload and once-steps Job."""
    if views.workload_kind(pipeline["spec"]) == "Pod":
        return [build_pod(pipeline, runner_image)]
    jobs = [job for job in (build_once_job(pipeline, runner_image), build_after_job(pipeline, runner_image)) if job]
    return [build_workload(pipeline, runner_image), *jobs]


# What a step with imageFrom takes from its app container, so that it runs as the app does (Django's settings
# module, a SECRET_KEY from a Secret, a settings file from a ConfigMap mount, the user the image runs as).
# Never the app's command, ports, probes or lifecycle: the step runs its own.
INHERITED_FIELDS = ("env", "envFrom", "volumeMounts", "workingDir", "securityContext", "resources")


def with_app_images(steps: list[Obj], app_containers: list[Obj], job_volumes: set[str] | None = None) -> list[Obj]:
    """The steps with each `imageFrom: <app container>` (container and migration steps) turned into that
    container's image, and its imagePullPolicy where the step sets none: the step runs the app's own
    version (its migrations, its tools), and a new app image is a new revision. Unless the step sets
    `inheritSettings: false` it also runs with the app container's settings (INHERITED_FIELDS), its own
    values added after them and winning on a clash. job_volumes: in a Job, the volumes it has; an app mount
    of another volume (a StatefulSet's claim template) cannot follow and is left out."""
    apps = {c.get("name"): c for c in app_containers}
    out = []
    for step in steps:
        kind = step_kind(step)
        body = step.get(kind)
        if kind not in ("container", "migration") or not isinstance(body, dict) or "imageFrom" not in body:
            out.append(step)
            continue
        app = apps[body["imageFrom"]]  # validated: an app container of the template
        resolved = {k: v for k, v in body.items() if k not in ("imageFrom", "inheritSettings")}
        resolved["image"] = app["image"]
        if "imagePullPolicy" in app:
            resolved.setdefault("imagePullPolicy", app["imagePullPolicy"])
        if body.get("inheritSettings", True):
            resolved.update(inherited_settings(app, resolved, job_volumes))
        out.append({**step, kind: resolved})
    return out


def inherited_settings(app: Obj, own: Obj, job_volumes: set[str] | None = None) -> Obj:
    """The app container's settings under the step's own (own: the step's container fields). The app's
    fields are as its author wrote them (the API server checks them when a Pod is made): what is not a
    list of objects is passed over here, and the API server names it then."""
    mounts = [m for m in _objects(app.get("volumeMounts"))
              if job_volumes is None or (isinstance(m.get("name"), str) and m["name"] in job_volumes)]
    merged: Obj = {
        "env": merge_by(_objects(app.get("env")), _objects(own.get("env")), "name"),
        "envFrom": copy.deepcopy(_objects(app.get("envFrom")) + _objects(own.get("envFrom"))),
        "volumeMounts": merge_by(mounts, _objects(own.get("volumeMounts")), "mountPath"),
    }
    for key in ("workingDir", "securityContext", "resources"):
        if key in own or key in app:
            merged[key] = copy.deepcopy(own[key] if key in own else app[key])
    return {key: value for key, value in merged.items() if value not in ([], None)}


def _objects(value: Any) -> list[Obj]:
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def merge_by(base: list[Obj], own: list[Obj], key: str) -> list[Obj]:
    """base's entries, in order, but those that own has an entry of the same key for; then own's: a later
    entry wins, and the API server sees each name (env) or path (mounts) once."""
    taken = {str(entry.get(key)) for entry in own}
    return [copy.deepcopy(e) for e in base if str(e.get(key)) not in taken] + [copy.deepcopy(e) for e in own]


def build_step_container(step: Obj, index: int, runner_image: str,
                         phase: str = BEFORE_ROLLOUT) -> tuple[Obj, list[Obj]]:
    """The init container for one step and any volumes it needs (phase: see init_pod_spec)."""
    kind = step_kind(step)
    if kind == "container":
        as_given: Obj = {"name": step["name"], **copy.deepcopy(step["container"])}
        as_given["name"] = step["name"]
        as_given.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
        return as_given, []
    body = step[kind]
    if kind == "migration" and "image" in body:
        return _custom_migration(step, body), []
    builders = {"waitForService": _wait_args, "configDownload": _download_args, "gitClone": _git_args}
    if kind == "waitForObject":
        args, env, mounts, volumes = _object_wait_args(body, step["name"])
    elif kind == "migration":
        args, env, mounts, volumes = _migrate_args(body, index, phase)
    else:
        args, env, mounts, volumes = builders[kind](body, index)
    container: Obj = {
        "name": step["name"],
        "image": step.get("image", runner_image),
        "imagePullPolicy": "IfNotPresent",
        "command": ["initpipeline", "step", *args],
        "env": env,
        "volumeMounts": [{"name": f"{STEP_VOLUME_PREFIX}tmp", "mountPath": "/tmp"}, *mounts],
        "resources": copy.deepcopy(step.get("resources", names.DEFAULT_STEP_RESOURCES)),
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
    for h, header in enumerate(body.get("headers", [])):
        if "value" in header:
            args += ["--header", f"{header['name']}: {header['value']}"]
        else:
            var = f"INITPIPELINE_HEADER_{h}"
            env.append({"name": var, "valueFrom": {"secretKeyRef": dict(header["valueFrom"]["secretKeyRef"])}})
            args += ["--header-from-env", f"{header['name']}={var}"]
    ca_args, ca_mounts, ca_volumes = _ca_bundle(body, index)
    return args + ca_args, env, ca_mounts, ca_volumes


def _ca_bundle(body: Obj, index: int) -> tuple[list[str], list[Obj], list[Obj]]:
    """A step's caBundle: its volume, mounted at CA_FILE, and --ca-file."""
    ca = body.get("caBundle")
    if not ca:
        return [], [], []
    volume_name = f"{STEP_VOLUME_PREFIX}s{index}-ca"
    if "secretKeyRef" in ca:
        ref = ca["secretKeyRef"]
        source: Obj = {"secret": {"secretName": ref["name"], "items": [{"key": ref["key"], "path": "ca.crt"}]}}
    else:
        ref = ca["configMapKeyRef"]
        source = {"configMap": {"name": ref["name"], "items": [{"key": ref["key"], "path": "ca.crt"}]}}
    return (["--ca-file", CA_FILE], [{"name": volume_name, "mountPath": f"{RUN_DIR}/ca", "readOnly": True}],
            [{"name": volume_name, **source}])


def _wait_args(body: Obj, index: int) -> Parts:
    args = ["wait"]
    urls: list[Obj] = []  # the database URLs hold passwords: env vars from their Secrets, never arguments
    for t, target in enumerate(body["targets"]):
        service = next((k for k in ("postgres", "mysql", "redis") if k in target), None)
        if service is not None:
            var = f"INITPIPELINE_TARGET_{t}_URL"
            urls.append({"name": var, "valueFrom": {"secretKeyRef": dict(target[service]["urlFrom"]["secretKeyRef"])}})
            table = target[service].get("table")
            args += [f"--{service}", f"{var}:{table}" if table else var]
        elif "dns" in target:
            args += ["--dns", target["dns"]]
        elif "url" in target and "expectJSON" in target:
            expect = target["expectJSON"]
            args += ["--http-json", target["url"], expect["path"], json.dumps(list(expect["in"]))]
        elif "url" in target:
            args += ["--http", target["url"]]
        else:
            args += ["--tcp", f"{target['host']}:{target['port']}"]
    args += ["--timeout", str(body.get("timeoutSeconds", names.DEFAULT_WAIT_TIMEOUT))]
    args += ["--max-interval", str(body.get("maxIntervalSeconds", names.DEFAULT_WAIT_MAX_INTERVAL))]
    if body.get("expectStatus"):
        args += ["--expect-status", ",".join(str(code) for code in body["expectStatus"])]
    http_args, env, mounts, volumes = _http_options(body, index)
    return args + http_args, urls + env, mounts, volumes


def object_condition(body: Obj) -> tuple[str, str]:
    """The (type, status) of status.conditions that a waitForObject step waits for."""
    condition = body.get("condition") or {}
    ctype = condition.get("type") or names.DEFAULT_OBJECT_CONDITIONS.get((body["apiVersion"], body["kind"]), "")
    return str(ctype), str(condition.get("status", "True"))


def _object_wait_args(body: Obj, step_name: str) -> Parts:
    ctype, cstatus = object_condition(body)
    args = ["wait-object", "--met-file", f"{OBJECTS_DIR}/met", "--step", step_name,
            "--object", f"{body['kind']} {body['name']}", "--condition", f"{ctype}={cstatus}",
            "--timeout", str(body.get("timeoutSeconds", names.DEFAULT_OBJECT_WAIT_TIMEOUT))]
    return args, [], [{"name": OBJECTS_VOLUME, "mountPath": OBJECTS_DIR, "readOnly": True}], []


def _migrate_args(body: Obj, index: int, phase: str) -> Parts:
    volume_name = f"{STEP_VOLUME_PREFIX}s{index}-sql"
    args = [
        "migrate", "--sql-dir", SQL_DIR, "--database-url-env", DATABASE_URL_ENV,
        "--runner-lock-timeout", str(body.get("lockTimeoutSeconds", names.DEFAULT_LOCK_TIMEOUT)),
        "--connect-timeout", str(body.get("connectTimeoutSeconds", names.DEFAULT_CONNECT_TIMEOUT)),
        "--table-lock-timeout", str(body["sql"].get("tableLockTimeoutSeconds", names.DEFAULT_TABLE_LOCK_TIMEOUT)),
        "--lock-retry-budget", str(body["sql"].get("lockRetryBudgetSeconds", names.DEFAULT_LOCK_RETRY_BUDGET)),
    ]
    if body["sql"].get("statementTimeoutSeconds"):
        args += ["--statement-timeout", str(body["sql"]["statementTimeoutSeconds"])]
    # an older version serves before a rollout's end; kind Pod has no rollout, so its runner applies every
    # file at once (as after a rollout), and says what would break
    args += ["--lint", names.LINT_POLICIES[body["sql"].get("lint") or ("Warn" if phase == NO_ROLLOUT else "Block")]]
    if phase != BEFORE_ROLLOUT:
        args += ["--when", AFTER_ROLLOUT]
    # Without these the runner detects the layout and uses that layout's own history table.
    for option, value in (("--layout", body["sql"].get("layout")), ("--history-table", body.get("historyTable")),
                          ("--to", body["sql"].get("rollbackTo"))):
        if value is not None:
            args += [option, str(value)]
    env = [_database_url_env(body, DATABASE_URL_ENV)]
    ca_args, ca_mounts, ca_volumes = _ca_bundle(body, index)
    volumes = [{"name": volume_name, "configMap": {"name": body["sql"]["configMapRef"]["name"]}}, *ca_volumes]
    mounts = [{"name": volume_name, "mountPath": SQL_DIR, "readOnly": True}, *ca_mounts]
    return args + ca_args, env, mounts, volumes


def _download_args(body: Obj, index: int) -> Parts:
    args = ["download"]
    for item in body["files"]:
        args += ["--url", item["url"], "--dest", f"{OUT_DIR}/{item['path']}"]
        if item.get("sha256"):
            args += ["--sha256", item["sha256"].lower()]
        if item.get("validate"):
            args += ["--validate", item["validate"]]
        for field, option in (("extract", "--extract"), ("format", "--format"), ("mode", "--mode")):
            if item.get(field):
                args += [option, str(item[field])]
        if item.get("requireKeys"):
            args += ["--require-keys", ",".join(item["requireKeys"])]
    args += ["--timeout", str(body.get("timeoutSeconds", names.DEFAULT_DOWNLOAD_TIMEOUT))]
    args += ["--max-size", str(body.get("maxSizeBytes", names.DEFAULT_DOWNLOAD_MAX_BYTES))]
    http_args, env, mounts, volumes = _http_options(body, index)
    mounts = [{"name": body["volume"], "mountPath": OUT_DIR}, *mounts]
    return args + http_args, env, mounts, volumes


def _git_args(body: Obj, _index: int) -> Parts:
    args = ["git-clone", "--repository", body["repository"], "--dest", f"{OUT_DIR}/{body['path']}",
            "--depth", str(body.get("depth", names.DEFAULT_GIT_DEPTH)),
            "--timeout", str(body.get("timeoutSeconds", names.DEFAULT_GIT_TIMEOUT))]
    for field, option in (("ref", "--ref"), ("commit", "--commit")):
        if body.get(field):
            args += [option, str(body[field])]
    env: list[Obj] = []
    if body.get("tokenFrom"):
        env.append({"name": "INITPIPELINE_GIT_TOKEN",
                    "valueFrom": {"secretKeyRef": dict(body["tokenFrom"]["secretKeyRef"])}})
        args += ["--token-env", "INITPIPELINE_GIT_TOKEN"]
    return args, env, [{"name": body["volume"], "mountPath": OUT_DIR}], []


def _database_url_env(body: Obj, var: str) -> Obj:
    return {"name": var, "valueFrom": {"secretKeyRef": dict(body["databaseUrlFrom"]["secretKeyRef"])}}


def _custom_migration(step: Obj, body: Obj) -> Obj:
    """A user's migration tool (Alembic, Flyway, manage.py...) with the database URL wired in, added after
    every other variable (the app's, the step's own) so that it is the one the tool reads."""
    url_env = _database_url_env(body, body.get("databaseUrlEnv", names.DEFAULT_DATABASE_URL_ENV))
    container: Obj = {
        "name": step["name"],
        "image": body["image"],
        "env": merge_by(body.get("env") or [], [url_env], "name"),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if "imagePullPolicy" in body:  # the app container's, with imageFrom
        container["imagePullPolicy"] = body["imagePullPolicy"]
    for key in ("command", "args"):
        if body.get(key) is not None:
            container[key] = list(body[key])
    for key in ("envFrom", "volumeMounts", "workingDir", "securityContext"):
        if body.get(key):
            container[key] = copy.deepcopy(body[key])
    resources = step.get("resources") or body.get("resources")  # the step's own, else the app's
    if resources:
        container["resources"] = copy.deepcopy(resources)
    return container
