"""Shared test data: the reference pipeline and the bad inputs that both `render`'s validation (unit
tests) and the API server (e2e tests) must refuse, in the same words."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
Obj = dict[str, Any]


def shop() -> Obj:
    """A fresh copy of examples/shop.yaml, the example from the API reference."""
    loaded: Obj = yaml.safe_load((ROOT / "examples" / "shop.yaml").read_text())
    return copy.deepcopy(loaded)


def deployment() -> Obj:
    """A fresh copy of examples/workloads/shop-deployment.yaml, as the cache shows it (namespace, uid)."""
    doc: Obj = yaml.safe_load((ROOT / "examples" / "workloads" / "shop-deployment.yaml").read_text())
    doc["metadata"].update(namespace="ns", uid="u1", generation=1)
    return doc


def step(doc: Obj, name: str) -> Obj:
    found: Obj = next(s for s in doc["spec"]["steps"] if s["name"] == name)
    return found


@dataclass(frozen=True)
class BadCase:
    id: str
    mutate: Callable[[Obj], None]
    field: str  # the field named, by the API server and by `render` alike (they read the same CRD)
    apiserver: str  # a fragment of the refusal, the API server's and `render`'s


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    def mutate(doc: Obj) -> None:
        node: Any = doc
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


def _delete(path: str) -> Callable[[Obj], None]:
    def mutate(doc: Obj) -> None:
        node: Any = doc
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[keys[-1]]
    return mutate


def _two_kinds(doc: Obj) -> None:
    step(doc, "migrate")["container"] = {"image": "busybox:1.36"}


def _duplicate_name(doc: Obj) -> None:
    step(doc, "migrate")["name"] = "wait-deps"


def _deployment(**fields: Any) -> Callable[[Obj], None]:
    def mutate(doc: Obj) -> None:
        doc["spec"]["workload"] = {"kind": "Deployment", **fields}
    return mutate


def _then(*mutations: Callable[[Obj], None]) -> Callable[[Obj], None]:
    def mutate(doc: Obj) -> None:
        for change in mutations:
            change(doc)
    return mutate


BAD_CASES = [
    BadCase("step-name-not-dns-label", _set("spec.steps.0.name", "Wait_Deps"), "spec.steps[0].name",
            "spec.steps[0].name"),
    BadCase("step-named-like-the-jobs-container", _set("spec.steps.0.name", "done"), "spec.steps[0].name",
            "done is the name of the once-steps Job's own container"),
    BadCase("duplicate-step-name", _duplicate_name, "spec.steps[1]", "Duplicate value"),
    BadCase("two-kinds-in-one-step", _two_kinds, "spec.steps[1]",
            "must set exactly one of waitForService, waitForObject, migration, configDownload, gitClone, container"),
    BadCase("no-kind", _delete("spec.steps.1.migration"), "spec.steps[1]",
            "must set exactly one of waitForService, waitForObject, migration, configDownload, gitClone, container"),
    BadCase("port-out-of-range", _set("spec.steps.0.waitForService.targets.0.port", 70000),
            "spec.steps[0].waitForService.targets[0].port", "spec.steps[0].waitForService.targets[0].port"),
    BadCase("port-zero", _set("spec.steps.0.waitForService.targets.0.port", 0),
            "spec.steps[0].waitForService.targets[0].port", "spec.steps[0].waitForService.targets[0].port"),
    BadCase("ftp-url", _set("spec.steps.0.waitForService.targets.1.url", "ftp://config-server/healthz"),
            "spec.steps[0].waitForService.targets[1].url", "must be an http:// or https:// URL"),
    BadCase("download-url-not-http", _set("spec.steps.2.configDownload.files.0.url", "file:///etc/passwd"),
            "spec.steps[2].configDownload.files[0].url", "must be an http:// or https:// URL"),
    BadCase("path-escapes-volume", _set("spec.steps.2.configDownload.files.0.path", "../etc/passwd"),
            "spec.steps[2].configDownload.files[0].path", "must be a relative path inside the volume"),
    BadCase("absolute-path", _set("spec.steps.2.configDownload.files.0.path", "/etc/passwd"),
            "spec.steps[2].configDownload.files[0].path", "must be a relative path inside the volume"),
    BadCase("sha256-not-hex", _set("spec.steps.2.configDownload.files.0.sha256", "xyz" * 21 + "x"),
            "spec.steps[2].configDownload.files[0].sha256", "spec.steps[2].configDownload.files[0].sha256"),
    BadCase("sha256-too-short", _set("spec.steps.2.configDownload.files.0.sha256", "abc123"),
            "spec.steps[2].configDownload.files[0].sha256", "spec.steps[2].configDownload.files[0].sha256"),
    BadCase("volume-not-in-template", _set("spec.steps.2.configDownload.volume", "missing"),
            "spec.steps", "must name a volume in spec.template.spec.volumes"),
    BadCase("no-steps", _set("spec.steps", []), "spec.steps", "spec.steps"),
    BadCase("no-app-container", _set("spec.template.spec.containers", []), "spec.template.spec.containers",
            "spec.template.spec.containers"),
    BadCase("target-without-port", _delete("spec.steps.0.waitForService.targets.0.port"),
            "spec.steps[0].waitForService.targets[0]", "host and port must be set together"),
    BadCase("migration-without-url", _delete("spec.steps.1.migration.databaseUrlFrom"),
            "spec.steps[1].migration.databaseUrlFrom", "databaseUrlFrom"),
    BadCase("migration-sql-and-image", _set("spec.steps.1.migration.image", "shop:1.0"), "spec.steps[1].migration",
            "must set exactly one of sql"),
    BadCase("migration-unknown-layout", _set("spec.steps.1.migration.sql.layout", "liquibase"),
            "spec.steps[1].migration.sql.layout", "Unsupported value: \"liquibase\""),
    BadCase("migration-rollback-to-not-a-version", _set("spec.steps.1.migration.sql.rollbackTo", "latest"),
            "spec.steps[1].migration.sql.rollbackTo", "spec.steps[1].migration.sql.rollbackTo"),
    BadCase("migration-table-lock-timeout-negative", _set("spec.steps.1.migration.sql.tableLockTimeoutSeconds", -1),
            "spec.steps[1].migration.sql.tableLockTimeoutSeconds",
            "spec.steps[1].migration.sql.tableLockTimeoutSeconds"),
    BadCase("migration-lock-retry-budget-too-long", _set("spec.steps.1.migration.sql.lockRetryBudgetSeconds", 90000),
            "spec.steps[1].migration.sql.lockRetryBudgetSeconds", "spec.steps[1].migration.sql.lockRetryBudgetSeconds"),
    BadCase("migration-inherit-without-image-from", _set("spec.steps.1.migration.inheritSettings", False),
            "spec.steps[1].migration", "inheritSettings only applies with imageFrom"),
    BadCase("migration-env-with-the-built-in-runner", _set("spec.steps.1.migration.env", [{"name": "A", "value": "b"}]),
            "spec.steps[1].migration", "env, envFrom and securityContext only apply with image or imageFrom"),
    BadCase("migration-rollback-in-plain-layout",
            _then(_set("spec.steps.1.migration.sql.layout", "plain"),
                  _set("spec.steps.1.migration.sql.rollbackTo", "2")),
            "spec.steps[1].migration.sql", "the plain layout has no undo files to roll back with"),
    BadCase("image-and-image-from", _set("spec.steps.3.container.imageFrom", "app"), "spec.steps[3].container",
            "must set exactly one of image or imageFrom"),
    BadCase("image-from-unknown-container",
            _then(_delete("spec.steps.3.container.image"), _set("spec.steps.3.container.imageFrom", "nope")),
            "spec.steps", "every imageFrom must name an app container"),
    BadCase("migration-image-from-unknown-container",
            _then(_delete("spec.steps.1.migration.sql"), _set("spec.steps.1.migration.imageFrom", "nope")),
            "spec.steps", "every imageFrom must name an app container"),
    BadCase("expect-json-on-a-tcp-target", _set("spec.steps.0.waitForService.targets.0.expectJSON",
                                                {"path": "status", "in": ["green"]}),
            "spec.steps[0].waitForService.targets[0]", "expectJSON only applies with url"),
    BadCase("bad-restart-policy", _set("spec.restartPolicy", "Sometimes"), "spec.restartPolicy",
            "spec.restartPolicy"),
    BadCase("template-init-containers", _set("spec.template.spec.initContainers", [{"name": "x", "image": "y"}]),
            "spec.template.spec.initContainers", "must not set initContainers"),
    BadCase("template-init-containers-empty", _set("spec.template.spec.initContainers", []),
            "spec.template.spec.initContainers", "must not set initContainers, not even empty"),
    BadCase("mount-of-unknown-volume", _set("spec.steps.3.container.volumeMounts.0.name", "nope"),
            "spec.steps", "must name a volume in spec.template.spec.volumes"),
    BadCase("step-named-like-app", _set("spec.steps.3.name", "app"), "spec.steps",
            "must not have the name of an app container"),
    BadCase("container-arg-not-a-string", _set("spec.steps.3.container.command.1", True),
            "spec.steps[3].container.command[1]", "spec.steps[3].container.command[1]"),
    BadCase("once-in-a-pod", _set("spec.steps.1.once", True), "spec.steps",
            "once only applies to Deployment and StatefulSet workloads"),
    BadCase("once-on-a-wait", _then(_deployment(), _set("spec.steps.0.once", True)), "spec.steps[0].once",
            "only migration and container steps can run once"),
    BadCase("once-on-a-sidecar", _then(_deployment(), _set("spec.steps.3.container.restartPolicy", "Always"),
                                       _set("spec.steps.3.once", True)),
            "spec.steps[3].once", "a sidecar step (restartPolicy Always) runs beside every Pod, not once"),
    BadCase("pod-with-replicas", _set("spec.workload", {"kind": "Pod", "replicas": 3}), "spec.workload.replicas",
            "a Pod workload runs exactly one Pod"),
    BadCase("unknown-workload-kind", _set("spec.workload", {"kind": "DaemonSet"}), "spec.workload.kind",
            "spec.workload.kind"),
    BadCase("statefulset-field-on-a-deployment", _deployment(serviceName="shop"), "spec.workload",
            "only apply to kind StatefulSet"),
    BadCase("too-many-replicas", _deployment(replicas=5000), "spec.workload.replicas", "spec.workload.replicas"),
    BadCase("deployment-that-never-restarts", _then(_deployment(), _set("spec.restartPolicy", "Never")),
            "spec.restartPolicy", "restartPolicy must be Always for a Deployment or StatefulSet"),
    BadCase("reserved-label", _set("spec.template.metadata.labels", {"initpipeline.dev/pipeline-uid": "x"}),
            "spec.template.metadata.labels", "labels under initpipeline.dev/"),
    BadCase("negative-deadline", _set("spec.activeDeadlineSeconds", -5), "spec.activeDeadlineSeconds",
            "spec.activeDeadlineSeconds"),
    BadCase("attach-with-template", _set("spec.attach", {"kind": "Deployment", "name": "shop"}), "spec",
            "must set exactly one of template"),
    BadCase("attach-kind-job", _then(_delete("spec.template"), _set("spec.attach", {"kind": "Job", "name": "shop"})),
            "spec.attach.kind", "spec.attach.kind: Unsupported value"),
    BadCase("attach-with-workload", _then(_delete("spec.template"), _set("spec.attach", {"kind": "Deployment",
                                                                                       "name": "shop"}),
                                          _deployment(replicas=2)),
            "spec", "workload and restartPolicy must not be set with attach"),
    BadCase("target-of-two-kinds", _set("spec.steps.0.waitForService.targets.0.dns", "db.example.com"),
            "spec.steps[0].waitForService.targets[0]",
            "must set exactly one of url, host and port, postgres, mysql, redis or dns"),
    BadCase("postgres-target-without-url", _set("spec.steps.0.waitForService.targets.1", {"postgres": {}}),
            "spec.steps[0].waitForService.targets[1].postgres.urlFrom", "urlFrom: Required value"),
    BadCase("postgres-table-not-a-name", _set("spec.steps.0.waitForService.targets.1", {"postgres": {
        "urlFrom": {"secretKeyRef": {"name": "db", "key": "url"}}, "table": "users; DROP TABLE users"}}),
            "spec.steps[0].waitForService.targets[1].postgres.table", "postgres.table: Invalid value"),
    BadCase("dns-target-not-a-name", _set("spec.steps.0.waitForService.targets.1", {"dns": "not a name"}),
            "spec.steps[0].waitForService.targets[1].dns", "targets[1].dns: Invalid value"),
    BadCase("download-mode-not-octal", _set("spec.steps.2.configDownload.files.0.mode", "0999"),
            "spec.steps[2].configDownload.files[0].mode", "files[0].mode: Invalid value"),
    BadCase("download-format-unknown", _set("spec.steps.2.configDownload.files.0.format", "toml"),
            "spec.steps[2].configDownload.files[0].format", "files[0].format: Unsupported value"),
    BadCase("download-validate-with-extract", _then(_set("spec.steps.2.configDownload.files.0.validate", "json"),
                                                    _set("spec.steps.2.configDownload.files.0.extract", "data.data")),
            "spec.steps[2].configDownload.files[0]", "validate applies to a body written as is"),
    BadCase("git-url-with-credentials", _set("spec.steps.3", {"name": "clone", "gitClone": {
        "repository": "https://user:token@git.example.com/site.git", "volume": "config", "path": "site"}}),
            "spec.steps[3].gitClone.repository", "gitClone.repository: Invalid value"),
    BadCase("git-commit-not-an-id", _set("spec.steps.3", {"name": "clone", "gitClone": {
        "repository": "https://git.example.com/site.git", "commit": "main", "volume": "config", "path": "site"}}),
            "spec.steps[3].gitClone.commit", "gitClone.commit: Invalid value"),
    BadCase("git-volume-unknown", _set("spec.steps.3", {"name": "clone", "gitClone": {
        "repository": "https://git.example.com/site.git", "volume": "nope", "path": "site"}}),
            "spec.steps", "every gitClone.volume must name a volume"),
    BadCase("migration-ca-bundle-with-own-tool", _then(
        _delete("spec.steps.1.migration.sql"), _set("spec.steps.1.migration.image", "shop:1.0"),
        _set("spec.steps.1.migration.caBundle", {"configMapKeyRef": {"name": "ca", "key": "ca.pem"}})),
            "spec.steps[1].migration", "historyTable and caBundle only apply with sql"),
    BadCase("object-wait-without-condition", _set("spec.steps.3", {"name": "wait-cert", "waitForObject": {
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "shop-tls"}}),
            "spec.steps[3].waitForObject.condition", "waitForObject.condition: Invalid value"),
    BadCase("object-wait-kind-lower-case", _set("spec.steps.3", {"name": "wait-seed", "waitForObject": {
        "apiVersion": "batch/v1", "kind": "job", "name": "seed"}}),
            "spec.steps[3].waitForObject.kind", "waitForObject.kind: Invalid value"),
    BadCase("object-wait-condition-status", _set("spec.steps.3", {"name": "wait-seed", "waitForObject": {
        "apiVersion": "batch/v1", "kind": "Job", "name": "seed", "condition": {"type": "Complete", "status": "yes"}}}),
            "spec.steps[3].waitForObject.condition.status", "condition.status: Unsupported value"),
    BadCase("object-wait-once", _set("spec.steps.3", {"name": "wait-seed", "once": True, "waitForObject": {
        "apiVersion": "batch/v1", "kind": "Job", "name": "seed"}}),
            "spec.steps[3].once", "only migration and container steps can run once"),
]


def bad(case: BadCase) -> Obj:
    doc = shop()
    case.mutate(doc)
    return doc


def examples() -> list[Path]:
    """Every InitPipeline manifest under examples/."""
    return sorted(p for p in (ROOT / "examples").rglob("*.yaml")
                  if any(d and d.get("kind") == "InitPipeline" for d in yaml.safe_load_all(p.read_text())))


@dataclass(frozen=True)
class BadFolder:
    """A migrations folder that the runner refuses before anything runs; message names the files."""

    id: str
    files: dict[str, str]
    message: str
    layout: str | None = None  # None: detected

    @property
    def args(self) -> list[str]:
        return ["--layout", self.layout] if self.layout else []


_UP = "-- migrate:up\nCREATE TABLE a (id int);\n"
BAD_FOLDERS = [
    BadFolder("golang-migrate-and-flyway", {"1_a.up.sql": "SELECT 1;", "1_a.down.sql": "SELECT 1;",
                                            "V2__b.sql": "SELECT 1;"},
              "the folder mixes layouts: golang-migrate (1_a.down.sql, 1_a.up.sql); flyway (V2__b.sql)"),
    BadFolder("golang-migrate-and-a-stray-file", {"1_a.up.sql": "SELECT 1;", "init.sql": "SELECT 1;"},
              "golang-migrate (1_a.up.sql); no layout's markers (init.sql)"),
    BadFolder("dbmate-and-plain", {"1_a.sql": _UP + "-- migrate:down\n", "2_b.sql": "SELECT 1;"},
              "dbmate (1_a.sql); no layout's markers (2_b.sql)"),
    BadFolder("golang-migrate-same-version", {"1_a.up.sql": "SELECT 1;", "01_b.up.sql": "SELECT 1;"},
              "01_b.up.sql and 1_a.up.sql have the same version"),
    BadFolder("golang-migrate-down-without-up", {"1_a.up.sql": "SELECT 1;", "2_b.down.sql": "SELECT 1;"},
              "2_b.down.sql: a .down.sql file without its .up.sql"),
    BadFolder("flyway-same-version", {"V1.1__a.sql": "SELECT 1;", "V1_1__b.sql": "SELECT 1;"},
              "V1.1__a.sql and V1_1__b.sql have the same version"),
    BadFolder("flyway-trailing-zero-is-the-same-version", {"V1__a.sql": "SELECT 1;", "V1.0__b.sql": "SELECT 1;"},
              "V1.0__b.sql and V1__a.sql have the same version"),
    BadFolder("flyway-placeholder", {"V1__a.sql": "CREATE TABLE ${prefix}_users (id int);"},
              "Flyway placeholders are not expanded by this runner: V1__a.sql (${prefix})"),
    BadFolder("flyway-unknown-script-setting", {"V1__a.sql": "SELECT 1;", "V1__a.sql.conf": "shouldExecute=false"},
              "V1__a.sql.conf line 1: 'shouldExecute=false' is not supported"),
    BadFolder("flyway-misnamed", {"V1__a.sql": "SELECT 1;", "V2_b.sql": "SELECT 1;"},
              "V2_b.sql: not a flyway file name", "flyway"),
    BadFolder("dbmate-without-down", {"1_a.sql": _UP}, "1_a.sql: each '-- migrate:up' needs exactly one "
                                                       "'-- migrate:down' after it"),
    BadFolder("dbmate-statement-before-up", {"1_a.sql": "SELECT 1;\n" + _UP + "-- migrate:down\n"},
              "1_a.sql: statements before '-- migrate:up'"),
    BadFolder("golang-migrate-given-plain-files", {"1_a.sql": "SELECT 1;"},
              "1_a.sql: not a golang-migrate file name", "golang-migrate"),
    BadFolder("plain-given-down-files", {"1_a.up.sql": "SELECT 1;", "1_a.down.sql": "DROP TABLE a;"},
              "1_a.down.sql: undo files", "plain"),
]
