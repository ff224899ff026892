"""The fan-out benchmark's yardstick: DailyStatementWorkflow served with activities that do nothing.

The fetch refuses as often as the simulated bank does (BENCH_REFUSALS), then hands back a
made-up archive; decode and persist return at once. ``python -m bench.noop_worker`` reads
the same settings as worker.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.worker import Worker

from bankrecon.config import Settings
from bankrecon.models import (
    ArchiveRef,
    DecodedStatement,
    DecodeRequest,
    FetchResult,
    PersistRequest,
    PersistResult,
    StatementKey,
    StatementTotals,
)
from bankrecon.temporal.client import connect
from bankrecon.temporal.search_attributes import register_search_attributes
from worker import MAX_CONCURRENT_ACTIVITIES
from workflows.daily_statement import DailyStatementWorkflow

log = logging.getLogger("bench.noop_worker")


class NoopActivities:
    def __init__(self, refusals: int):
        self._refusals = refusals

    @activity.defn(name="fetch_statement")
    async def fetch_statement(self, key: StatementKey) -> FetchResult:
        attempt = activity.info().attempt
        if attempt <= self._refusals:
            raise ApplicationError(
                "statement not ready", type="BankNotReady", category=ApplicationErrorCategory.BENIGN
            )
        archive = ArchiveRef(sha256="0" * 64, size=0, file_name="noop.zip")
        return FetchResult(code="0000", archive=archive, fetched_at=datetime.now(UTC), bank_requests=attempt)

    @activity.defn(name="decode_statement")
    def decode_statement(self, request: DecodeRequest) -> DecodedStatement:
        return DecodedStatement(
            totals=StatementTotals.empty(),
            source_sha256=request.archive.sha256,
            records_file="records/noop.txt",
            part_count=1,
        )

    @activity.defn(name="persist_statement")
    def persist_statement(self, request: PersistRequest) -> PersistResult:
        return PersistResult(written=True, transaction_count=0)


async def serve(settings: Settings, refusals: int) -> None:
    client = await connect(settings)
    await register_search_attributes(client)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    activities = NoopActivities(refusals)
    with ThreadPoolExecutor(max_workers=MAX_CONCURRENT_ACTIVITIES) as executor:
        async with Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=[DailyStatementWorkflow],
            activities=[
                activities.fetch_statement,
                activities.decode_statement,
                activities.persist_statement,
            ],
            activity_executor=executor,
            max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        ):
            # The same words as worker.py's, which the benchmark waits for.
            log.info("worker serving task queue %r (no-op activities)", settings.temporal_task_queue)
            await stop.wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(Settings(), int(os.environ.get("BENCH_REFUSALS", "2"))))


if __name__ == "__main__":
    main()
