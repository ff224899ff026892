"""bankrecon's own metrics, recorded through the running activity's Temporal metric meter.

They are served by the SDK runtime's Prometheus endpoint (METRICS_ADDRESS), beside the SDK's
own metrics, with the meter's labels (namespace, task_queue, activity_type) and those below.
Without METRICS_ADDRESS the meter records nothing.

Labels stay few: merchant and bank code have a handful of values each. Only the lateness
gauge is per account (one series per configured account), so that a late account shows by
name; the lateness histogram, whose buckets multiply its series, is per merchant.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from temporalio import activity

from bankrecon.models import ArchiveRef, PersistRequest
from bankrecon.sources.base import Answer, Outcome
from bankrecon.statements.common import CHINA_STANDARD_TIME

FETCH_ATTEMPTS = "bankrecon_fetch_attempts"
ARCHIVE_BYTES = "bankrecon_archive_bytes_downloaded"
STATEMENTS_PERSISTED = "bankrecon_statements_persisted"
ROWS_PERSISTED = "bankrecon_rows_persisted"
LATENESS = "bankrecon_statement_lateness_seconds"
LAST_LATENESS = "bankrecon_statement_last_lateness_seconds"

# A statement is due when its day ends; most arrive within hours, a late one within days.
LATENESS_BUCKETS = [0, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400]
HISTOGRAM_BUCKETS = {LATENESS: LATENESS_BUCKETS}

# The label for an attempt that got no business answer (HTTP error, timeout, unreadable body).
NO_ANSWER = "none"
# The label for a code the source does not know, which could be anything.
UNKNOWN_CODE = "unknown"


def lateness(bill_date: date, persisted_at: datetime) -> timedelta:
    """How long after its day ended in China (midnight starting the next day) a statement was stored."""
    day_ended = datetime.combine(bill_date + timedelta(days=1), time(), tzinfo=CHINA_STANDARD_TIME)
    return persisted_at - day_ended


def fetch_attempted(merchant_id: str, answer: Answer | None) -> None:
    """One request sent to the bank, by the code it answered."""
    if answer is None:
        code = NO_ANSWER
    else:
        code = UNKNOWN_CODE if answer.outcome is Outcome.UNRECOGNISED else answer.code
    activity.metric_meter().create_counter(
        FETCH_ATTEMPTS, "requests sent to the bank for a statement, by the code it answered"
    ).add(1, {"merchant": merchant_id, "bank_code": code})


def archive_downloaded(merchant_id: str, archive: ArchiveRef) -> None:
    activity.metric_meter().create_counter(
        ARCHIVE_BYTES, "bytes of statement archives downloaded (the zip files, as stored)", "By"
    ).add(archive.size, {"merchant": merchant_id})


def statement_persisted(merchant_id: str, request: PersistRequest, persisted_at: datetime) -> None:
    """A statement newly written to the database (not a retry that found it already there)."""
    meter = activity.metric_meter()
    key = request.statement
    meter.create_counter(STATEMENTS_PERSISTED, "statements written to the database").add(
        1, {"merchant": merchant_id, "bank_code": request.bank_code}
    )
    meter.create_counter(ROWS_PERSISTED, "statement rows (transactions) written to the database").add(
        request.totals.transaction_count, {"merchant": merchant_id}
    )
    late = lateness(key.bill_date, persisted_at).total_seconds()
    meter.create_histogram_float(
        LATENESS, "time from the end of a statement's day (China Standard Time) to its storing", "s"
    ).record(late, {"merchant": merchant_id})
    meter.create_gauge_float(
        LAST_LATENESS, "lateness of the account's most recently stored statement", "s"
    ).set(late, {"account_no": key.account_no})
