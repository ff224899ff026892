"""Channel bills of others (the corpus) and of ours (tests/data) served by the simulators, then stored.

A bill goes the way a real one goes: the simulator serves its bytes as the channel does (Alipay
a zip of GBK members with GBK names, the summary member first; WeChat Pay a gzip with the SHA-1
of the text as ``hash_value``), the source's client asks for it over HTTP and keeps the download,
the source kind decodes it, and ``save_statement`` stores it. Imports no Temporal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bankrecon.models import PersistRequest, StatementKey
from bankrecon.sources.alipay import ALIPAY
from bankrecon.sources.alipay.simulator import server as alipay_server
from bankrecon.sources.alipay.simulator.generator import member_names
from bankrecon.sources.base import Account, Outcome, SourceKind, StatementClient
from bankrecon.sources.wechatpay import WECHATPAY
from bankrecon.sources.wechatpay.simulator import server as wechatpay_server
from bankrecon.statements.common import ArchiveLimits
from bankrecon.store.archive import archive_path
from bankrecon.store.db import make_engine
from bankrecon.store.persistence import load_statement, save_statement
from bankrecon.store.schema import prepare_schema
from tests import alipay_setup, wechatpay_setup

# WeChat Pay keeps three months of bills: a bill of another day is served as yesterday's, its
# dates moved.
SERVED_ON = wechatpay_setup.yesterday()
_TIME = re.compile(r"`?([0-9]{4}-[0-9]{2}-[0-9]{2})( [0-9]{2}:[0-9]{2}:[0-9]{2})")


@dataclass(frozen=True)
class Stored:
    """What the database holds of one bill: its statement row and its transactions in order."""

    statement: Any
    rows: list[Any]
    archive: Path  # the download as kept, under its SHA-256


def alipay_members(
    account: str, bill_date: date, bill_type: str, detail: bytes, summary: bytes
) -> list[tuple[str, bytes]]:
    """A bill's two members under Alipay's names, the summary (汇总) first as in Alipay's zips."""
    detail_name, summary_name = member_names(account, bill_date, bill_type)
    return [(summary_name, summary), (detail_name, detail)]


async def alipay_stored(
    keys: alipay_setup.Keys,
    plan: alipay_server.BillPlan,
    bill_type: str,
    bill_date: date,
    data_dir: Path,
    database_url: str,
) -> Stored:
    """The bill the Alipay simulator serves by ``plan`` (``members``: a given bill's), fetched, decoded
    and stored."""
    with alipay_setup.simulator(keys, plan) as running:
        owner = alipay_setup.merchant(keys, running.gateway)
        client = ALIPAY.client(owner, alipay_setup.DEFAULTS)
        account = alipay_setup.account(owner, bill_type)
        return await _stored(ALIPAY, client, account, bill_date, data_dir, database_url)


async def wechatpay_stored(
    keys: wechatpay_setup.Keys,
    plan: wechatpay_server.BillPlan,
    bill_type: str,
    bill_date: date,
    data_dir: Path,
    database_url: str,
) -> Stored:
    """The trade bill of ``bill_date`` the WeChat Pay simulator serves by ``plan`` (``served``: a given
    bill's bytes), fetched, decoded and stored."""
    with wechatpay_setup.simulator(keys, plan) as running:
        owner = wechatpay_setup.merchant(keys, running.url)
        client = WECHATPAY.client(owner, wechatpay_setup.DEFAULTS)
        account = wechatpay_setup.account(owner, "tradebill", bill_type=bill_type)
        return await _stored(WECHATPAY, client, account, bill_date, data_dir, database_url)


async def _stored(
    kind: SourceKind,
    client: StatementClient,
    account: Account,
    bill_date: date,
    data_dir: Path,
    database_url: str,
) -> Stored:
    try:
        answer = await client.ask(account, bill_date, "corpus", data_dir)
    finally:
        await client.aclose()
    assert answer.outcome is Outcome.READY and answer.archive is not None, answer
    key = StatementKey(account_no=account.account_no, bill_date=bill_date)
    decoded = kind.decode(data_dir, key, answer.archive, account, ArchiveLimits(), lambda _count: None)
    engine = make_engine(database_url)
    try:
        prepare_schema(engine)
        save_statement(
            engine,
            data_dir,
            PersistRequest(
                statement=key,
                bank_code=answer.code,
                totals=decoded.totals,
                records_file=decoded.records_file,
                records_format=decoded.records_format,
                source_sha256=decoded.source_sha256,
                fetched_at=datetime.now(UTC),
                archive=answer.archive,
            ),
            source_kind=kind.name,
        )
        statement, rows = load_statement(engine, key)
    finally:
        engine.dispose()
    return Stored(statement, rows, archive_path(data_dir, answer.archive.sha256))


def served_yesterday(bill: bytes, bill_date: date, columns: Sequence[str]) -> tuple[bytes, int]:
    """A WeChat Pay bill of ``bill_date`` as the bill of SERVED_ON: its dates in ``columns`` moved, and
    by how many days."""
    days = (SERVED_ON - bill_date).days
    return moved_dates(bill, columns, days), days


def moved_dates(bill: bytes, columns: Sequence[str], days: int) -> bytes:
    """A WeChat Pay bill with the date of each value of ``columns`` moved by ``days``, times kept:
    every other byte (BOM, line ends, backticks, ids that embed a date) as it was."""
    lines = bill.decode("utf-8").splitlines(keepends=True)
    header = lines[0].removeprefix("\ufeff").rstrip("\r\n").split(",")
    where = [header.index(name) for name in columns]
    moved = [lines[0]]
    for line in lines[1:]:
        body = line.rstrip("\r\n")
        values = body.split(",")
        if body.startswith("`") and len(values) == len(header):
            for index in where:
                values[index] = _TIME.sub(lambda m: _day(m, days), values[index], count=1)
        moved.append(",".join(values) + line[len(body) :])
    return "".join(moved).encode("utf-8")


def _day(match: re.Match[str], days: int) -> str:
    moved = date.fromisoformat(match[1]) + timedelta(days=days)
    return match[0].replace(match[1], moved.isoformat())


def as_written(stored: Stored, days: int = 0, columns: Sequence[str] = ()) -> tuple[Any, list[Any]]:
    """The stored statement and rows with times in UTC, and the dates of a bill served ``days`` later
    moved back (``bill_date``, ``traded_at``, the ``details`` of ``columns``): what the bill itself
    says, the same on every database and every day the test runs."""
    back = timedelta(days=-days)
    statement = SimpleNamespace(**stored.statement._mapping)
    statement.bill_date = statement.bill_date + back
    rows = []
    for row in stored.rows:
        moved = SimpleNamespace(**row._mapping)
        moved.traded_at = moved.traded_at.astimezone(UTC) + back
        if moved.details is not None and days:
            moved.details = {
                name: _TIME.sub(lambda m: _day(m, -days), value, count=1) if name in columns else value
                for name, value in moved.details.items()
            }
        rows.append(moved)
    return statement, rows


def lines_of(rows: Sequence[Any]) -> list[list[str | None]]:
    """The rows as ``expected.json`` lists them: direction, amount, reference ('' for none) and fee,
    amounts without trailing zeros, in sorted order."""
    lines = [[row.direction, _plain(row.amount), row.reference or "", _plain(row.fee)] for row in rows]
    return sorted(lines, key=lambda line: [str(value) for value in line])


def _plain(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")
