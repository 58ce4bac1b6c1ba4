"""The syntax of values that the steps check again on their arguments, and the one name rule that the API
server applies to every object (the CRD states the API's own rules, once: spec/schema.py reads them)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
SQL_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$")
MIGRATION_VERSION = re.compile(r"^[0-9]+([._][0-9]+)*$")  # 3, 1.2, 1_2, 20240101120000
VALIDATE_FORMATS = ("yaml", "json")
WRITE_FORMATS = ("json", "yaml", "files")
FILE_MODE = re.compile(r"^0?[0-7]{3}$")
COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")


def is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok and " " not in text
