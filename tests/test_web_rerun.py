"""An operator re-runs a day's reconciliation from the page: confirmed first, started as `recon --rerun`
starts it, its new run stored by a real worker on the dev server; an accountant is refused it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from bankrecon.recon.demo import DEMO_CHANNEL
from bankrecon.recon.models import ReconDay
from bankrecon.recon.results import latest_run_id, run_summary
from bankrecon.web.users import Role
from tests.web_setup import PLANTED_RUN_ID, Site, csrf_of, running_site
from worker import running_worker


def _post(client: httpx.Client, path: str) -> httpx.Response:
    return client.post(path, data={"csrf": csrf_of(client.get(path))})


async def _new_run(site: Site, seconds: float) -> str:
    day = ReconDay(account_no=DEMO_CHANNEL, recon_date=site.day)
    async with asyncio.timeout(seconds):
        while (run_id := await asyncio.to_thread(latest_run_id, site.engine, day)) == PLANTED_RUN_ID:
            await asyncio.sleep(0.2)
    assert run_id is not None
    return run_id


async def test_an_operator_reruns_a_day_and_an_accountant_may_not(
    dev_env: WorkflowEnvironment, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    client = dev_env.client
    overrides = {
        "temporal_address": client.service_client.config.target_host,
        "temporal_task_queue": task_queue,
        "statement_retry_interval_seconds": 1800,
        "bank_merchant_secret": "the-worker-needs-one",  # the page does not
    }
    with running_site(database_url, tmp_path, **overrides) as site:
        path = f"/day/{DEMO_CHANNEL}/{site.day}/rerun"
        with site.logged_in(Role.accountant) as accountant:
            day_page = await asyncio.to_thread(accountant.get, f"/day/{DEMO_CHANNEL}/{site.day}")
            assert path not in day_page.text
            assert (await asyncio.to_thread(accountant.get, path)).status_code == 403
            token = csrf_of(day_page)
            refused = await asyncio.to_thread(accountant.post, path, data={"csrf": token})
            assert refused.status_code == 403
        async with running_worker(client, site.settings):
            with site.logged_in(Role.operator) as operator:
                confirm = await asyncio.to_thread(operator.get, path, headers={"Accept-Language": "en"})
                assert confirm.status_code == 200
                assert "Its result replaces the one shown; the notes written stay." in confirm.text
                # Nothing happens before the confirmation is posted.
                await asyncio.sleep(1)
                assert latest_run_id(site.engine, ReconDay(account_no=DEMO_CHANNEL, recon_date=site.day)) == (
                    PLANTED_RUN_ID
                )
                started = await asyncio.to_thread(_post, operator, path)
                assert started.status_code == 303
                run_id = await _new_run(site, 60)
                assert started.headers["location"].endswith(f"?rerun={run_id}")
                shown = await asyncio.to_thread(operator.get, started.headers["location"])
                assert run_id in shown.text
        rerun, planted = run_summary(site.engine, run_id), run_summary(site.engine, PLANTED_RUN_ID)
        assert rerun is not None and planted is not None
        # The same inputs: the same result, by a new run.
        assert rerun.ledger_sha256 == planted.ledger_sha256
        assert [(t.state, t.side, t.lines) for t in rerun.totals if t.state != "settlement_pending"] == [
            (t.state, t.side, t.lines) for t in planted.totals if t.state != "settlement_pending"
        ]
