from __future__ import annotations

import yaml

from initpipeline.core.build import RUNNER_SECURITY_CONTEXT, build_once_job, build_pod, revision
from initpipeline.spec import names
from initpipeline.spec.validation import validate_pipeline
from tests.cases import deployment, shop, step


def by_name(containers: list[dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {c["name"]: c for c in containers}


def test_one_init_container_per_step_in_order() -> None:
    pod = build_pod(shop(), "runner:1")
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["wait-deps", "migrate", "fetch-config",
                                                                 "fix-permissions"]


def test_template_is_kept() -> None:
    doc = shop()
    pod = build_pod(doc, "runner:1")
    assert pod["spec"]["containers"] == doc["spec"]["template"]["spec"]["containers"]
    assert {"config", "data"} <= {v["name"] for v in pod["spec"]["volumes"]}
    assert pod["metadata"]["labels"]["app"] == "shop"
    assert pod["spec"]["restartPolicy"] == "Always"


def test_labels_name_pipeline_and_generation() -> None:
    doc = shop()
    doc["metadata"]["generation"] = 7
    pod = build_pod(doc, "runner:1")
    assert pod["metadata"]["name"] == "shop-7"
    assert pod["metadata"]["labels"][names.LABEL_PIPELINE] == "shop"
    assert pod["metadata"]["labels"][names.LABEL_GENERATION] == "7"


def test_wait_step_command_is_an_argument_list() -> None:
    wait = by_name(build_pod(shop(), "runner:1")["spec"]["initContainers"])["wait-deps"]
    assert wait["image"] == "runner:1"
    assert wait["command"] == ["initpipeline", "step", "wait", "--tcp", "postgres:5432",
                               "--http", "http://config-server:8000/healthz", "--timeout", "120", "--max-interval", "1"]


def test_builtin_steps_are_locked_down() -> None:
    containers = by_name(build_pod(shop(), "runner:1")["spec"]["initContainers"])
    for name in ("wait-deps", "migrate", "fetch-config"):
        assert containers[name]["securityContext"] == RUNNER_SECURITY_CONTEXT
        assert containers[name]["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert containers[name]["resources"] == names.DEFAULT_STEP_RESOURCES
    ctx = RUNNER_SECURITY_CONTEXT
    assert ctx["runAsNonRoot"] and ctx["readOnlyRootFilesystem"] and not ctx["allowPrivilegeEscalation"]
    assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["seccompProfile"] == {"type": "RuntimeDefault"}


def test_container_step_runs_as_given() -> None:
    doc = shop()
    fix = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["fix-permissions"]
    assert fix["image"] == "busybox:1.36"
    assert fix["command"] == ["chmod", "-R", "g+w", "/data"]
    assert fix["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert "securityContext" not in fix


def test_migration_url_comes_from_the_secret_as_env() -> None:
    pod = build_pod(shop(), "runner:1")
    migrate = by_name(pod["spec"]["initContainers"])["migrate"]
    assert migrate["env"] == [{"name": "INITPIPELINE_DATABASE_URL",
                               "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "url"}}}]
    assert migrate["command"][3:7] == ["--sql-dir", "/var/run/initpipeline/sql", "--database-url-env",
                                       "INITPIPELINE_DATABASE_URL"]
    sql_volume = next(v for v in pod["spec"]["volumes"] if v.get("configMap", {}).get("name") == "shop-schema")
    assert {"name": sql_volume["name"], "mountPath": "/var/run/initpipeline/sql", "readOnly": True} in \
        migrate["volumeMounts"]


def test_migration_layout_and_rollback_reach_the_runner() -> None:
    doc = shop()
    default = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["migrate"]["command"]
    # without a layout or a table the runner detects the layout and keeps that layout's own history table
    assert "--layout" not in default and "--history-table" not in default and "--to" not in default
    step(doc, "migrate")["migration"]["sql"].update(layout="flyway", rollbackTo="3")
    step(doc, "migrate")["migration"]["historyTable"] = "ops.flyway_history"
    command = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["migrate"]["command"]
    assert command[-6:] == ["--layout", "flyway", "--history-table", "ops.flyway_history", "--to", "3"]


def test_the_lint_policy_blocks_in_a_rollout_and_warns_for_kind_pod() -> None:
    pod_command = by_name(build_pod(shop(), "runner:1")["spec"]["initContainers"])["migrate"]["command"]
    # kind Pod has no rollout: nothing is held for after it, and what would break an old version is said
    assert pod_command[-4:] == ["--lint", "warn", "--when", "after-rollout"]
    workload = deployment()
    step(workload, "migrate")["migration"] = step(shop(), "migrate")["migration"]  # the built-in runner
    assert validate_pipeline(workload) == []
    job = build_once_job(workload, "runner:1")
    assert job is not None
    migrate = by_name(job["spec"]["template"]["spec"]["initContainers"])["migrate"]
    assert migrate["command"][-2:] == ["--lint", "block"] and "--when" not in migrate["command"]
    doc = shop()
    step(doc, "migrate")["migration"]["sql"]["lint"] = "Disabled"
    assert validate_pipeline(doc) == []
    command = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["migrate"]["command"]
    assert command[-4:-2] == ["--lint", "off"]


def test_a_migrations_ca_bundle_reaches_the_runner_as_a_file() -> None:
    doc = shop()
    step(doc, "migrate")["migration"]["caBundle"] = {"secretKeyRef": {"name": "rds-ca", "key": "ca.pem"}}
    pod = build_pod(doc, "runner:1")
    migrate = by_name(pod["spec"]["initContainers"])["migrate"]
    assert migrate["command"][-2:] == ["--ca-file", "/var/run/initpipeline/ca/ca.crt"]
    mount = next(m for m in migrate["volumeMounts"] if m["mountPath"] == "/var/run/initpipeline/ca")
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["secret"] == {"secretName": "rds-ca", "items": [{"key": "ca.pem", "path": "ca.crt"}]}


def test_custom_migration_tool_gets_url_in_its_env() -> None:
    doc = shop()
    migration = step(doc, "migrate")["migration"]
    del migration["sql"]
    migration.update(image="shop:1.0", command=["python", "manage.py", "migrate"], databaseUrlEnv="DB_URL")
    migrate = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["migrate"]
    assert migrate["image"] == "shop:1.0"
    assert migrate["command"] == ["python", "manage.py", "migrate"]
    assert migrate["env"][0]["name"] == "DB_URL"


def test_download_writes_into_the_template_volume() -> None:
    fetch = by_name(build_pod(shop(), "runner:1")["spec"]["initContainers"])["fetch-config"]
    assert {"name": "config", "mountPath": "/var/run/initpipeline/out"} in fetch["volumeMounts"]
    args = fetch["command"]
    assert args[args.index("--dest") + 1] == "/var/run/initpipeline/out/app.yaml"
    assert args[args.index("--sha256") + 1].startswith("9f2c3a4b")


def test_secret_headers_never_appear_in_arguments() -> None:
    doc = shop()
    step(doc, "fetch-config")["configDownload"].update(
        headers=[{"name": "X-Vault-Token", "valueFrom": {"secretKeyRef": {"name": "vault", "key": "token"}}},
                 {"name": "Accept", "value": "application/yaml"}],
        caBundle={"configMapKeyRef": {"name": "ca", "key": "ca.crt"}})
    pod = build_pod(doc, "runner:1")
    fetch = by_name(pod["spec"]["initContainers"])["fetch-config"]
    args = fetch["command"]
    assert args[args.index("--header-from-env") + 1] == "X-Vault-Token=INITPIPELINE_HEADER_0"
    assert args[args.index("--header") + 1] == "Accept: application/yaml"
    assert fetch["env"] == [{"name": "INITPIPELINE_HEADER_0",
                             "valueFrom": {"secretKeyRef": {"name": "vault", "key": "token"}}}]
    assert args[args.index("--ca-file") + 1] == "/var/run/initpipeline/ca/ca.crt"
    ca_volume = next(v for v in pod["spec"]["volumes"] if "configMap" in v and v["configMap"]["name"] == "ca")
    assert ca_volume["configMap"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]


def test_step_image_and_resources_override() -> None:
    doc = shop()
    wait = step(doc, "wait-deps")
    wait["image"] = "mirror.local/initpipeline:0.1.0"
    wait["resources"] = {"limits": {"memory": "64Mi"}}
    built = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["wait-deps"]
    assert built["image"] == "mirror.local/initpipeline:0.1.0"
    assert built["resources"] == {"limits": {"memory": "64Mi"}}


def test_builder_does_not_change_its_input() -> None:
    doc = shop()
    before = yaml.safe_dump(doc)
    build_pod(doc, "runner:1")
    assert yaml.safe_dump(doc) == before


def test_image_from_runs_the_app_containers_image_and_pull_policy() -> None:
    doc = shop()
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    fix = step(doc, "fix-permissions")["container"]
    del fix["image"]
    fix["imageFrom"] = "app"
    migration = step(doc, "migrate")["migration"]
    del migration["sql"]
    migration.update(imageFrom="app", command=["shop", "migrate"])
    containers = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])
    for name in ("fix-permissions", "migrate"):
        assert containers[name]["image"] == "shop:1.0" and containers[name]["imagePullPolicy"] == "Never"
        assert "imageFrom" not in containers[name]
    assert containers["migrate"]["command"] == ["shop", "migrate"]
    fix["imagePullPolicy"] = "Always"  # the step's own policy wins
    assert by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["fix-permissions"]["imagePullPolicy"] == \
        "Always"


def test_a_once_step_with_image_from_runs_the_new_app_image_in_a_new_revision() -> None:
    doc = deployment()
    migration = step(doc, "migrate")["migration"]
    migration.pop("image", None)
    migration["imageFrom"] = doc["spec"]["template"]["spec"]["containers"][0]["name"]
    assert validate_pipeline(doc) == []
    before = revision(doc["spec"])
    job = build_once_job(doc, "runner:1")
    assert job is not None
    app_image = doc["spec"]["template"]["spec"]["containers"][0]["image"]
    assert by_name(job["spec"]["template"]["spec"]["initContainers"])["migrate"]["image"] == app_image
    doc["spec"]["template"]["spec"]["containers"][0]["image"] = "shop:2.0"
    after = build_once_job(doc, "runner:1")
    assert after is not None and revision(doc["spec"]) != before
    assert by_name(after["spec"]["template"]["spec"]["initContainers"])["migrate"]["image"] == "shop:2.0"


def test_a_json_expectation_reaches_the_wait_step_as_arguments() -> None:
    doc = shop()
    target = step(doc, "wait-deps")["waitForService"]["targets"][1]
    target["expectJSON"] = {"path": "status", "in": ["green", "yellow"]}
    command = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["wait-deps"]["command"]
    at = command.index("--http-json")
    assert command[at + 1:at + 4] == [target["url"], "status", '["green", "yellow"]']
    assert "--http" not in command


def test_database_targets_take_their_urls_from_secrets_as_env_vars_never_as_arguments() -> None:
    doc = shop()
    step(doc, "wait-deps")["waitForService"]["targets"] += [
        {"postgres": {"urlFrom": {"secretKeyRef": {"name": "db", "key": "url"}}, "table": "django_migrations"}},
        {"redis": {"urlFrom": {"secretKeyRef": {"name": "cache", "key": "url"}}}},
        {"dns": "config-server.default.svc"},
        {"mysql": {"urlFrom": {"secretKeyRef": {"name": "orders-db", "key": "url"}}, "table": "app.schema_migrations"}},
    ]
    container = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["wait-deps"]
    command = container["command"]
    assert command[command.index("--postgres") + 1] == "INITPIPELINE_TARGET_2_URL:django_migrations"
    assert command[command.index("--redis") + 1] == "INITPIPELINE_TARGET_3_URL"
    assert command[command.index("--dns") + 1] == "config-server.default.svc"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert env["INITPIPELINE_TARGET_2_URL"] == {"name": "db", "key": "url"}
    assert env["INITPIPELINE_TARGET_3_URL"] == {"name": "cache", "key": "url"}
    assert command[command.index("--mysql") + 1] == "INITPIPELINE_TARGET_5_URL:app.schema_migrations"
    assert env["INITPIPELINE_TARGET_5_URL"] == {"name": "orders-db", "key": "url"}


def test_a_secret_download_reaches_the_step_as_arguments() -> None:
    doc = shop()
    item = step(doc, "fetch-config")["configDownload"]["files"][0]
    item.pop("sha256")
    item.update(extract="data.data", format="yaml", requireKeys=["api_key", "db_password"], mode="0400")
    command = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["fetch-config"]["command"]
    at = command.index("--extract")
    assert command[at:at + 8] == ["--extract", "data.data", "--format", "yaml", "--mode", "0400",
                                  "--require-keys", "api_key,db_password"]


def test_a_git_clone_runs_the_runner_with_the_token_from_its_secret() -> None:
    doc = shop()
    doc["spec"]["steps"].append({"name": "clone", "gitClone": {
        "repository": "https://git.example.com/org/site.git", "ref": "v2.1", "volume": "config", "path": "site",
        "tokenFrom": {"secretKeyRef": {"name": "git", "key": "token"}}}})
    container = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["clone"]
    assert container["image"] == "runner:1"
    assert container["command"][:3] == ["initpipeline", "step", "git-clone"]
    command = container["command"]
    assert command[command.index("--dest") + 1] == "/var/run/initpipeline/out/site"
    assert command[command.index("--ref") + 1] == "v2.1" and command[command.index("--depth") + 1] == "1"
    assert command[command.index("--token-env") + 1] == "INITPIPELINE_GIT_TOKEN"
    assert container["env"] == [{"name": "INITPIPELINE_GIT_TOKEN",
                                 "valueFrom": {"secretKeyRef": {"name": "git", "key": "token"}}}]
    assert {"name": "config", "mountPath": "/var/run/initpipeline/out"} in container["volumeMounts"]


def test_table_lock_settings_reach_the_runner() -> None:
    doc = shop()
    default = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["migrate"]["command"]
    assert default[default.index("--table-lock-timeout") + 1] == str(names.DEFAULT_TABLE_LOCK_TIMEOUT)
    assert default[default.index("--lock-retry-budget") + 1] == str(names.DEFAULT_LOCK_RETRY_BUDGET)
    assert "--statement-timeout" not in default
    step(doc, "migrate")["migration"]["sql"].update(tableLockTimeoutSeconds=3, lockRetryBudgetSeconds=60,
                                                    statementTimeoutSeconds=900)
    assert validate_pipeline(doc) == []
    command = by_name(build_pod(doc, "runner:1")["spec"]["initContainers"])["migrate"]["command"]
    for option, value in (("--table-lock-timeout", "3"), ("--lock-retry-budget", "60"),
                          ("--statement-timeout", "900")):
        assert command[command.index(option) + 1] == value


def test_the_crds_lint_and_when_values_are_the_ones_the_build_knows() -> None:
    from initpipeline.spec.schema import pipeline_schema

    step_schema = pipeline_schema()["properties"]["spec"]["properties"]["steps"]["items"]
    sql = step_schema["properties"]["migration"]["properties"]["sql"]["properties"]
    assert sql["lint"]["enum"] == list(names.LINT_POLICIES)
    assert step_schema["properties"]["when"]["enum"] == [names.BEFORE_ROLLOUT, names.AFTER_ROLLOUT]
