"""What the tests share: settings for a test deployment, and reading back what was stored."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, make_url, select

from bankrecon.config import Settings
from bankrecon.models import StatementKey
from bankrecon.sources.refbank.format import DetailLines, Transaction
from bankrecon.sources.refbank.records import RecordWriter
from bankrecon.sources.refbank.simulator.server import DEMO_MERCHANT_SECRET
from bankrecon.statements.common import CHINA_STANDARD_TIME
from bankrecon.store.db import make_engine, statements, transactions
from bankrecon.store.persistence import load_statement

ACCOUNT = "6222020000000001"
BILL_DATE = date(2026, 11, 24)


def settings_for(
    data_dir: Path, database_url: str, bank_url: str, task_queue: str, **overrides: Any
) -> Settings:
    """Settings as a deployment would have them, never read from the developer's .env."""
    values: dict[str, Any] = {
        "temporal_task_queue": task_queue,
        "data_dir": data_dir,
        "database_url": database_url,
        "bank_base_url": bank_url,
        "bank_merchant_secret": DEMO_MERCHANT_SECRET,
        "bank_min_interval_seconds": 0,
        "bank_request_timeout_seconds": 5,
        "bank_connect_timeout_seconds": 2,
    }
    return Settings(_env_file=None, **(values | overrides))


def changed_url(database_url: str, **parts: Any) -> str:
    """``database_url`` with some parts replaced (``password=...``, ``port=...``), as text."""
    return make_url(database_url).set(**parts).render_as_string(hide_password=False)


def stored_rows(database_url: str, account_no: str, bill_date: date) -> tuple[Any, list[Any]]:
    engine = make_engine(database_url)
    try:
        return load_statement(engine, StatementKey(account_no=account_no, bill_date=bill_date))
    finally:
        engine.dispose()


def count_rows(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(transactions)).scalar_one()) + int(
                conn.execute(select(func.count()).select_from(statements)).scalar_one()
            )
    finally:
        engine.dispose()


async def fails_with(run: Awaitable[Any], error_type: str) -> str:
    """Await a workflow that must fail with ``error_type``; its failure message."""
    from temporalio.client import WorkflowFailureError  # the domain's tests run without Temporal
    from temporalio.exceptions import ApplicationError

    with pytest.raises(WorkflowFailureError) as failure:
        await run
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == error_type, cause
    return cause.message


def readable_history(history_json: str) -> str:
    """The history as JSON text plus the bytes of every payload in it (base64 in the JSON)."""
    texts = [history_json]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and isinstance(node.get("metadata"), dict):
                texts.append(base64.b64decode(node["data"]).decode("utf-8", errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return "\n".join(texts)


def write_records(data_dir: Path, name: str, txns: list[Transaction], key: StatementKey) -> str:
    """A records file holding ``txns`` as decode writes it; its path relative to ``data_dir``."""
    target = data_dir / "records" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "|".join(
            (
                "D",
                f"{key.bill_date:%Y%m%d}",
                f"{t.traded_at.astimezone(CHINA_STANDARD_TIME):%H%M%S}",
                t.serial_no,
                t.direction,
                str(t.amount),
                str(t.balance_after),
                t.counterparty_account or "",
                t.counterparty_name or "",
                t.memo or "",
            )
        )
        for t in txns
    ]
    details = DetailLines([t.serial_no for t in txns], "".join(f"{line}\n" for line in lines))
    with target.open("wb") as out:
        RecordWriter(out).write(details)
    return str(target.relative_to(data_dir))
