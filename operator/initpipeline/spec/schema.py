"""The InitPipeline API's OpenAPI schema, read from the CRD itself and walked the way the API server walks
it: types, required fields, enums, bounds, lengths, patterns, list keys and unknown fields, in the API
server's words. The CRD here is package data, a copy of crds/ that tests/deploy/test_deploy.py keeps
identical, so the rules are written once (in the CRD) and `render`, the operator and the webhook refuse
what `kubectl apply` refuses, without a cluster. Its CEL rules are spec/rules.py's."""

from __future__ import annotations

import copy
import functools
import json
import re
from importlib import resources
from typing import Any

import yaml

from .fields import FieldError
from .names import Obj

CRD_FILE = "initpipelines.initpipeline.dev.yaml"
_TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
                                       "number": (int, float), "boolean": (bool,)}


@functools.cache
def pipeline_schema() -> Obj:
    """The openAPIV3Schema of the CRD's stored version."""
    crd = yaml.safe_load(resources.files(__package__).joinpath(CRD_FILE).read_text())
    [version] = [v for v in crd["spec"]["versions"] if v.get("storage")]
    found: Obj = version["schema"]["openAPIV3Schema"]
    return found


def json_type(value: Any) -> str:
    """A value's type in the API server's words (it quotes the type for objects and arrays)."""
    if value is None:
        return "null"
    for name in ("boolean", "integer", "number", "string", "array", "object"):
        if _is(value, name):
            return name
    return type(value).__name__


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    return isinstance(value, _TYPES.get(kind, (object,)))


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, int, float, bool)) else f'"{json_type(value)}"'


@functools.cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def schema_errors(value: Any, schema: Obj, path: str = "") -> list[FieldError]:
    """Every way `value` breaks `schema`, each at its field (paths as the API server writes them)."""
    out: list[FieldError] = []
    _walk(value, schema, path, out)
    return out


def _walk(value: Any, schema: Obj, path: str, out: list[FieldError]) -> None:
    if not _typed(value, schema, path, out):
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(json.dumps(v) for v in schema["enum"])
        out.append(FieldError(path, f"Unsupported value: {_shown(value)}: supported values: {supported}"))
    if isinstance(value, str):
        _string(value, schema, path, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _number(value, schema, path, out)
    elif isinstance(value, list):
        _array(value, schema, path, out)
    elif isinstance(value, dict):
        _object(value, schema, path, out)


def _typed(value: Any, schema: Obj, path: str, out: list[FieldError]) -> bool:
    """Whether the value has the schema's type (said otherwise); the checks below need it."""
    if value is None:
        if not schema.get("nullable"):
            out.append(FieldError(path, f'Invalid value: "null": must be of type {schema.get("type", "object")}'))
        return False
    if schema.get("x-kubernetes-int-or-string"):
        if _is(value, "integer") or _is(value, "string"):
            return True
        out.append(FieldError(path, f'Invalid value: "{json_type(value)}": must be an integer or a string'))
        return False
    kind = schema.get("type")
    if kind and not _is(value, kind):
        out.append(FieldError(path, f'Invalid value: "{json_type(value)}": must be of type {kind}'))
        return False
    return True


def _string(value: str, schema: Obj, path: str, out: list[FieldError]) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        out.append(FieldError(path, f"Too long: may not be more than {schema['maxLength']} bytes"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        out.append(FieldError(path, f"Invalid value: {_shown(value)}: should be at least {schema['minLength']} "
                                    "chars long"))
    if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
        out.append(FieldError(path, f"Invalid value: {_shown(value)}: should match '{schema['pattern']}'"))


def _number(value: float, schema: Obj, path: str, out: list[FieldError]) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        out.append(FieldError(path, f"Invalid value: {value}: should be greater than or equal to "
                                    f"{schema['minimum']}"))
    if "maximum" in schema and value > schema["maximum"]:
        out.append(FieldError(path, f"Invalid value: {value}: should be less than or equal to {schema['maximum']}"))


def _array(value: list[Any], schema: Obj, path: str, out: list[FieldError]) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        out.append(FieldError(path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items"))
    if "minItems" in schema and len(value) < schema["minItems"]:
        out.append(FieldError(path, f"Invalid value: {len(value)}: should have at least {schema['minItems']} "
                                    "items"))
    items = schema.get("items") or {}
    for i, item in enumerate(value):
        _walk(item, items, f"{path}[{i}]", out)
    keys = schema.get("x-kubernetes-list-map-keys") if schema.get("x-kubernetes-list-type") == "map" else None
    seen: set[str] = set()
    for i, item in enumerate(value):
        if keys and isinstance(item, dict):
            key = json.dumps({k: item.get(k) for k in keys}, sort_keys=True)
        elif schema.get("x-kubernetes-list-type") == "set":
            key = json.dumps(item, sort_keys=True)
        else:
            continue
        if key in seen:
            out.append(FieldError(f"{path}[{i}]", f"Duplicate value: {key}"))
        seen.add(key)


def _object(value: Obj, schema: Obj, path: str, out: list[FieldError]) -> None:
    prefix = f"{path}." if path else ""
    for key in schema.get("required") or ():
        if key not in value:
            out.append(FieldError(f"{prefix}{key}", "Required value"))
    properties: Obj = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            _walk(item, properties[key], f"{prefix}{key}", out)
        elif isinstance(extra, dict):
            _walk(item, extra, f"{prefix}{key}", out)
        elif properties and not schema.get("x-kubernetes-preserve-unknown-fields") and path:
            out.append(FieldError(f"{prefix}{key}", f"unknown field (allowed: {', '.join(properties)})"))


def with_defaults(value: Any, schema: Obj) -> Any:
    """A copy with the schema's defaults filled in, as the API server stores it (and as CEL sees it)."""
    value = copy.deepcopy(value)
    _default(value, schema)
    return value


def _default(value: Any, schema: Obj) -> None:
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default(value[key], sub)
    elif isinstance(value, list):
        for item in value:
            _default(item, schema.get("items") or {})
