"""A problem with one field of a resource: what `render`, the operator and the webhook report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str  # empty: the object as a whole (a rule at the CRD's root)
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason
