"""Retention: deleting what has expired, in batches of short transactions.

Each batch deletes at most ``batch`` rows chosen by key, in its own transaction: the rows it
locks are old ones no worker writes, and nothing holds a table lock. The workers go on
writing new rows meanwhile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Column, Engine, Table, delete, select, tuple_

from bankrecon.config import Settings
from bankrecon.store.archives import ArchiveStore
from bankrecon.store.db import bank_requests, bank_window_queue, cancelled_statements


@dataclass(frozen=True)
class RetentionPolicy:
    """How many days of each thing to keep."""

    bank_requests_days: int
    window_queue_days: int
    cancellations_days: int
    archives_days: int
    records_days: int
    quarantine_days: int
    batch: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            bank_requests_days=settings.retention_bank_requests_days,
            window_queue_days=settings.retention_window_queue_days,
            cancellations_days=settings.retention_cancellations_days,
            archives_days=settings.retention_archives_days,
            records_days=settings.retention_records_days,
            quarantine_days=settings.retention_quarantine_days,
            batch=settings.retention_batch_size,
        )


def expire_rows(
    engine: Engine, table: Table, stamp: Column[datetime], before: datetime, batch: int
) -> Callable[[], int]:
    """One batch's deletion: up to ``batch`` of the table's rows stamped before ``before``, by key."""
    key = tuple_(*table.primary_key.columns)

    def one_batch() -> int:
        chosen = select(*table.primary_key.columns).where(stamp < before).limit(batch)
        with engine.begin() as conn:
            return conn.execute(delete(table).where(key.in_(chosen))).rowcount

    return one_batch


def expire_files(directory: Path, before: datetime, batch: int) -> Callable[[], int]:
    """One batch's deletion: up to ``batch`` files in ``directory`` last written before ``before``."""
    cutoff = before.timestamp()

    def one_batch() -> int:
        removed = 0
        if not directory.is_dir():
            return 0
        for path in directory.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and not path.name.startswith(".") and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
                    if removed == batch:
                        break
        return removed

    return one_batch


def drain(one_batch: Callable[[], int], batch: int, on_batch: Callable[[int], None]) -> int:
    """Run batches until one deletes fewer than a full batch; the total deleted."""
    total = 0
    while True:
        deleted = one_batch()
        total += deleted
        on_batch(total)
        if deleted < batch:
            return total


def expire_everything(
    engine: Engine,
    store: ArchiveStore,
    data_dir: Path,
    policy: RetentionPolicy,
    now: datetime,
    on_batch: Callable[[int], None] = lambda _total: None,
) -> dict[str, int]:
    """Delete every kind of expired thing; how many of each went."""

    def before(days: int) -> datetime:
        return now - timedelta(days=days)

    def archives_batch() -> int:
        return store.expire(before(policy.archives_days), policy.batch)

    work: dict[str, Callable[[], int]] = {
        "bank_requests": expire_rows(
            engine, bank_requests, bank_requests.c.sent_at, before(policy.bank_requests_days), policy.batch
        ),
        "window_queue": expire_rows(
            engine,
            bank_window_queue,
            bank_window_queue.c.seen_at,
            before(policy.window_queue_days),
            policy.batch,
        ),
        "cancellations": expire_rows(
            engine,
            cancelled_statements,
            cancelled_statements.c.cancelled_at,
            before(policy.cancellations_days),
            policy.batch,
        ),
        "stored_archives": archives_batch,
        **expired_files(data_dir, policy, now),
    }
    return {name: drain(one_batch, policy.batch, on_batch) for name, one_batch in work.items()}


def expired_files(data_dir: Path, policy: RetentionPolicy, now: datetime) -> dict[str, Callable[[], int]]:
    """A DATA_DIR's expired files, in batches: this host's alone, so every worker sweeps its own when
    it starts, and the retention run sweeps the one of the host it runs on."""
    kept = {
        "archives": policy.archives_days,
        "records": policy.records_days,
        "quarantine": policy.quarantine_days,
    }
    return {
        name: expire_files(data_dir / name, now - timedelta(days=days), policy.batch)
        for name, days in kept.items()
    }


def sweep_data_dir(data_dir: Path, policy: RetentionPolicy, now: datetime) -> dict[str, int]:
    return {
        name: drain(one_batch, policy.batch, lambda _total: None)
        for name, one_batch in expired_files(data_dir, policy, now).items()
    }
