"""The one redaction of URLs and DSNs, against the table of hostile URLs that the step tests use too."""

from __future__ import annotations

import pytest

from initpipeline.core.pod_status import trim
from initpipeline.spec.redaction import redact
from tests.hostile_urls import HOSTILE_URLS, HostileUrl


@pytest.mark.parametrize("case", HOSTILE_URLS, ids=lambda c: c.id)
def test_hostile_urls(case: HostileUrl) -> None:
    shown = redact(case.url)
    for secret in case.secrets:
        assert secret not in shown, shown
    for part in case.shown:
        assert part in shown, shown


@pytest.mark.parametrize("case", HOSTILE_URLS, ids=lambda c: c.id)
def test_the_operator_redacts_a_step_message_alike(case: HostileUrl) -> None:
    """What reaches the status and Events goes through trim, whoever wrote the termination message."""
    message = trim(f"migrate: cannot connect to {case.url}: refused")
    assert message is not None
    for secret in case.secrets:
        assert secret not in message
    for part in case.shown:
        assert part in message


def test_secret_values_given_are_masked_longest_first() -> None:
    assert redact("token abcdef and abc", "abc", "abcdef") == "token *** and ***"
    assert redact("short ab stays", "ab") == "short ab stays"  # too short to be a secret of any weight


def test_a_keyword_dsn_password() -> None:
    assert redact("host=db password='a b c' user=app") == "host=db password=*** user=app"
    assert redact("host=db PASSWORD=x1y2 user=app") == "host=db PASSWORD=*** user=app"


def test_text_without_credentials_is_unchanged() -> None:
    text = "HTTP 503 from https://cfg.local/v1/app?env=prod; retrying in 1.0s (attempt 2); mail ops@example.com"
    assert redact(text) == text
