"""Hostile URLs for the one redaction that the steps and the operator share: each with the secrets that
must never be shown and what must still be shown, so that a log line stays useful."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostileUrl:
    id: str
    url: str
    secrets: tuple[str, ...]  # none of these may be shown
    shown: tuple[str, ...]  # all of these must be


HOSTILE_URLS = [
    HostileUrl("user-and-password", "http://alice:hunter2@db.local:8080/health",
               ("alice", "hunter2"), ("http://***@db.local:8080/health",)),
    HostileUrl("at-in-the-password", "http://alice:p@ss@w0rd@cfg.local/",
               ("p@ss", "ss@w0rd", "w0rd", "alice"), ("http://***@cfg.local/",)),
    HostileUrl("token-as-the-user", "https://ghp_AbCdEf0123456789@git.local/org/repo.git",
               ("ghp_AbCdEf0123456789",), ("https://***@git.local/org/repo.git",)),
    HostileUrl("empty-user", "redis://:s3cretpass@redis.local:6379/0", ("s3cretpass",), ("redis://***@redis.local",)),
    HostileUrl("encoded-at", "postgres://app:pa%40ss%3Aword@db:5432/shop", ("pa%40ss", "ss%3Aword"),
               ("postgres://***@db:5432/shop",)),
    HostileUrl("colon-in-password", "mysql://app:a:b:c@db/x", ("a:b:c", ":b:c"), ("mysql://***@db/x",)),
    HostileUrl("query-token", "https://cfg.local/v1/app?token=tok-123456&env=prod",
               ("tok-123456",), ("token=***", "env=prod")),
    HostileUrl("aws-presigned",
               "https://b.s3.local/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261202"
               "&X-Amz-Signature=abcdef0123456789&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE",
               ("AKIAEXAMPLE", "abcdef0123456789", "FwoGZXIvYXdzEXAMPLE"),
               ("X-Amz-Signature=***", "X-Amz-Algorithm=AWS4-HMAC-SHA256")),
    HostileUrl("azure-sas", "https://acct.blob.local/c/f?sv=2024-01-01&sig=Zm9vYmFyYmF6&se=2026", ("Zm9vYmFyYmF6",),
               ("sig=***", "sv=2024-01-01")),
    HostileUrl("api-key-and-password-params", "http://h/x?api_key=k-998877&Password=pw-445566&user=bob",
               ("k-998877", "pw-445566"), ("api_key=***", "Password=***", "user=bob")),
    HostileUrl("userinfo-and-query", "https://u:pw-778899@h.local/p?access_token=at-665544#frag",
               ("pw-778899", "at-665544"), ("https://***@h.local/p?access_token=***#frag",)),
    HostileUrl("two-urls-on-a-line", "from http://a:pw-112233@one/ to http://b:pw-445577@two/",
               ("pw-112233", "pw-445577"), ("http://***@one/", "http://***@two/")),
    HostileUrl("no-credentials", "https://cfg.local:8443/v1/config?env=prod", (),
               ("https://cfg.local:8443/v1/config?env=prod",)),
    HostileUrl("quoted-in-a-message", "connect to 'postgres://app:pw-990011@db/shop' failed", ("pw-990011",),
               ("'postgres://***@db/shop' failed",)),
]
