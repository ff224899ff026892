"""Retention: what has expired goes, in batches, and nothing younger; on SQLite and PostgreSQL, and as the
RetentionWorkflow that `bankrecon schedule`'s second Schedule starts."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, insert, select, update
from temporalio.testing import WorkflowEnvironment

from bankrecon.config import Settings
from bankrecon.models import RetentionResult
from bankrecon.ops.nightly_schedule import apply_retention_schedule
from bankrecon.store.archives import archive_store
from bankrecon.store.db import bank_requests, bank_window_queue, cancelled_statements, stored_archives
from bankrecon.store.retention import RetentionPolicy, expire_everything
from bankrecon.store.schema import open_database
from tests.test_archive_store import _write_archive
from worker import running_worker

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = RetentionPolicy(
    bank_requests_days=30,
    window_queue_days=7,
    cancellations_days=30,
    archives_days=365,
    records_days=7,
    quarantine_days=365,
    batch=2,
)
OLD, YOUNG = 5, 3  # of each kind: more old ones than a batch holds


def _fill(engine: Engine, data_dir: Path, now: datetime) -> None:
    ages = [(n, timedelta(days=400)) for n in range(OLD)] + [
        (OLD + n, timedelta(days=1)) for n in range(YOUNG)
    ]
    store = archive_store("database", engine)
    with engine.begin() as conn:
        for n, age in ages:
            at = now - age
            conn.execute(
                insert(bank_requests).values(
                    request_id=f"r{n}",
                    merchant_id="M1",
                    account_no="6222020000000001",
                    bill_date=date(2025, 1, 1),
                    workflow_id=f"w{n}",
                    run_id="run",
                    activity_attempt=1,
                    sent_at=at,
                )
            )
            conn.execute(
                insert(bank_window_queue).values(
                    merchant_id="M1", workflow_id=f"w{n}", run_id="run", waiting_since=at, seen_at=at
                )
            )
            conn.execute(
                insert(cancelled_statements).values(
                    account_no="6222020000000001",
                    bill_date=date(2025, 1, 1) + timedelta(days=n),
                    cancelled_at=at,
                    workflow_id=f"w{n}",
                    run_id="run",
                )
            )
    for _n, age in ages:
        sha256 = _write_archive(data_dir, 100)
        store.put(data_dir, sha256)
        with engine.begin() as conn:
            conn.execute(
                update(stored_archives).where(stored_archives.c.sha256 == sha256).values(stored_at=now - age)
            )
        for kind in ("records", "quarantine", "archives"):
            path = data_dir / kind / f"{sha256}.{kind}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_bytes(b"x")
            os.utime(path, (0, (now - age).timestamp()))
        os.utime(data_dir / "archives" / f"{sha256}.zip", (0, (now - age).timestamp()))


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_expired_rows_archives_and_files_go_in_batches_and_nothing_younger(
    database_url: str, tmp_path: Path
) -> None:
    engine = open_database(database_url)
    data_dir = tmp_path / "data"
    _fill(engine, data_dir, NOW)
    batches: list[int] = []

    deleted = expire_everything(
        engine, archive_store("database", engine), data_dir, POLICY, NOW, batches.append
    )

    assert deleted == {
        "bank_requests": OLD,
        "window_queue": OLD,
        "cancellations": OLD,
        "stored_archives": OLD,
        "archives": 2 * OLD,  # each archive's zip and the planted file beside it
        "records": OLD,
        "quarantine": OLD,
    }
    assert len(batches) >= 3 * 7  # five old ones take three batches of two, for each kind
    for table in (bank_requests, bank_window_queue, cancelled_statements, stored_archives):
        assert _count(engine, table) == YOUNG, table
    for kind in ("records", "quarantine"):
        assert len(list((data_dir / kind).iterdir())) == YOUNG
    assert len(list((data_dir / "archives").iterdir())) == 2 * YOUNG
    # Run again: nothing left to delete.
    again = expire_everything(engine, archive_store("database", engine), data_dir, POLICY, NOW)
    assert set(again.values()) == {0}


async def test_bankrecon_schedules_the_retention_run_and_it_deletes_what_expired(
    dev_env: WorkflowEnvironment, settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    client = dev_env.client
    configured = settings(database_url).model_copy(
        update={"retention_schedule_id": f"retention-{tmp_path.name}", "archive_store_url": "database"}
    )
    engine = open_database(database_url)
    data_dir = configured.data_dir
    _fill(engine, data_dir, datetime.now(UTC))
    applied = await apply_retention_schedule(client, configured)
    again = await apply_retention_schedule(client, configured)
    assert (applied.change, again.change, applied.cron) == ("created", "updated", "0 3 * * *")
    handle = client.get_schedule_handle(configured.retention_schedule_id)
    try:
        async with asyncio.timeout(120), running_worker(client, configured):
            await handle.trigger()
            while not (actions := (await handle.describe()).info.recent_actions):
                await asyncio.sleep(0.1)
            started = actions[0].action
            workflow_id = started.workflow_id  # type: ignore[attr-defined]
            result = await client.get_workflow_handle(workflow_id, result_type=RetentionResult).result()
    finally:
        await handle.delete()
    # Everything 400 days old is past the defaults (a year of archives); a day-old thing is not.
    assert result.deleted["bank_requests"] == OLD and result.deleted["stored_archives"] == OLD
    assert _count(engine, stored_archives) == YOUNG
