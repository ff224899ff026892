"""The bankrecon worker: serves DailyStatementWorkflow and its activities on one task queue.

    python worker.py

Configuration comes from the environment or a .env file (see bankrecon/config.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.statements import StatementActivities
from bankrecon.config import Settings
from workflows.daily_statement import DailyStatementWorkflow

log = logging.getLogger("bankrecon.worker")

# Decode and persist run in threads; fetches are async and wait on the bank, not on threads.
ACTIVITY_THREADS = 8


def build_worker(
    client: Client, activities: StatementActivities, task_queue: str, executor: ThreadPoolExecutor
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[DailyStatementWorkflow],
        activities=[
            activities.fetch_statement,
            activities.decode_statement,
            activities.persist_statement,
        ],
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS * 8,
    )


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    client = await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
    activities = StatementActivities.from_settings(settings)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        worker = build_worker(client, activities, settings.temporal_task_queue, executor)
        async with worker:
            log.info(
                "worker serving task queue %r on %s (namespace %r), database %s, bank %s",
                settings.temporal_task_queue,
                settings.temporal_address,
                settings.temporal_namespace,
                settings.resolved_database_url().split("@")[-1],
                settings.bank_base_url,
            )
            await stop.wait()
            log.info("shutting down: finishing running activities")
    await activities.close()


if __name__ == "__main__":
    asyncio.run(main())
