"""Real servers for the tests: Temporal (time-skipping and dev), SQLite and PostgreSQL, the simulator.

The Temporal servers come from tests/temporal_fixtures.py, loaded only where Temporal is
installed: the domain's tests also run without it (tests/without_temporal.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bankrecon.config import Settings
from bankrecon.sources.refbank.simulator.server import DEMO_MERCHANT_ID, BankSimulator
from tests import alipay_setup, wechatpay_setup
from tests.harness import ACCOUNT, settings_for

try:
    import temporalio  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    from tests.temporal_fixtures import collect, dev_env, time_skipping_env  # noqa: F401


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regenerate-golden",
        action="store_true",
        help="write tests/golden/ anew from what the real files of ../shared/corpus/ store (review the diff)",
    )


POSTGRES_URL = os.environ.get("BANKRECON_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


def _postgres_schema_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test gets an empty database of each kind: a SQLite file or its own PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bankrecon.db'}"
    else:
        yield from _postgres_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bankrecon.db'}"


@pytest.fixture(scope="module")
def alipay_keys(tmp_path_factory: pytest.TempPathFactory) -> alipay_setup.Keys:
    """An Alipay app's key pair and Alipay's, for the simulator and the client."""
    return alipay_setup.make_keys(tmp_path_factory.mktemp("alipay-keys"))


@pytest.fixture(scope="module")
def wechatpay_keys(tmp_path_factory: pytest.TempPathFactory) -> wechatpay_setup.Keys:
    """A WeChat Pay merchant's key pair and WeChat Pay's, for the simulator and the client."""
    return wechatpay_setup.make_keys(tmp_path_factory.mktemp("wechatpay-keys"))


@pytest.fixture
def bank() -> Iterator[BankSimulator]:
    """The simulated bank for time-skipping tests, knowing ACCOUNT; its today is 2026-11-25."""
    # The bank's window is real time; the time-skipping server's retries are not.
    # Here the window is off on both sides and spacing is the retry policy's alone.
    with BankSimulator(
        min_interval=0, today=lambda: date(2026, 11, 25), accounts={DEMO_MERCHANT_ID: {ACCOUNT}}
    ) as sim:
        yield sim


@pytest.fixture
def settings(bank: BankSimulator, task_queue: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(database_url: str, **overrides: Any) -> Settings:
        return settings_for(tmp_path / "data", database_url, bank.url, task_queue, **overrides)

    return make
