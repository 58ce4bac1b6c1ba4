"""The operator's log lines: JSON with the pipeline's namespace and name, and kopf's noise dropped."""

from __future__ import annotations

import logging

from initpipeline.controller.logformat import JsonFormatter, QuietHandlerSuccess, RefusalsAsWarnings


def test_json_log_lines_name_the_pipeline() -> None:
    import json

    record = logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, "created Pod %s", ("shop-1",), None)
    record.k8s_ref = {"namespace": "shop-ns", "name": "shop", "kind": "InitPipeline", "uid": "u"}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "created Pod shop-1" and line["level"] == "info"
    assert (line["namespace"], line["name"], line["kind"]) == ("shop-ns", "shop", "InitPipeline")
    plain = json.loads(JsonFormatter().format(logging.LogRecord("x", logging.WARNING, "f", 1, "hi", (), None)))
    assert "namespace" not in plain and plain["level"] == "warning"


def test_kopfs_handler_success_lines_are_dropped_and_everything_else_kept() -> None:
    def record(level: int, msg: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", level, __file__, 1, msg, None, None)
    quiet = QuietHandlerSuccess()
    assert not quiet.filter(record(logging.INFO, "Handler 'on_child_event' succeeded."))
    assert quiet.filter(record(logging.INFO, "created Pod shop-1"))
    assert quiet.filter(record(logging.ERROR, "Handler 'on_pipeline' failed with an exception and will stop now"))
    assert quiet.filter(record(logging.WARNING, "Handler 'on_pipeline' succeeded."))  # only kopf's INFO line


def test_a_webhook_refusal_is_a_warning_and_other_errors_stay_errors() -> None:
    def filtered(level: int, msg: str) -> logging.LogRecord:
        record = logging.LogRecord("kopf.objects", level, __file__, 1, msg, None, None)
        assert RefusalsAsWarnings().filter(record)  # kept, whatever its level
        return record
    refusal = filtered(logging.ERROR, "Webhook 'inject' failed permanently: no InitPipeline named shop-init")
    assert (refusal.levelno, refusal.levelname) == (logging.WARNING, "WARNING")
    crash = filtered(logging.ERROR, "Webhook 'inject' failed with an exception. Will stop.")
    assert (crash.levelno, crash.levelname) == (logging.ERROR, "ERROR")
    handler = filtered(logging.ERROR, "Handler 'on_pipeline' failed permanently: bad spec")
    assert handler.levelno == logging.ERROR
