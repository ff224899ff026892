"""Operations, against a real worker process: its Prometheus endpoint and its JSON log lines.

One worker (``python worker.py`` with METRICS_ADDRESS and LOG_FORMAT=json) collects a statement
that is ready at the third request, and another that arrives damaged twice; then the endpoint
is scraped over HTTP and every log line is read back.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from bankrecon.models import DailyStatementInput, DailyStatementResult
from bankrecon.sources.refbank.simulator.server import (
    DEMO_MERCHANT_ID,
    DEMO_MERCHANT_SECRET,
    BankSimulator,
    StatementPlan,
)
from bankrecon.statements.common import CHINA_STANDARD_TIME
from bankrecon.telemetry.metrics import LATENESS_BUCKETS, lateness
from tests.harness import ACCOUNT, BILL_DATE, fails_with, stored_rows
from tests.processes import ProcessGroup, free_port, log_tail, start_worker, worker_env
from tests.test_damaged import _broken_line
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id

pytestmark = pytest.mark.slow

DAMAGED_ACCOUNT = "6222020000000002"
NOT_READY_TIMES = 2
DAMAGED_DOWNLOADS = 2


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> list[Sample]:
    """Prometheus' text format: one sample per line that is not a comment."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        samples.append(Sample(name, dict(_LABEL.findall(labels or "")), float(value)))
    return samples


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    (found,) = [s for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return found.value


def test_lateness_counts_from_the_midnight_in_china_that_ends_the_bill_date() -> None:
    assert lateness(date(2026, 11, 24), datetime(2026, 11, 24, 16, 0, tzinfo=UTC)) == timedelta(0)
    stored = datetime(2026, 11, 25, 9, 30, tzinfo=CHINA_STANDARD_TIME)
    assert lateness(date(2026, 11, 24), stored) == timedelta(hours=9, minutes=30)
    assert lateness(date(2026, 11, 23), stored) == timedelta(days=1, hours=9, minutes=30)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[ProcessGroup]:
    with ProcessGroup(tmp_path / "logs") as group:
        yield group


async def test_a_run_shows_in_the_metrics_endpoint_and_in_json_logs(
    dev_env: WorkflowEnvironment,
    bank: BankSimulator,
    processes: ProcessGroup,
    task_queue: str,
    tmp_path: Path,
    sqlite_url: str,
) -> None:
    bank.accounts = {DEMO_MERCHANT_ID: {ACCOUNT, DAMAGED_ACCOUNT}}
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(ready_after=NOT_READY_TIMES, lines=30, parts=2))
    damaged_archive = _broken_line()
    bank.plan(DAMAGED_ACCOUNT, BILL_DATE, StatementPlan(archive=damaged_archive))
    metrics_address = f"127.0.0.1:{free_port()}"
    env = worker_env(
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        bank_url=bank.url,
        min_interval=0,
        request_timeout=5,
    )
    worker = start_worker(processes, env | {"METRICS_ADDRESS": metrics_address, "LOG_FORMAT": "json"})

    client = dev_env.client
    started = datetime.now(UTC)
    async with asyncio.timeout(120):
        result: DailyStatementResult = await client.execute_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(account_no=ACCOUNT, bill_date=BILL_DATE, retry_interval_seconds=0.5),
            id=statement_workflow_id(ACCOUNT, BILL_DATE),
            task_queue=task_queue,
        )
        await fails_with(
            client.execute_workflow(
                DailyStatementWorkflow.run,
                DailyStatementInput(
                    account_no=DAMAGED_ACCOUNT,
                    bill_date=BILL_DATE,
                    max_damaged_downloads=DAMAGED_DOWNLOADS,
                    retry_interval_seconds=0.5,
                ),
                id=statement_workflow_id(DAMAGED_ACCOUNT, BILL_DATE),
                task_queue=task_queue,
            ),
            "StatementDamaged",
        )
    finished = datetime.now(UTC)

    # --- metrics, scraped as Prometheus would ---
    async with httpx.AsyncClient() as http:
        scraped = await http.get(f"http://{metrics_address}/metrics")
    assert scraped.status_code == 200
    samples = [
        s for s in parse_exposition(scraped.text) if s.labels.get("task_queue", task_queue) == task_queue
    ]
    merchant = {"merchant": DEMO_MERCHANT_ID}
    assert value(samples, "bankrecon_fetch_attempts", bank_code="9999", **merchant) == NOT_READY_TIMES
    # The good statement's last request, and each damaged download's.
    assert value(samples, "bankrecon_fetch_attempts", bank_code="0000", **merchant) == 1 + DAMAGED_DOWNLOADS
    assert value(samples, "bankrecon_statements_persisted", bank_code="0000", **merchant) == 1
    assert value(samples, "bankrecon_rows_persisted", **merchant) == result.transaction_count == 30
    archives = tmp_path / "data" / "archives"
    assert result.source_sha256 is not None
    downloaded = (archives / f"{result.source_sha256}.zip").stat().st_size + DAMAGED_DOWNLOADS * len(
        damaged_archive
    )
    assert value(samples, "bankrecon_archive_bytes_downloaded", **merchant) == downloaded
    # The statement was stored between ``started`` and ``finished``: its lateness lies between.
    earliest, latest = (lateness(BILL_DATE, t).total_seconds() for t in (started, finished))
    assert value(samples, "bankrecon_statement_lateness_seconds_count", **merchant) == 1
    assert earliest <= value(samples, "bankrecon_statement_lateness_seconds_sum", **merchant) <= latest
    bucket = next((f"{b:g}" for b in LATENESS_BUCKETS if b >= latest), "+Inf")
    assert value(samples, "bankrecon_statement_lateness_seconds_bucket", le=bucket, **merchant) == 1
    assert (
        earliest <= value(samples, "bankrecon_statement_last_lateness_seconds", account_no=ACCOUNT) <= latest
    )
    # The SDK's own metrics come from the same endpoint.
    assert value(samples, "temporal_workflow_completed", workflow_type="DailyStatementWorkflow") == 1

    # --- logs: every line one JSON object, the events carrying their statement ---
    assert worker.terminate() == 0
    text = worker.log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines), log_tail(worker.log)
    assert not [line for line in lines if line["logger"] == "httpx"]  # the bank requests are logged once

    def events(account_no: str, message: str) -> list[dict[str, object]]:
        return [
            line
            for line in lines
            if line.get("account_no") == account_no and str(line["message"]).startswith(message)
        ]

    good_id, damaged_id = (statement_workflow_id(a, BILL_DATE) for a in (ACCOUNT, DAMAGED_ACCOUNT))
    requests = events(ACCOUNT, "bank request: ")
    assert [line["message"] for line in requests] == ["bank request: 9999"] * NOT_READY_TIMES + [
        "bank request: 0000"
    ]
    (stored,) = events(ACCOUNT, "statement stored: 30 transactions")
    damaged = events(DAMAGED_ACCOUNT, "statement damaged, quarantined at ")
    (fetching_again,) = events(DAMAGED_ACCOUNT, f"damaged download 1 of at most {DAMAGED_DOWNLOADS}")
    assert len(damaged) == DAMAGED_DOWNLOADS
    for line in [*requests, stored]:
        assert line["workflow_id"] == good_id and line["bill_date"] == BILL_DATE.isoformat()
    for line in [*damaged, fetching_again]:
        assert line["workflow_id"] == damaged_id and line["level"] == "WARNING"
    assert fetching_again["logger"] == "temporalio.workflow"
    # The date's deadline passed long ago: an alert at once, a recovery notice once stored, each
    # line carrying its notice (references only) as the webhook would receive it.
    notices = [
        line for line in lines if line["logger"] == "bankrecon.alerts" and line["workflow_id"] == good_id
    ]
    assert [line["notice"]["kind"] for line in notices] == ["late", "recovered"]
    for line in notices:
        assert line["notice"]["workflow_id"] == good_id and line["level"] == "WARNING"
        assert line["notice"]["statement"] == {"account_no": ACCOUNT, "bill_date": BILL_DATE.isoformat()}
    assert notices[1]["notice"]["fetch_attempts"] == result.fetch_attempts
    assert notices[1]["notice"]["last_answer"]["code"] == "0000"
    assert {line["message"] for line in lines if line["logger"] == "bankrecon.worker"} >= {
        "worker stopped",
        "shutting down: letting running activities finish",
    }
    # Nothing of the statement's rows, and no secret.
    _, rows = stored_rows(sqlite_url, ACCOUNT, BILL_DATE)
    assert len(rows) == 30
    for row in rows:
        for field in (row.serial_no, row.counterparty_name, row.counterparty_account, row.memo):
            assert not field or field not in text, field
    assert DEMO_MERCHANT_SECRET not in text
