"""The web page's tests' site: the demo's channel day reconciled, a failed and a waiting bank day, a user
of each role, and the page served over a real socket by uvicorn in a thread."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, insert

from bankrecon.config import Settings
from bankrecon.models import StatementFailure, StatementKey
from bankrecon.recon.config import load_recon_config
from bankrecon.recon.demo import DEMO_CHANNEL, plant_demo
from bankrecon.recon.models import ReconDay, ReconRunRequest
from bankrecon.recon.results import latest_run_id, run_items
from bankrecon.recon.run import reconcile_day
from bankrecon.statements.common import CHINA_STANDARD_TIME
from bankrecon.store.db import bank_requests, make_engine
from bankrecon.store.failures import record_failure
from bankrecon.store.schema import prepare_schema
from bankrecon.web.app import create_app
from bankrecon.web.users import Role, add_user

ROOT = Path(__file__).resolve().parent.parent
SETTLING_BANK = "6222020000000001"
FAILING_BANK = "6222020000000002"
WAITING_BANK = "6222020000000003"
PASSWORDS = {role: f"{role.name}-password-1" for role in Role}
PLANTED_RUN_ID = "run-web-1"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def today() -> date:
    return datetime.now(CHINA_STANDARD_TIME).date()


@dataclass
class Site:
    url: str
    engine: Engine
    settings: Settings
    day: date
    app: Any

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=10)

    @contextmanager
    def logged_in(self, role: Role) -> Iterator[httpx.Client]:
        with self.client() as client:
            answer = login(client, role.name, PASSWORDS[role])
            assert answer.status_code == 303, answer.text
            yield client

    def exceptions(self) -> list[Any]:
        run_id = latest_run_id(self.engine, ReconDay(account_no=DEMO_CHANNEL, recon_date=self.day))
        assert run_id is not None
        return run_items(self.engine, run_id, exceptions_only=True)


def csrf_of(page: httpx.Response) -> str:
    found = CSRF_FIELD.search(page.text)
    assert found, page.text
    return found.group(1)


def login(client: httpx.Client, name: str, password: str) -> httpx.Response:
    token = csrf_of(client.get("/login"))
    return client.post("/login", data={"csrf": token, "name": name, "password": password, "next": "/"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """The app on a real socket, in a thread, until the test is done."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise AssertionError("the web server did not start")
        threading.Event().wait(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _plant(engine: Engine, data_dir: Path, day: date) -> Path:
    """The demo's channel day reconciled (every kind of exception), a failed and a waiting bank day."""
    config = plant_demo(engine, data_dir, day, SETTLING_BANK)
    channel = load_recon_config(config).channel(DEMO_CHANNEL)
    reconcile_day(
        engine,
        channel,
        ReconRunRequest(
            day=ReconDay(account_no=DEMO_CHANNEL, recon_date=day),
            workflow_id="recon-web",
            run_id=PLANTED_RUN_ID,
        ),
    )
    now = datetime.now(UTC)
    record_failure(
        engine,
        StatementFailure(
            statement=StatementKey(account_no=FAILING_BANK, bill_date=day),
            workflow_id="stmt-failed",
            run_id="run-failed",
            failed_at=now,
            error_type="BankRefused",
            reason="bank answered 1003 <account closed>",
        ),
    )
    with engine.begin() as conn:
        for attempt in (1, 2, 3):
            conn.execute(
                insert(bank_requests).values(
                    request_id=f"req-{attempt}",
                    merchant_id="M1",
                    account_no=WAITING_BANK,
                    bill_date=day,
                    workflow_id="stmt-waiting",
                    run_id="run-waiting",
                    activity_attempt=attempt,
                    sent_at=now - timedelta(minutes=30 * (4 - attempt)),
                    answered_at=now - timedelta(minutes=30 * (4 - attempt)),
                    outcome="2001",
                )
            )
    return config


def web_settings(tmp_path: Path, database_url: str, recon_config: Path | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "web_users_file": tmp_path / "web-users.toml",
        "recon_config_file": recon_config,
        "bank_accounts": [SETTLING_BANK, FAILING_BANK, WAITING_BANK],
        **overrides,
    }
    return Settings(_env_file=None, **values)


@contextmanager
def running_site(database_url: str, tmp_path: Path, **overrides: Any) -> Iterator[Site]:
    """The planted days, a user per role, the page served; ``overrides`` go into its settings."""
    engine = make_engine(database_url)
    prepare_schema(engine)
    day = today() - timedelta(days=1)
    config = _plant(engine, tmp_path / "data", day)
    settings = web_settings(tmp_path, database_url, config, **overrides)
    assert settings.web_users_file is not None
    for role in Role:
        add_user(settings.web_users_file, role.name, PASSWORDS[role], role)
    app = create_app(settings, engine)
    try:
        with serve(app) as url:
            yield Site(url, engine, settings, day, app)
    finally:
        engine.dispose()


@pytest.fixture(name="site")
def site_fixture(database_url: str, tmp_path: Path) -> Iterator[Site]:
    with running_site(database_url, tmp_path) as site:
        yield site
