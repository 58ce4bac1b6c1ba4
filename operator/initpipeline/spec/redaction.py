"""Secrets out of text: step logs and termination messages, the status, Events, the CLI's output.

One redaction serves all of them, so that what a step hides the operator hides too:
- a URL's user info is replaced whole (`https://***@host/`), whatever it holds: a password with an `@` in
  it, or a token given as the user name, as GitHub and GitLab take one;
- a query parameter whose name looks secret (`token`, `password`, `X-Amz-Signature`...) keeps its name
  and loses its value;
- `password=...` in a libpq keyword DSN loses its value;
- any secret value the caller knows (a header read from a Secret) is replaced wherever it stands.
"""

from __future__ import annotations

import re

MASK = "***"

# A URL's authority runs to the first / ? # (RFC 3986), so its user info runs to the last @ before one of
# them. Text that cannot be part of a URL (white space, quotes, brackets) ends it too.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s\"'<>\[\]{}]*@")

# Parameter names that carry a credential in the services' own APIs: OAuth's access_token, AWS's
# X-Amz-Signature/-Credential/-Security-Token, Azure's sig, GCS's X-Goog-Signature, api_key, apikey...
_SECRET_NAME = r"[\w.-]*(?:token|passw(?:or)?d|pwd|secret|key|sig(?:nature)?|credential|auth)[\w.-]*"
_SECRET_PARAM = re.compile(rf"(?P<lead>[?&;](?i:{_SECRET_NAME})=)(?P<value>[^&#;\s\"'<>]+)")

# libpq's keyword form (host=db password=x); not a query parameter, which _SECRET_PARAM masks up to its &
_KEYWORD_PASSWORD = re.compile(r"(?<![?&;\w])(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)

# Shorter values would mask common words in every message; a header or password that short is no secret.
_MIN_SECRET_LENGTH = 3


def redact(text: str, *secrets: str) -> str:
    """Hide the credentials of URLs and DSNs, and any secret value given."""
    for secret in sorted((s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _SECRET_PARAM.sub(lambda m: f"{m['lead']}{MASK}", text)
    return _KEYWORD_PASSWORD.sub(rf"\g<1>{MASK}", text)

