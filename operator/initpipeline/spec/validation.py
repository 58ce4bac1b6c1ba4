"""Validation of an InitPipeline spec.

The CRD's OpenAPI schema and CEL rules reject the same inputs at `kubectl apply`
time; this module lets `initpipeline render` and the operator give the same
field-named errors without a cluster (tests/cases.py holds the shared bad cases, which
tests/unit/spec/test_validation.py and tests/e2e/test_api_validation.py run against both).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from .formats import (
    API_VERSION,
    COMMIT_ID,
    CONDITION_STATUSES,
    CONDITION_TYPE,
    DNS_LABEL,
    DNS_NAME,
    DNS_SUBDOMAIN,
    ENV_NAME,
    FILE_MODE,
    GIT_REF,
    GIT_URL,
    HEADER_NAME,
    JSON_PATH,
    KIND_NAME,
    MIGRATION_VERSION,
    RESTART_POLICIES,
    SERVICE_TARGETS,
    SHA256,
    SQL_IDENTIFIER,
    SQL_TABLE,
    VALIDATE_FORMATS,
    WRITE_FORMATS,
    is_http_url,
    is_safe_relative_path,
)
from .names import (
    ATTACH_KINDS,
    ATTACH_PLACEMENTS,
    DEFAULT_OBJECT_CONDITIONS,
    DEPLOYMENT_FIELDS,
    JOB_DONE_CONTAINER,
    MAX_PIPELINE_NAME,
    MAX_REPLICAS,
    MAX_STEPS,
    MIGRATION_LAYOUTS,
    RESERVED_LABEL_PREFIX,
    STATEFULSET_FIELDS,
    STEP_KINDS,
    WORKLOAD_KINDS,
    Obj,
)
from .views import is_once


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class _Checker:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, field: str, reason: str) -> None:
        self.errors.append(FieldError(field, reason))

    def obj(self, value: Any, field: str, required: bool = False) -> Obj | None:
        if value is None:
            if required:
                self.fail(field, "is required")
            return None
        if not isinstance(value, dict):
            self.fail(field, "must be an object")
            return None
        return value

    def lst(self, value: Any, field: str, min_items: int = 0, max_items: int = 256) -> list[Any]:
        if value is None:
            value = []
        if not isinstance(value, list):
            self.fail(field, "must be a list")
            return []
        if len(value) < min_items:
            self.fail(field, f"must have at least {min_items} item{'s' if min_items > 1 else ''}")
        if len(value) > max_items:
            self.fail(field, f"must have at most {max_items} items")
        return value

    def string(self, value: Any, field: str, required: bool = False, max_len: int = 2048) -> str | None:
        if value is None:
            if required:
                self.fail(field, "is required")
            return None
        if not isinstance(value, str):
            self.fail(field, "must be a string")
            return None
        if required and not value:
            self.fail(field, "must not be empty")
        if len(value) > max_len:
            self.fail(field, f"must be at most {max_len} characters")
        return str(value)

    def integer(self, value: Any, field: str, lo: int, hi: int) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(field, "must be an integer")
        elif not lo <= value <= hi:
            self.fail(field, f"must be between {lo} and {hi}, got {value}")

    def url(self, value: Any, field: str) -> None:
        text = self.string(value, field, required=True)
        if text and not is_http_url(text):
            self.fail(field, f"must be an http:// or https:// URL with a host, got {text!r}")

    def secret_key_ref(self, value: Any, field: str) -> None:
        ref = self.obj(value, field, required=True)
        if ref is not None:
            self.string(ref.get("name"), f"{field}.name", required=True, max_len=253)
            self.string(ref.get("key"), f"{field}.key", required=True, max_len=253)

    def unknown(self, value: Obj, field: str, allowed: tuple[str, ...]) -> None:
        for key in value:
            if key not in allowed:
                self.fail(f"{field}.{key}", f"unknown field (allowed: {', '.join(allowed)})")


def names_of(items: Any) -> set[str]:
    """The string `name`s of a list's objects; anything else in it is another check's to name."""
    return {item["name"] for item in items or () if isinstance(item, dict) and isinstance(item.get("name"), str)}


def validate_pipeline(body: Obj) -> list[FieldError]:
    """Every problem with an InitPipeline resource, each naming its field."""
    c = _Checker()
    metadata = c.obj(body.get("metadata"), "metadata", required=True) or {}
    name = c.string(metadata.get("name"), "metadata.name", required=True, max_len=MAX_PIPELINE_NAME)
    if name and not DNS_SUBDOMAIN.match(name):
        c.fail("metadata.name", "must be a DNS subdomain (lower case letters, digits, '-' and '.')")
    spec = c.obj(body.get("spec"), "spec", required=True)
    if spec is not None:
        _check_spec(c, spec)
    return c.errors


class _AnyName:
    """The volumes and containers of an attached workload's Pods, unknown until one is created: the
    webhook checks a step's references against each Pod then."""

    def __contains__(self, _name: object) -> bool:
        return True


def _check_attach(c: _Checker, spec: Obj) -> str:
    """spec.attach, instead of template and workload; returns the attached kind."""
    attach = c.obj(spec.get("attach"), "spec.attach") or {}
    c.unknown(attach, "spec.attach", ("kind", "name", "placement"))
    placement = attach.get("placement", "First")
    if placement not in ATTACH_PLACEMENTS:
        c.fail("spec.attach.placement", f"must be one of {', '.join(ATTACH_PLACEMENTS)}, got {placement!r}")
    kind = attach.get("kind")
    if kind not in ATTACH_KINDS:
        c.fail("spec.attach.kind", f"must be one of {', '.join(ATTACH_KINDS)}, got {kind!r}")
    name = c.string(attach.get("name"), "spec.attach.name", required=True, max_len=253)
    if name and not DNS_SUBDOMAIN.match(name):
        c.fail("spec.attach.name", f"must be the name of a {kind or 'workload'} (a DNS subdomain), got {name!r}")
    for key in ("template", "workload", "restartPolicy"):
        if key in spec:
            c.fail(f"spec.{key}", "must not be set with spec.attach: the attached workload's own Pods are used")
    return str(kind) if kind in ATTACH_KINDS else "Deployment"


def _check_spec(c: _Checker, spec: Obj) -> None:
    c.unknown(spec, "spec", ("steps", "template", "restartPolicy", "activeDeadlineSeconds", "workload", "attach"))
    if "attach" in spec:
        _check_steps(c, spec, _check_attach(c, spec), _AnyName(), _AnyName(), set())
        return
    template = c.obj(spec.get("template"), "spec.template", required=True) or {}
    pod_spec = c.obj(template.get("spec"), "spec.template.spec", required=True) or {}
    containers = c.lst(pod_spec.get("containers"), "spec.template.spec.containers", min_items=1, max_items=16)
    volumes = c.lst(pod_spec.get("volumes"), "spec.template.spec.volumes", max_items=64)
    volume_names = names_of(volumes)
    kind = _check_workload(c, spec)
    workload: Obj = spec["workload"] if isinstance(spec.get("workload"), dict) else {}
    claims = workload.get("volumeClaimTemplates")
    claim_names = names_of(t.get("metadata") for t in claims if isinstance(t, dict)) if isinstance(claims, list) \
        else set()
    _check_template(c, template, pod_spec, containers)
    _check_restart_policy(c, spec, pod_spec, kind)
    app_names = names_of(containers)
    c.integer(spec.get("activeDeadlineSeconds"), "spec.activeDeadlineSeconds", 1, 7 * 86400)
    _check_steps(c, spec, kind, app_names, volume_names | claim_names, claim_names)


def _check_template(c: _Checker, template: Obj, pod_spec: Obj, containers: list[Any]) -> None:
    tmeta = c.obj(template.get("metadata"), "spec.template.metadata") or {}
    for key in c.obj(tmeta.get("labels"), "spec.template.metadata.labels") or {}:
        if str(key).startswith(RESERVED_LABEL_PREFIX):
            c.fail(f"spec.template.metadata.labels.{key}",
                   f"labels under {RESERVED_LABEL_PREFIX} are the operator's own (they select its Pods)")
    for i, ct in enumerate(containers):
        field = f"spec.template.spec.containers[{i}]"
        if c.obj(ct, field, required=True) is not None:
            c.string(ct.get("name"), f"{field}.name", required=True, max_len=63)
            c.string(ct.get("image"), f"{field}.image", required=True, max_len=1024)
    if "initContainers" in pod_spec:
        c.fail("spec.template.spec.initContainers",
               "must not be set, not even empty: init containers are generated from spec.steps (use a container step)")


def _check_restart_policy(c: _Checker, spec: Obj, pod_spec: Obj, kind: str) -> None:
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in RESTART_POLICIES:
        c.fail("spec.restartPolicy", f"must be one of {', '.join(RESTART_POLICIES)}, got {policy!r}")
    template_policy = pod_spec.get("restartPolicy")
    if template_policy is not None and template_policy not in RESTART_POLICIES:
        c.fail("spec.template.spec.restartPolicy", f"must be one of {', '.join(RESTART_POLICIES)}")
    if policy and template_policy and policy != template_policy:
        c.fail("spec.restartPolicy", "conflicts with spec.template.spec.restartPolicy; set only one")
    if kind in ("Deployment", "StatefulSet") and (policy or template_policy or "Always") != "Always":
        c.fail("spec.restartPolicy" if policy else "spec.template.spec.restartPolicy",
               f"must be Always for a {kind}, whose controller restarts Pods itself")


def _check_steps(c: _Checker, spec: Obj, kind: str, app_names: Container[Any], volume_names: Container[Any],
                 claim_names: set[Any]) -> None:
    if "attach" in spec:
        c.integer(spec.get("activeDeadlineSeconds"), "spec.activeDeadlineSeconds", 1, 7 * 86400)
    steps = c.lst(spec.get("steps"), "spec.steps", min_items=1, max_items=MAX_STEPS)
    seen: set[str] = set()
    for i, step in enumerate(steps):
        field = f"spec.steps[{i}]"
        if c.obj(step, field, required=True) is None:
            continue
        name = c.string(step.get("name"), f"{field}.name", required=True, max_len=63)
        if name:
            if not DNS_LABEL.match(name):
                c.fail(f"{field}.name", f"must be a DNS label (lower case letters, digits and '-'), got {name!r}")
            if name in seen:
                c.fail(f"{field}.name", f"duplicate step name {name!r}")
            if name == JOB_DONE_CONTAINER:
                c.fail(f"{field}.name", f"{name!r} is the name of the once-steps Job's own container; choose another")
            if name in app_names and not isinstance(app_names, _AnyName):
                c.fail(f"{field}.name", f"{name!r} is also the name of an app container")
            seen.add(name)
        _check_step(c, step, field, volume_names)
        _check_once(c, step, field, kind, claim_names)
        for step_type in ("container", "migration"):
            source = (step.get(step_type) or {}).get("imageFrom") if isinstance(step.get(step_type), dict) else None
            if isinstance(source, str) and source not in app_names:
                c.fail(f"{field}.{step_type}.imageFrom", f"{source!r} is not the name of an app container in "
                                                         "spec.template.spec.containers")


def _check_workload(c: _Checker, spec: Obj) -> str:
    """spec.workload; returns its kind (Pod when absent or invalid)."""
    workload = c.obj(spec.get("workload"), "spec.workload")
    if workload is None:
        return "Pod"
    c.unknown(workload, "spec.workload", ("kind", "replicas", *sorted(set(DEPLOYMENT_FIELDS + STATEFULSET_FIELDS))))
    kind = workload.get("kind", "Pod")
    if kind not in WORKLOAD_KINDS:
        c.fail("spec.workload.kind", f"must be one of {', '.join(WORKLOAD_KINDS)}, got {kind!r}")
        return "Pod"
    c.integer(workload.get("replicas"), "spec.workload.replicas", 0, MAX_REPLICAS)
    if kind == "Pod" and workload.get("replicas", 1) != 1:
        c.fail("spec.workload.replicas", "a Pod workload runs exactly one Pod; use kind Deployment or StatefulSet")
    allowed = {"Pod": (), "Deployment": DEPLOYMENT_FIELDS, "StatefulSet": STATEFULSET_FIELDS}[kind]
    for key in (*DEPLOYMENT_FIELDS, *STATEFULSET_FIELDS):
        if key in workload and key not in allowed:
            owners = " and ".join(k for k, fields in (("Deployment", DEPLOYMENT_FIELDS),
                                                      ("StatefulSet", STATEFULSET_FIELDS)) if key in fields)
            c.fail(f"spec.workload.{key}", f"only applies to kind {owners}, not {kind}")
    for key in ("minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
        c.integer(workload.get(key), f"spec.workload.{key}", 0, 2**31 - 1)
    for key in ("strategy", "updateStrategy", "persistentVolumeClaimRetentionPolicy"):
        c.obj(workload.get(key), f"spec.workload.{key}")
    name = c.string(workload.get("serviceName"), "spec.workload.serviceName", max_len=63)
    if name and not DNS_LABEL.match(name):
        c.fail("spec.workload.serviceName", f"must be a DNS label, got {name!r}")
    policy = workload.get("podManagementPolicy")
    if policy is not None and policy not in ("OrderedReady", "Parallel"):
        c.fail("spec.workload.podManagementPolicy", f"must be OrderedReady or Parallel, got {policy!r}")
    claims = c.lst(workload.get("volumeClaimTemplates"), "spec.workload.volumeClaimTemplates", max_items=16)
    for i, claim in enumerate(claims):
        field = f"spec.workload.volumeClaimTemplates[{i}]"
        if c.obj(claim, field, required=True) is not None:
            meta = c.obj(claim.get("metadata"), f"{field}.metadata", required=True) or {}
            c.string(meta.get("name"), f"{field}.metadata.name", required=True, max_len=63)
    return str(kind)


def _check_once(c: _Checker, step: Obj, field: str, kind: str, claim_names: set[Any]) -> None:
    """`once` moves a step out of every Pod into one Job per revision."""
    if "once" not in step:
        return
    if not isinstance(step["once"], bool):
        c.fail(f"{field}.once", f"must be true or false, got {step['once']!r}")
        return
    if step["once"] and kind == "Pod":
        c.fail(f"{field}.once", "only applies to Deployment and StatefulSet workloads (a Pod runs each step once)")
    if step["once"] and not ("migration" in step or "container" in step):
        c.fail(f"{field}.once", "only migration and container steps can run once; "
                                "waiting and downloads are needed in every Pod")
    container: Obj = step["container"] if isinstance(step.get("container"), dict) else {}
    if step["once"] and container.get("restartPolicy") == "Always":
        c.fail(f"{field}.once", "a sidecar step (restartPolicy Always) runs beside every Pod, not once")
    if is_once(step, kind):
        for i, mount in enumerate(container.get("volumeMounts") or []):
            if isinstance(mount, dict) and isinstance(mount.get("name"), str) and mount["name"] in claim_names:
                c.fail(f"{field}.container.volumeMounts[{i}].name",
                       "a once-step runs in a Job, which has no volumeClaimTemplates")


def _check_step(c: _Checker, step: Obj, field: str, volume_names: Container[Any]) -> None:
    c.unknown(step, field, ("name", "image", "resources", "once", *STEP_KINDS))
    kinds = [k for k in STEP_KINDS if k in step]
    if len(kinds) != 1:
        found = ", ".join(kinds) if kinds else "none"
        c.fail(field, f"must set exactly one of {', '.join(STEP_KINDS)} (found: {found})")
        return
    kind = kinds[0]
    if kind == "container" and ("image" in step or "resources" in step):
        c.fail(field, "image and resources of a container step belong inside container")
    c.string(step.get("image"), f"{field}.image", max_len=1024)
    if "resources" in step:
        c.obj(step["resources"], f"{field}.resources")
    body = c.obj(step[kind], f"{field}.{kind}", required=True)
    if body is None:
        return
    checks = {
        "waitForService": _check_wait,
        "waitForObject": _check_object_wait,
        "migration": _check_migration,
        "configDownload": _check_download,
        "gitClone": _check_git,
        "container": _check_container,
    }
    checks[kind](c, body, f"{field}.{kind}", volume_names, str(step.get("name", "")))


def _check_http_options(c: _Checker, body: Obj, field: str) -> None:
    for i, header in enumerate(c.lst(body.get("headers"), f"{field}.headers", max_items=16)):
        hfield = f"{field}.headers[{i}]"
        if c.obj(header, hfield, required=True) is None:
            continue
        hname = c.string(header.get("name"), f"{hfield}.name", required=True, max_len=256)
        if hname and not HEADER_NAME.match(hname):
            c.fail(f"{hfield}.name", f"is not a valid HTTP header name: {hname!r}")
        has_value, has_from = "value" in header, "valueFrom" in header
        if has_value == has_from:
            c.fail(hfield, "must set exactly one of value, valueFrom")
        if has_value:
            value = c.string(header["value"], f"{hfield}.value", max_len=8192)
            if value is not None and ("\n" in value or "\r" in value):
                c.fail(f"{hfield}.value", "must not contain line breaks")
        if has_from:
            src = c.obj(header["valueFrom"], f"{hfield}.valueFrom", required=True)
            if src is not None:
                c.secret_key_ref(src.get("secretKeyRef"), f"{hfield}.valueFrom.secretKeyRef")
    _check_ca_bundle(c, body, field)


def _check_ca_bundle(c: _Checker, body: Obj, field: str) -> None:
    ca = c.obj(body.get("caBundle"), f"{field}.caBundle")
    if ca is not None:
        refs = [k for k in ("secretKeyRef", "configMapKeyRef") if k in ca]
        if len(refs) != 1:
            c.fail(f"{field}.caBundle", "must set exactly one of secretKeyRef, configMapKeyRef")
        for ref in refs:
            c.secret_key_ref(ca[ref], f"{field}.caBundle.{ref}")


def _check_wait(c: _Checker, body: Obj, field: str, _volumes: Container[Any], _step: str) -> None:
    c.unknown(body, field, ("targets", "timeoutSeconds", "maxIntervalSeconds", "expectStatus",
                            "headers", "caBundle"))
    c.integer(body.get("timeoutSeconds"), f"{field}.timeoutSeconds", 1, 86400)
    c.integer(body.get("maxIntervalSeconds"), f"{field}.maxIntervalSeconds", 1, 60)
    for i, code in enumerate(c.lst(body.get("expectStatus"), f"{field}.expectStatus", max_items=32)):
        c.integer(code, f"{field}.expectStatus[{i}]", 100, 599)
    _check_http_options(c, body, field)
    for i, target in enumerate(c.lst(body.get("targets"), f"{field}.targets", min_items=1, max_items=16)):
        _check_wait_target(c, target, f"{field}.targets[{i}]")


def _check_wait_target(c: _Checker, target: Any, tfield: str) -> None:
    if c.obj(target, tfield, required=True) is None:
        return
    c.unknown(target, tfield, ("host", "port", "url", "expectJSON", *SERVICE_TARGETS))
    kinds = [k for k in ("url", "host", *SERVICE_TARGETS) if k in target or (k == "host" and "port" in target)]
    if len(kinds) != 1:
        c.fail(tfield, "must set exactly one of url, host and port, postgres, mysql, redis or dns")
    elif kinds[0] in ("postgres", "mysql", "redis"):
        _check_service_target(c, target[kinds[0]], f"{tfield}.{kinds[0]}", kinds[0])
    elif kinds[0] == "dns":
        name = c.string(target["dns"], f"{tfield}.dns", required=True, max_len=253)
        if name and not DNS_NAME.match(name):
            c.fail(f"{tfield}.dns", f"must be a DNS name, got {name!r}")
    elif "url" in target:
        c.url(target["url"], f"{tfield}.url")
    else:
        _check_host_port(c, target, tfield)
    if "expectJSON" in target:
        if "url" not in target:
            c.fail(f"{tfield}.expectJSON", "only applies with url (an HTTP target)")
        _check_expect_json(c, target["expectJSON"], f"{tfield}.expectJSON")


def _check_host_port(c: _Checker, target: Obj, tfield: str) -> None:
    host = c.string(target.get("host"), f"{tfield}.host", required=True, max_len=253)
    if host and (":" in host or "/" in host or " " in host):
        c.fail(f"{tfield}.host", f"must be a host name or IP address, got {host!r}")
    if "port" not in target:
        c.fail(f"{tfield}.port", "is required with host")
    c.integer(target.get("port"), f"{tfield}.port", 1, 65535)


def _check_service_target(c: _Checker, value: Any, field: str, kind: str) -> None:
    """postgres, mysql or redis: the URL (with its password) from a Secret; the databases may name a table."""
    body = c.obj(value, field, required=True)
    if body is None:
        return
    c.unknown(body, field, ("urlFrom",) if kind == "redis" else ("urlFrom", "table"))
    source = c.obj(body.get("urlFrom"), f"{field}.urlFrom", required=True)
    if source is not None:
        c.unknown(source, f"{field}.urlFrom", ("secretKeyRef",))
        c.secret_key_ref(source.get("secretKeyRef"), f"{field}.urlFrom.secretKeyRef")
    table = c.string(body.get("table"), f"{field}.table", max_len=127)
    if table and not SQL_TABLE.match(table):
        c.fail(f"{field}.table", f"must be a table name or schema.table, got {table!r}")


def _check_expect_json(c: _Checker, value: Any, field: str) -> None:
    expect = c.obj(value, field, required=True)
    if expect is None:
        return
    c.unknown(expect, field, ("path", "in"))
    path = c.string(expect.get("path"), f"{field}.path", required=True, max_len=256)
    if path is not None and not JSON_PATH.match(path):
        c.fail(f"{field}.path", f"must be dotted keys such as status or data.items.0.state, got {path!r}")
    values = c.lst(expect.get("in"), f"{field}.in", min_items=1, max_items=16)
    if "in" not in expect:
        c.fail(f"{field}.in", "is required: the values that mean ready")
    for i, item in enumerate(values):
        c.string(item, f"{field}.in[{i}]", required=True, max_len=256)


def _check_object_wait(c: _Checker, body: Obj, field: str, _volumes: Container[Any], _step: str) -> None:
    """An object of the pipeline's namespace and the condition of its status to wait for."""
    c.unknown(body, field, ("apiVersion", "kind", "name", "condition", "timeoutSeconds"))
    api_version = c.string(body.get("apiVersion"), f"{field}.apiVersion", required=True, max_len=253)
    if api_version and not API_VERSION.match(api_version):
        c.fail(f"{field}.apiVersion", f"must be group/version or v1 (batch/v1, cert-manager.io/v1), "
                                      f"got {api_version!r}")
    kind = c.string(body.get("kind"), f"{field}.kind", required=True, max_len=63)
    if kind and not KIND_NAME.match(kind):
        c.fail(f"{field}.kind", f"must be a kind such as Job or Certificate, got {kind!r}")
    name = c.string(body.get("name"), f"{field}.name", required=True, max_len=253)
    if name and not DNS_SUBDOMAIN.match(name):
        c.fail(f"{field}.name", f"must be the name of an object (lower-case DNS subdomain), got {name!r}")
    c.integer(body.get("timeoutSeconds"), f"{field}.timeoutSeconds", 1, 86400)
    if "condition" not in body:
        if (api_version, kind) not in DEFAULT_OBJECT_CONDITIONS and api_version and kind:
            c.fail(f"{field}.condition", "is required: only a batch/v1 Job (Complete) and an apps/v1 Deployment "
                                         "(Available) have a default")
        return
    condition = c.obj(body["condition"], f"{field}.condition", required=True)
    if condition is None:
        return
    c.unknown(condition, f"{field}.condition", ("type", "status"))
    ctype = c.string(condition.get("type"), f"{field}.condition.type", required=True, max_len=316)
    if ctype and not CONDITION_TYPE.match(ctype):
        c.fail(f"{field}.condition.type", f"must be a condition type such as Ready or Complete, got {ctype!r}")
    status = condition.get("status", "True")
    if status not in CONDITION_STATUSES:
        c.fail(f"{field}.condition.status", f"must be one of True, False, Unknown, got {status!r}")


def _check_migration(c: _Checker, body: Obj, field: str, _volumes: Container[Any], _step: str) -> None:
    c.unknown(body, field, ("databaseUrlFrom", "sql", "image", "imageFrom", "command", "args", "databaseUrlEnv",
                            "lockTimeoutSeconds", "historyTable", "connectTimeoutSeconds", "caBundle",
                            *OWN_TOOL_FIELDS))
    src = c.obj(body.get("databaseUrlFrom"), f"{field}.databaseUrlFrom", required=True)
    if src is not None:
        c.secret_key_ref(src.get("secretKeyRef"), f"{field}.databaseUrlFrom.secretKeyRef")
    if sum(key in body for key in ("sql", "image", "imageFrom")) != 1:
        c.fail(field, "must set exactly one of sql (built-in runner), image or imageFrom (your own migration tool)")
    if "sql" in body:
        sql = c.obj(body["sql"], f"{field}.sql", required=True)
        if sql is not None:
            _check_sql(c, sql, f"{field}.sql")
        for key in ("command", "args", "databaseUrlEnv", *OWN_TOOL_FIELDS):
            if key in body:
                c.fail(f"{field}.{key}", "only applies with image or imageFrom (your own migration tool)")
    else:
        c.string(body.get("image"), f"{field}.image", max_len=1024)
        c.string(body.get("imageFrom"), f"{field}.imageFrom", max_len=63)
        for key in ("lockTimeoutSeconds", "historyTable", "connectTimeoutSeconds", "caBundle"):
            if key in body:
                c.fail(f"{field}.{key}", "only applies with sql (the built-in runner)")
        _check_own_settings(c, body, field)
    _check_ca_bundle(c, body, field)
    for key in ("command", "args"):
        for i, arg in enumerate(c.lst(body.get(key), f"{field}.{key}")):
            c.string(arg, f"{field}.{key}[{i}]", required=False, max_len=4096)
    env = c.string(body.get("databaseUrlEnv"), f"{field}.databaseUrlEnv", max_len=128)
    if env is not None and not ENV_NAME.match(env):
        c.fail(f"{field}.databaseUrlEnv", f"must be an environment variable name, got {env!r}")
    c.integer(body.get("lockTimeoutSeconds"), f"{field}.lockTimeoutSeconds", 0, 3600)
    c.integer(body.get("connectTimeoutSeconds"), f"{field}.connectTimeoutSeconds", 0, 3600)
    table = c.string(body.get("historyTable"), f"{field}.historyTable", max_len=127)
    if table is not None and not SQL_IDENTIFIER.match(table):
        c.fail(f"{field}.historyTable", "must be a lower-case SQL identifier, optionally schema-qualified")


# A migration with your own tool: the container settings it takes besides the app's (with imageFrom)
OWN_TOOL_FIELDS = ("env", "envFrom", "securityContext", "inheritSettings")


def _check_own_settings(c: _Checker, body: Obj, field: str) -> None:
    """env, envFrom and securityContext as a container has them (the API server checks the rest when the
    Pod is made); inheritSettings only where there is an app container to inherit from."""
    for i, var in enumerate(c.lst(body.get("env"), f"{field}.env", max_items=1024)):
        if c.obj(var, f"{field}.env[{i}]", required=True) is not None:
            name = c.string(var.get("name"), f"{field}.env[{i}].name", required=True, max_len=1024)
            if name is not None and not name.strip():
                c.fail(f"{field}.env[{i}].name", "must not be blank")
    for i, source in enumerate(c.lst(body.get("envFrom"), f"{field}.envFrom", max_items=256)):
        c.obj(source, f"{field}.envFrom[{i}]", required=True)
    c.obj(body.get("securityContext"), f"{field}.securityContext")
    _check_inherit(c, body, field)


def _check_inherit(c: _Checker, body: Obj, field: str) -> None:
    if "inheritSettings" not in body:
        return
    if not isinstance(body["inheritSettings"], bool):
        c.fail(f"{field}.inheritSettings", f"must be true or false, got {body['inheritSettings']!r}")
    elif "imageFrom" not in body:
        c.fail(f"{field}.inheritSettings", "only applies with imageFrom (settings come from that app container)")


def _check_sql(c: _Checker, sql: Obj, field: str) -> None:
    c.unknown(sql, field, ("configMapRef", "layout", "rollbackTo", "tableLockTimeoutSeconds",
                           "lockRetryBudgetSeconds", "statementTimeoutSeconds"))
    c.integer(sql.get("tableLockTimeoutSeconds"), f"{field}.tableLockTimeoutSeconds", 0, 3600)
    c.integer(sql.get("lockRetryBudgetSeconds"), f"{field}.lockRetryBudgetSeconds", 0, 86400)
    c.integer(sql.get("statementTimeoutSeconds"), f"{field}.statementTimeoutSeconds", 0, 86400)
    ref = c.obj(sql.get("configMapRef"), f"{field}.configMapRef", required=True)
    if ref is not None:
        c.string(ref.get("name"), f"{field}.configMapRef.name", required=True, max_len=253)
    layout = c.string(sql.get("layout"), f"{field}.layout", max_len=32)
    if layout is not None and layout not in MIGRATION_LAYOUTS:
        c.fail(f"{field}.layout", f"must be one of {', '.join(MIGRATION_LAYOUTS)}, got {layout!r}")
    target = c.string(sql.get("rollbackTo"), f"{field}.rollbackTo", max_len=64)
    if target is not None and not MIGRATION_VERSION.match(target):
        c.fail(f"{field}.rollbackTo", f"must be a version such as 3, 1.2 or 20240101120000 (0: undo all), "
                                      f"got {target!r}")
    if target is not None and layout == "plain":
        c.fail(f"{field}.rollbackTo", "the plain layout has no undo files to roll back with")


def _check_volume(c: _Checker, body: Obj, field: str, volumes: Container[Any]) -> None:
    """A step's `volume`: one of the Pod's (an attached workload's are checked when a Pod comes)."""
    volume = c.string(body.get("volume"), f"{field}.volume", required=True, max_len=63)
    if volume and volume not in volumes:
        c.fail(f"{field}.volume", f"{volume!r} is not a volume in spec.template.spec.volumes"
                                  " (or spec.workload.volumeClaimTemplates)")


def _check_download(c: _Checker, body: Obj, field: str, volumes: Container[Any], _step: str) -> None:
    c.unknown(body, field, ("volume", "files", "timeoutSeconds", "maxSizeBytes", "headers", "caBundle"))
    _check_volume(c, body, field, volumes)
    c.integer(body.get("timeoutSeconds"), f"{field}.timeoutSeconds", 1, 86400)
    c.integer(body.get("maxSizeBytes"), f"{field}.maxSizeBytes", 1, 1 << 40)
    _check_http_options(c, body, field)
    paths: set[str] = set()
    for i, item in enumerate(c.lst(body.get("files"), f"{field}.files", min_items=1, max_items=16)):
        ffield = f"{field}.files[{i}]"
        if c.obj(item, ffield, required=True) is None:
            continue
        c.unknown(item, ffield, ("url", "path", "sha256", "validate", "extract", "format", "requireKeys", "mode"))
        c.url(item.get("url"), f"{ffield}.url")
        path = c.string(item.get("path"), f"{ffield}.path", required=True, max_len=1024)
        if path is not None and path and not is_safe_relative_path(path):
            c.fail(f"{ffield}.path",
                   f"must be a relative path inside the volume (no '..', no leading '/'), got {path!r}")
        if path in paths:
            c.fail(f"{ffield}.path", f"duplicate path {path!r}")
        if path:
            paths.add(path)
        digest = c.string(item.get("sha256"), f"{ffield}.sha256", max_len=64)
        if digest is not None and not SHA256.match(digest):
            c.fail(f"{ffield}.sha256", "must be 64 hexadecimal characters")
        fmt = item.get("validate")
        if fmt is not None and fmt not in VALIDATE_FORMATS:
            c.fail(f"{ffield}.validate", f"must be one of {', '.join(VALIDATE_FORMATS)}, got {fmt!r}")
        _check_extract(c, item, ffield)


def _check_extract(c: _Checker, item: Obj, field: str) -> None:
    """extract, format and requireKeys read the body as JSON; mode applies to every file."""
    extract = c.string(item.get("extract"), f"{field}.extract", max_len=256)
    if extract and not JSON_PATH.match(extract):
        c.fail(f"{field}.extract", f"must be a dotted path into the JSON body, like data.data, got {extract!r}")
    fmt = item.get("format")
    if fmt is not None and fmt not in WRITE_FORMATS:
        c.fail(f"{field}.format", f"must be one of {', '.join(WRITE_FORMATS)}, got {fmt!r}")
    keys = c.lst(item.get("requireKeys"), f"{field}.requireKeys", min_items=1, max_items=64) \
        if "requireKeys" in item else []
    for k, key in enumerate(keys):
        name = c.string(key, f"{field}.requireKeys[{k}]", required=True, max_len=253)
        if name is not None and ("," in name or not name.strip()):
            c.fail(f"{field}.requireKeys[{k}]", f"must be a key name without commas, got {name!r}")
    mode = item.get("mode")
    if mode is not None and not (isinstance(mode, str) and FILE_MODE.match(mode)):
        c.fail(f"{field}.mode", f"must be an octal file mode in quotes, like \"0400\", got {mode!r}")
    if "validate" in item and any(k in item for k in ("extract", "format", "requireKeys")):
        c.fail(f"{field}.validate", "applies to a body written as is; extract, format and requireKeys read JSON "
                                    "already")


def _check_git(c: _Checker, body: Obj, field: str, volumes: Container[Any], _step: str) -> None:
    c.unknown(body, field, ("repository", "ref", "commit", "volume", "path", "tokenFrom", "depth", "timeoutSeconds"))
    repository = c.string(body.get("repository"), f"{field}.repository", required=True, max_len=2048)
    if repository and not GIT_URL.match(repository):
        c.fail(f"{field}.repository", "must be an http:// or https:// URL without credentials in it (use tokenFrom)")
    ref = c.string(body.get("ref"), f"{field}.ref", max_len=255)
    if ref and (not GIT_REF.match(ref) or ".." in ref):
        c.fail(f"{field}.ref", f"must be a branch, tag or commit id, got {ref!r}")
    commit = c.string(body.get("commit"), f"{field}.commit", max_len=40)
    if commit and not COMMIT_ID.match(commit):
        c.fail(f"{field}.commit", "must be a commit id: 40 lower-case hexadecimal characters")
    _check_volume(c, body, field, volumes)
    path = c.string(body.get("path"), f"{field}.path", required=True, max_len=1024)
    if path and not is_safe_relative_path(path):
        c.fail(f"{field}.path", f"must be a relative path inside the volume (no '..', no leading '/'), got {path!r}")
    source = c.obj(body.get("tokenFrom"), f"{field}.tokenFrom")
    if source is not None:
        c.unknown(source, f"{field}.tokenFrom", ("secretKeyRef",))
        c.secret_key_ref(source.get("secretKeyRef"), f"{field}.tokenFrom.secretKeyRef")
    c.integer(body.get("depth"), f"{field}.depth", 1, 1 << 20)
    c.integer(body.get("timeoutSeconds"), f"{field}.timeoutSeconds", 1, 86400)


def _check_container(c: _Checker, body: Obj, field: str, volumes: Container[Any], step: str) -> None:
    if ("image" in body) == ("imageFrom" in body):
        c.fail(field, "must set exactly one of image or imageFrom (the image of an app container)")
    c.string(body.get("image"), f"{field}.image", max_len=1024)
    c.string(body.get("imageFrom"), f"{field}.imageFrom", max_len=63)
    _check_inherit(c, body, field)
    # the CRD keeps a container step's fields as given; YAML turns an unquoted y, no or 1 into a
    # bool or a number, which Kubernetes refuses only when the Pod is made
    for key in ("command", "args"):
        for i, arg in enumerate(c.lst(body.get(key), f"{field}.{key}", max_items=1024)):
            if not isinstance(arg, str):
                c.fail(f"{field}.{key}[{i}]", f"must be a string, got {arg!r} (quote it in YAML)")
    if "name" in body and body["name"] != step:
        c.fail(f"{field}.name", "is taken from the step name; leave it out or make it equal")
    for i, mount in enumerate(c.lst(body.get("volumeMounts"), f"{field}.volumeMounts", max_items=32)):
        mname = mount.get("name") if isinstance(mount, dict) else None
        if not isinstance(mname, str) or mname not in volumes:
            c.fail(f"{field}.volumeMounts[{i}].name", f"{mname!r} is not a volume in spec.template.spec.volumes"
                                                      " (or spec.workload.volumeClaimTemplates)")

