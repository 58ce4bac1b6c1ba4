"""No input crashes the validator or `initpipeline render`: property-based, with Hypothesis.

Every document is a real example (a Pod pipeline, a Deployment, an attached pipeline with its workload)
with one to four of its nodes replaced by arbitrary YAML-shaped values: wrong types at every level, nulls,
huge numbers, long strings, deep nesting. The validator must answer with field-named errors or none, and
render must exit 0 with objects or 1 with errors on stderr, never with a traceback. The budget is bounded
(max_examples below), so `make test` spends seconds here; HYPOTHESIS_PROFILE=long searches longer.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from initpipeline.cli.render import cmd_render
from initpipeline.spec.validation import FieldError, validate_pipeline
from tests.cases import ROOT, deployment, shop

settings.register_profile("default", max_examples=250, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _attached() -> list[dict[str, Any]]:
    pipeline = yaml.safe_load((ROOT / "examples" / "attach" / "pipeline.yaml").read_text())
    workload = yaml.safe_load((ROOT / "examples" / "attach" / "deployment.yaml").read_text())
    return [pipeline, workload]


BASES = [lambda: [shop()], lambda: [deployment()], _attached]

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
           | st.sampled_from(["", "0", "y", "-", "../..", "http://", "a" * 5000, "Deployment", "Pod", "spec"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12) | st.sampled_from(["name", "kind", "image", "spec"]),
                                        inner, max_size=4), max_leaves=12)


def deep(depth: int, kind: str) -> Any:
    node: Any = "x"
    for _ in range(depth):
        node = [node] if kind == "list" else {"a": node}
    return node


anything = values | st.builds(deep, st.integers(min_value=50, max_value=1500), st.sampled_from(["list", "dict"]))


def paths(doc: Any) -> list[list[Any]]:
    """Every path to a node of doc (the root's children and below)."""
    found: list[list[Any]] = []

    def walk(node: Any, path: list[Any]) -> None:
        if len(path) > 12:  # below that, a value drawn earlier: it is replaced whole or not at all
            return
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            found.append([*path, key])
            walk(child, [*path, key])
    walk(doc, [])
    return found


def replace(doc: Any, path: list[Any], value: Any) -> None:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@st.composite
def documents(draw: st.DrawFn) -> list[Any]:
    docs: list[Any] = copy.deepcopy(draw(st.sampled_from(BASES))())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        index = draw(st.integers(min_value=0, max_value=len(docs) - 1))
        choices = paths(docs[index])
        if not choices or draw(st.integers(min_value=0, max_value=20)) == 0:
            docs[index] = draw(anything)  # the whole document
            continue
        replace(docs[index], draw(st.sampled_from(choices)), draw(anything))
    return docs


def render_text(docs: list[Any], tmp_dir: str) -> tuple[int, str, str]:
    path = os.path.join(tmp_dir, "pipeline.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        # JSON is YAML, and json writes documents of any depth (PyYAML's writer recurses)
        handle.write("\n---\n".join(json.dumps(doc) for doc in docs))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cmd_render(argparse.Namespace(files=[path], runner_image="runner:test"))
    return code, out.getvalue(), err.getvalue()


@given(documents())
def test_the_validator_names_fields_and_never_crashes(docs: list[Any]) -> None:
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "InitPipeline":
            errors = validate_pipeline(doc)
            assert all(isinstance(e, FieldError) and e.reason and str(e) for e in errors)


@given(documents())
@settings(max_examples=120)
def test_render_exits_0_or_1_and_never_crashes(docs: list[Any]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        code, out, err = render_text(docs, folder)
    assert code in (0, 1)
    if code == 0:
        assert list(yaml.safe_load_all(out)), "exit 0 must print the objects"
    else:
        assert err.startswith("error: "), err


def test_the_reported_case_metadata_a_number(tmp_path: Any) -> None:
    doc = shop()
    doc["metadata"] = 5
    message = 'metadata: Invalid value: "integer": must be of type object'
    assert [str(e) for e in validate_pipeline(doc)] == [message]
    code, _, err = render_text([doc], str(tmp_path))
    assert code == 1 and "InitPipeline <unnamed> is invalid" in err and message in err
