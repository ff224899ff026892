"""A bank account's day on the web page: its 余额调节表, drawn from the same statement as
`bankrecon recon balance`, over real HTTP, on both databases."""

from __future__ import annotations

from pathlib import Path

import httpx

from bankrecon.bankrec.balance import day_balance
from bankrecon.bankrec.config import bank_account
from bankrecon.bankrec.demo import DEMO_BANK_ACCOUNT, MONTH_END, STATEMENT_DAYS, plant_month
from bankrecon.bankrec.run import reconcile_bank_day
from bankrecon.config import Settings
from bankrecon.recon.models import ReconDay, ReconRunRequest
from bankrecon.store.db import make_engine
from bankrecon.store.schema import prepare_schema
from bankrecon.web import labels
from bankrecon.web.app import create_app
from bankrecon.web.users import Role, add_user
from tests.web_setup import PASSWORDS, login, serve


def test_a_bank_accounts_day_shows_its_balance_statement_as_accountants_draw_it(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    prepare_schema(engine)
    config = plant_month(engine, tmp_path)
    account = bank_account(config, DEMO_BANK_ACCOUNT)
    for day in STATEMENT_DAYS:
        request = ReconRunRequest(
            day=ReconDay(account_no=DEMO_BANK_ACCOUNT, recon_date=day),
            workflow_id=f"w-{day}",
            run_id=f"r-{day}",
        )
        reconcile_bank_day(engine, account, request)
    expected = day_balance(engine, DEMO_BANK_ACCOUNT, MONTH_END)
    users = tmp_path / "web-users.toml"
    add_user(users, "viewer", PASSWORDS[Role.viewer], Role.viewer)
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", database_url=database_url, web_users_file=users,
        recon_config_file=config, bank_accounts=[DEMO_BANK_ACCOUNT],
    )  # fmt: skip
    try:
        with serve(create_app(settings, engine)) as url, httpx.Client(base_url=url, timeout=10) as client:
            assert login(client, "viewer", PASSWORDS[Role.viewer]).status_code == 303
            chinese = {"Accept-Language": "zh-CN,zh;q=0.9"}
            page = client.get(f"/day/{DEMO_BANK_ACCOUNT}/{MONTH_END}", headers=chinese).text
            english = client.get(f"/day/{DEMO_BANK_ACCOUNT}/{MONTH_END}?lang=en").text
            before = client.get(
                f"/day/{DEMO_BANK_ACCOUNT}/{STATEMENT_DAYS[0].replace(day=1)}", headers=chinese
            ).text
    finally:
        engine.dispose()

    assert "银行存款余额调节表" in page and "Bank reconciliation statement" in english
    adjusted = labels.money(expected.adjusted_bank_balance)
    assert adjusted == labels.money(expected.adjusted_book_balance) == "112,978.38"
    assert f'<th class="money" id="adjusted-bank">{adjusted}</th>' in page
    assert f'<th class="money" id="adjusted-book">{adjusted}</th>' in page
    assert "调节后余额相符" in page
    assert f'<td class="money">{labels.money(expected.bank_balance)}</td>' in page
    for state, items in expected.items.items():
        for item in items:
            assert item.reference in page and labels.money(item.amount) in page, (state, item)
    # A day before the first run has none to show.
    assert "银行存款余额调节表" not in before
