"""The syntax of values that the API accepts and that the steps check again on their arguments, defined
once for both (spec/validation.py and steps/). The CRD states the same rules as patterns and CEL; the
shared bad cases (tests/cases.py) run against the API server and `render` keep the two in step."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SQL_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$")
JSON_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")  # dotted keys (a number indexes a list)
MIGRATION_VERSION = re.compile(r"^[0-9]+([._][0-9]+)*$")  # 3, 1.2, 1_2, 20240101120000
VALIDATE_FORMATS = ("yaml", "json")
SERVICE_TARGETS = ("postgres", "mysql", "redis", "dns")
DNS_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*\.?$")
SQL_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
API_VERSION = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?$")  # v1, batch/v1
KIND_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
CONDITION_TYPE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
CONDITION_STATUSES = ("True", "False", "Unknown")
WRITE_FORMATS = ("json", "yaml", "files")
FILE_MODE = re.compile(r"^0?[0-7]{3}$")
GIT_URL = re.compile(r"^https?://[^/\s@]+/\S*$")
COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")
GIT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
RESTART_POLICIES = ("Always", "OnFailure", "Never")


def is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok and " " not in text


def is_safe_relative_path(path: str) -> bool:
    """A path that stays inside the folder it is joined to."""
    if not path or path.startswith("/") or path.endswith("/") or "\x00" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))
