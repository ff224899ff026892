"""Log output: lines for people (LOG_FORMAT=text) or one JSON object per line for collectors (json).

A JSON line carries the workflow and activity that logged it (from the ``temporal_workflow`` /
``temporal_activity`` details that Temporal's ``workflow.logger`` and ``activity.logger`` attach),
the statement's account and bill date when the call passes ``extra=statement_fields(key)``, and
a late-data alert's or recovery notice's ``notice`` (bankrecon.alerts).
Log calls never pass statement rows or secrets: only these identifiers and outcomes.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from temporalio import activity, workflow

from bankrecon.models import StatementKey

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Record attributes, set through ``extra``, that a JSON line carries as they are.
EXTRA_FIELDS = ("workflow_id", "account_no", "bill_date", "notice")
# Temporal's details, renamed where the workflow and activity loggers spell them differently.
TEMPORAL_FIELDS = {
    "workflow_id": "workflow_id",
    "workflow_run_id": "run_id",
    "run_id": "run_id",
    "workflow_type": "workflow_type",
    "activity_type": "activity_type",
    "activity_id": "activity_id",
    "attempt": "attempt",
    "task_queue": "task_queue",
    "namespace": "namespace",
}


def statement_fields(key: StatementKey) -> dict[str, str]:
    """``extra`` for a log call about one statement."""
    return {"account_no": key.account_no, "bill_date": key.bill_date.isoformat()}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for details in (
            getattr(record, "temporal_workflow", None),
            getattr(record, "temporal_activity", None),
        ):
            for name, value in (details or {}).items():
                if name in TEMPORAL_FIELDS:
                    line[TEMPORAL_FIELDS[name]] = value
        for name in EXTRA_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(log_format: Literal["text", "json"], level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        # The details go into their own fields; appended to the message they would be there twice.
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx logs every request at INFO, without the statement; the activities log each bank request.
    logging.getLogger("httpx").setLevel(logging.WARNING)
