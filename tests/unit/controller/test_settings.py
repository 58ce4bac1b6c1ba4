"""kopf's settings come from the command line only."""

from __future__ import annotations

import kopf
import pytest

from initpipeline.cli.main import build_parser
from initpipeline.cli.run import config_from
from initpipeline.controller.settings import operator_settings, retry_backoffs, seniority
from initpipeline.spec import names


def settings_for(*argv: str) -> kopf.OperatorSettings:
    return operator_settings(config_from(build_parser().parse_args(["run", *argv])))


def test_the_childrens_watches_are_filtered_by_the_api_server() -> None:
    selectors = settings_for().watching.label_selectors
    for key in (("", "v1", "pods"), ("apps", "v1", "deployments"), ("apps", "v1", "statefulsets"),
                ("batch", "v1", "jobs")):
        assert selectors[key] == names.LABEL_PIPELINE
    # an attached workload's revisions carry its Pod template's labels, the inject label among them
    for key in (("apps", "v1", "replicasets"), ("apps", "v1", "controllerrevisions")):
        assert selectors[key] == names.LABEL_INJECT
    assert len(selectors) == 6  # the pipelines themselves are not filtered


def test_peering_only_when_asked() -> None:
    alone = settings_for()
    assert alone.peering.mandatory is False
    peered = settings_for("--peering", "ipl", "--peering-lifetime", "20")
    assert peered.peering.mandatory is True and peered.peering.lifetime == 20 and peered.peering.stealth


def test_the_older_replica_has_the_higher_priority() -> None:
    older, newer = seniority(1_800_000_000.0), seniority(1_800_000_000.5)
    assert older > newer and older < 2**53


def test_event_posting_is_bounded_and_gives_up_soon() -> None:
    posting = settings_for().posting
    assert posting.worker_limit == 32 and tuple(posting.default_backoffs) == (1, 2)  # type: ignore[arg-type]


def test_the_reconcile_threads_are_a_flag_with_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_parser().parse_args(["run"]).reconcile_threads == 4
    assert build_parser().parse_args(["run", "--reconcile-threads", "8"]).reconcile_threads == 8
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--reconcile-threads", "0"])
    assert "--reconcile-threads: must be from 1 to 64, not 0" in capsys.readouterr().err


def test_the_webhook_is_served_only_when_asked_with_the_mounted_certificate() -> None:
    assert settings_for().admission.server is None
    server = settings_for("--webhook-port", "9443", "--webhook-cert-dir", "/certs/").admission.server
    assert isinstance(server, kopf.WebhookServer)
    assert (server.port, server.certfile, server.pkeyfile) == (9443, "/certs/tls.crt", "/certs/tls.key")
    assert settings_for("--webhook-port", "9443").admission.managed is None  # the chart owns the configuration


def test_api_requests_outlast_an_api_server_restart() -> None:
    """kopf's own retries give up after 54 s and stop the operator; ours go on for --api-retry-seconds."""
    pauses = tuple(settings_for().networking.error_backoffs)  # type: ignore[arg-type]
    assert pauses[:8] == (1, 1, 2, 3, 5, 8, 13, 21)  # quick while the outage is short
    assert max(pauses) == 30 and sum(pauses) == 600
    assert sum(settings_for("--api-retry-seconds", "3600").networking.error_backoffs) == 3600  # type: ignore[arg-type]
    assert retry_backoffs(10) == (1, 1, 2, 3, 3)  # the last pause is cut to the total


def test_the_api_retry_is_a_flag_with_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--api-retry-seconds", "5"])
    assert "--api-retry-seconds: must be from 10 to 86400, not 5" in capsys.readouterr().err


def test_the_pod_webhook_handler_is_registered_only_with_its_server() -> None:
    """kopf refuses to start with an admission handler and no server (the policy's case, and the plain
    manifests' before that): importing the handlers registers none; serve_injection registers the one."""
    from initpipeline.controller import handlers

    default = kopf.get_default_registry()
    assert list(default._watching.get_all_handlers())  # the import registered the event handlers
    assert not list(default._webhooks.get_all_handlers())  # and no admission handler
    registry = kopf.OperatorRegistry()
    kopf.set_default_registry(registry)
    try:
        handlers.serve_injection()
        assert [h.id for h in registry._webhooks.get_all_handlers()] == ["inject"]
    finally:
        kopf.set_default_registry(default)
    assert "inject" not in [h.id for h in default._webhooks.get_all_handlers()]
