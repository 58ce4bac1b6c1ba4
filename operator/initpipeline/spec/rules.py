"""The CRD's CEL rules (x-kubernetes-validations), evaluated with cel-python as the API server evaluates
them: on the object with its defaults, after the schema holds, each failure at the rule's field (and its
fieldPath) with the rule's message. Kubernetes' own CEL functions that the rules use (isURL, url() and its
getters) are defined here. `render` runs them; the operator does not: the API server ran them on every
write already, and cel-python takes about a millisecond a rule (README, "the API's rules")."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import SplitResult, urlsplit

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from .fields import FieldError
from .names import Obj
from .schema import json_type


class _URL(celtypes.StringType):
    """A parsed URL, as Kubernetes' url() returns it."""

    @property
    def parts(self) -> SplitResult:
        return urlsplit(str(self))


def _is_url(text: celtypes.StringType) -> celtypes.BoolType:
    """Go's url.ParseRequestURI, which Kubernetes' isURL() calls: an absolute URL or an absolute path."""
    try:
        parts = urlsplit(str(text))
        _ = parts.port  # a port that is not a number is no URL
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(bool(parts.scheme) or str(text).startswith("/"))


def _url(text: celtypes.StringType) -> _URL:
    if not _is_url(text):
        raise ValueError(f"URL parse error: {text}")
    return _URL(text)


def _get_scheme(url: _URL) -> celtypes.StringType:
    return celtypes.StringType(url.parts.scheme)


def _get_hostname(url: _URL) -> celtypes.StringType:
    return celtypes.StringType(url.parts.hostname or "")


# cel-python types its functions' table more narrowly than the functions it accepts
FUNCTIONS: Any = {"isURL": _is_url, "url": _url, "getScheme": _get_scheme, "getHostname": _get_hostname}


@functools.cache
def _program(expression: str) -> Any:
    limit = sys.getrecursionlimit()
    env = celpy.Environment()
    sys.setrecursionlimit(limit)  # cel-python raises the process's limit to 2500; ours run shallow
    return env.program(env.compile(expression), functions=FUNCTIONS)


def _holds(expression: str, value: Any) -> bool:
    try:
        result = _program(expression).evaluate({"self": json_to_cel(value)})
    except CELEvalError:
        return False
    return result is True or (isinstance(result, celtypes.BoolType) and bool(result))


def rule_errors(value: Any, schema: Obj, path: str = "") -> list[FieldError]:
    """Every CEL rule of the schema that `value` (defaulted, valid by the schema) breaks."""
    return list(_broken(value, schema, path))


def _broken(value: Any, schema: Obj, path: str) -> Iterator[FieldError]:
    for rule in schema.get("x-kubernetes-validations") or ():
        if "oldSelf" in rule["rule"] or _holds(rule["rule"], value):
            continue  # a transition rule has nothing to compare with here
        field = f"{path}{rule.get('fieldPath', '')}".lstrip(".")
        yield FieldError(field, f'Invalid value: "{json_type(value)}": {_message(rule, value)}')
    if isinstance(value, dict):
        prefix = f"{path}." if path else ""
        properties: Obj = schema.get("properties") or {}
        for key, item in value.items():
            sub = properties.get(key, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                yield from _broken(item, sub, f"{prefix}{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _broken(item, schema.get("items") or {}, f"{path}[{i}]")


def _message(rule: Obj, value: Any) -> str:
    if "messageExpression" in rule:
        try:
            return str(_program(rule["messageExpression"]).evaluate({"self": json_to_cel(value)}))
        except CELEvalError:
            pass
    return str(rule.get("message") or f"failed rule: {rule['rule']}")
