"""What the tests share: settings for a test deployment, and reading back what was stored."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bankrecon.config import Settings
from bankrecon.db import make_engine, statements, transactions
from bankrecon.models import StatementKey
from bankrecon.persistence import load_statement


def settings_for(
    data_dir: Path, database_url: str, bank_url: str, task_queue: str, **overrides: Any
) -> Settings:
    """Settings as a deployment would have them, never read from the developer's .env."""
    values: dict[str, Any] = {
        "temporal_task_queue": task_queue,
        "data_dir": data_dir,
        "database_url": database_url,
        "bank_base_url": bank_url,
        "bank_min_interval_seconds": 0,
        "bank_request_timeout_seconds": 5,
        "bank_connect_timeout_seconds": 2,
    }
    return Settings(_env_file=None, **(values | overrides))


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
