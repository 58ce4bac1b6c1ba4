"""Validation of an InitPipeline: the CRD's rules, and the one the API server adds for every object.

The rules are the CRD's own (spec/schema.py walks its OpenAPI schema, spec/rules.py evaluates its CEL
rules), so a rule is written once, in the CRD, and `render`, the operator and the webhook refuse what
`kubectl apply` refuses, in its words. tests/cases.py holds the shared bad cases, which
tests/unit/spec/test_validation.py and tests/e2e/test_api_validation.py run against both.
"""

from __future__ import annotations

from typing import Any

from .fields import FieldError
from .formats import DNS_SUBDOMAIN
from .names import Obj
from .schema import pipeline_schema, schema_errors, with_defaults

__all__ = ["FieldError", "validate_pipeline"]


def validate_pipeline(body: Obj, *, cel: bool = False) -> list[FieldError]:
    """Every problem with an InitPipeline resource, each naming its field: its name, the CRD's schema and,
    with `cel`, the CRD's CEL rules (which the API server evaluates on every write, so the operator and
    the webhook, which read what it stored, leave them out)."""
    errors = _name_errors(body.get("metadata"))
    schema = pipeline_schema()
    errors += schema_errors(body, schema)
    if cel and not errors:
        from .rules import rule_errors  # cel-python: the cli extra, not in the operator's image

        errors = rule_errors(with_defaults(body, schema), schema)
    return errors


def _name_errors(metadata: Any) -> list[FieldError]:
    """What the API server checks of every object's name, beside the CRD (metadata of another type is the
    schema's to name)."""
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if metadata is not None and not isinstance(metadata, dict):
        return []
    if not isinstance(name, str) or not name:
        return [FieldError("metadata.name", "Required value: name or generateName is required")]
    if not DNS_SUBDOMAIN.match(name):
        return [FieldError("metadata.name", f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must "
                                            "consist of lower case alphanumeric characters, '-' or '.'")]
    return []
