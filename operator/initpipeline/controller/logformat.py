"""The operator's log lines: kopf's text, or one JSON object a line for log collectors."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any


class JsonFormatter(logging.Formatter):
    """One JSON object a line. A message about a pipeline (kopf's per-object loggers carry
    `k8s_ref`) has its namespace and name as fields, so logs can be filtered by pipeline."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            for key in ("namespace", "name", "kind"):
                if ref.get(key):
                    entry[key] = ref[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class QuietHandlerSuccess(logging.Filter):
    """Drops kopf's "Handler '...' succeeded." lines. kopf writes one for every watch event that a handler
    took; the operator's handlers only note the event and wake a pipeline, so a thousand pipelines made
    tens of thousands of lines that said nothing. What a pass did, and every failure, is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.msg, str):
            return True
        return not (record.msg.startswith("Handler '") and record.msg.endswith("' succeeded."))


class RefusalsAsWarnings(logging.Filter):
    """Logs kopf's "Webhook 'inject' failed permanently: ..." at warning level, not error. That line is a
    Pod refused by attach mode's webhook: the webhook doing its job (the workload's pipeline is missing or
    does not accept it), which the workload's events show its owner too. Errors stay what the operator's
    on-call must look at."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.levelno == logging.ERROR and isinstance(record.msg, str)
                and record.msg.startswith("Webhook '") and " failed permanently: " in record.msg):
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


def configure_logging(level: str, log_format: str) -> None:
    """kopf's stream handler on the root logger, with our formatter when JSON is asked for."""
    import kopf

    kopf.configure(verbose=level == "debug", log_prefix=True)
    root = logging.getLogger()
    root.setLevel(level.upper())
    # one line per liveness probe says nothing
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    objects = logging.getLogger("kopf.objects")  # kopf's lines about one object
    objects.addFilter(RefusalsAsWarnings())
    if level != "debug":
        objects.addFilter(QuietHandlerSuccess())
    if log_format == "json":
        for handler in root.handlers:
            handler.setFormatter(JsonFormatter())
