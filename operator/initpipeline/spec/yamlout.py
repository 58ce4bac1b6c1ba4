"""YAML that every reader reads back as written: PyYAML quotes a string only where YAML 1.1 would read it as
something else, but kubectl and Go's YAML libraries read YAML 1.2, where `92209e9` (a revision hash) or
`1e3` is a number. Such strings are quoted here."""

from __future__ import annotations

import re
from typing import Any

import yaml

# what YAML 1.2's core schema (and Go's readers) take as a number, beyond what YAML 1.1 resolves
_NUMBER_LIKE = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$|^0[xob][0-9a-fA-F_]+$"
                          r"|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$")


class _Dumper(yaml.SafeDumper):
    pass


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if _NUMBER_LIKE.match(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_str(value)


_Dumper.add_representer(str, _string)


def dump_all(documents: list[Any], **options: Any) -> str:
    return str(yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, **options))


def dump(document: Any, **options: Any) -> str:
    return str(yaml.dump(document, Dumper=_Dumper, sort_keys=False, **options))
