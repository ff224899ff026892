"""Running the real worker pieces in a test: settings, activities and a worker on a fresh task queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from temporalio.client import Client

from activities.statements import StatementActivities
from bankrecon.config import Settings
from bankrecon.db import make_engine, statements, transactions
from worker import build_worker


def settings_for(data_dir: Path, database_url: str, bank_url: str, **overrides: Any) -> Settings:
    """Settings as a deployment would have them, never read from the developer's .env."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "bank_base_url": bank_url,
        "bank_min_interval_seconds": 0,
        "bank_request_timeout_seconds": 5,
        "bank_connect_timeout_seconds": 2,
    }
    return Settings(_env_file=None, **(values | overrides))


@asynccontextmanager
async def running_worker(client: Client, settings: Settings, task_queue: str) -> AsyncIterator[None]:
    activities = StatementActivities.from_settings(settings)
    try:
        with ThreadPoolExecutor(max_workers=4) as executor:
            async with build_worker(client, activities, task_queue, executor):
                yield
    finally:
        await activities.close()


def stored_rows(database_url: str, account_no: str, bill_date: date) -> tuple[Any, list[Any]]:
    """The statement row (or None) and its transactions in statement order."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            statement = conn.execute(
                select(statements).where(
                    statements.c.account_no == account_no, statements.c.bill_date == bill_date
                )
            ).one_or_none()
            rows = conn.execute(
                select(transactions)
                .where(transactions.c.account_no == account_no, transactions.c.bill_date == bill_date)
                .order_by(transactions.c.seq)
            ).all()
    finally:
        engine.dispose()
    return statement, list(rows)


def count_rows(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(transactions)).scalar_one()) + int(
                conn.execute(select(func.count()).select_from(statements)).scalar_one()
            )
    finally:
        engine.dispose()
