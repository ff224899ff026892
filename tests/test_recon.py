"""Reconciliation's matching and settlement on a day with every kind of exception, on both databases."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import Engine, create_engine, select, text

from bankrecon.recon.actions import ActionRefused, Actor, explain, pair, reopen, write_off
from bankrecon.recon.config import ChannelRecon, FileLedger, SqlLedger, load_recon_config
from bankrecon.recon.demo import (
    DEMO_CHANNEL,
    DEMO_LEDGER,
    DEMO_LEDGER_FIXED,
    SETTLEMENT_COUNTERPARTY,
    DemoLine,
    plant_demo,
    store_channel_day,
    write_ledger,
)
from bankrecon.recon.ledger import LedgerError, ledger_lines
from bankrecon.recon.models import ReconDay, ReconRunRequest
from bankrecon.recon.results import age_days, open_by_age, open_exceptions, run_items
from bankrecon.recon.run import reconcile_day
from bankrecon.recon.settlement import channel_net
from bankrecon.recon.tables import recon_actions, recon_runs
from bankrecon.store.db import make_engine, statements, transactions
from bankrecon.store.schema import prepare_schema

DAY = date(2026, 11, 24)
BANK = "6222020000000001"
ALICE = Actor(by="alice", at=datetime(2026, 11, 25, 1, 30, tzinfo=UTC))

# (side, state, reference, direction, amount) of every item the planted day must give.
EXPECTED = Counter(
    [
        *(("ledger", "matched", ref, "C", amount) for ref, amount in [
            ("O-001", "100.00"), ("O-900", "88.00"), ("O-002", "200.00"), ("O-003", "300.00"),
            ("O-004", "50.00"), ("O-006", "60.00"),
        ]),
        ("ledger", "matched", "O-002", "D", "50.00"),
        *(("channel", "matched", ref, "C", amount) for ref, amount in [
            ("O-900", "88.00"), ("O-001", "100.00"), ("O-002", "200.00"), ("O-003", "100.00"),
            ("O-003", "200.00"), ("O-004", "50.00"), ("O-006", "60.00"),
        ]),
        ("channel", "matched", "O-002", "D", "20.00"),
        ("channel", "matched", "O-002", "D", "30.00"),
        ("channel", "duplicate", "O-006", "C", "60.00"),
        ("ledger", "ledger_only", "O-007", "C", "70.00"),
        ("channel", "channel_only", "O-008", "C", "90.00"),
        ("ledger", "amount_differs", "O-005", "C", "80.00"),
        ("channel", "amount_differs", "O-005", "C", "80.00"),
        ("ledger", "amount_differs", "O-009", "C", "120.00"),
        ("channel", "amount_differs", "O-009", "C", "112.00"),
        ("settlement", "settlement_missing", "", "C", "1083.13"),
    ]
)  # fmt: skip


def outcome(engine: Engine, run_id: str) -> Counter[tuple[str, str, str, str, str]]:
    return Counter(
        (item.side, item.state, item.reference, item.direction, str(item.amount))
        for item in run_items(engine, run_id)
    )


@pytest.fixture
def engine(database_url: str):
    engine = make_engine(database_url)
    prepare_schema(engine)
    yield engine
    engine.dispose()


def reconcile(engine: Engine, config: Path, day: date, run_id: str):
    channel = load_recon_config(config).channel(DEMO_CHANNEL)
    request = ReconRunRequest(
        day=ReconDay(account_no=DEMO_CHANNEL, recon_date=day), workflow_id=f"recon-{day}", run_id=run_id
    )
    return reconcile_day(engine, channel, request)


def store_settlement_credit(engine: Engine, amount: Decimal, day: date = DAY) -> None:
    """The channel's settlement of ``day`` on the bank account, the day after."""
    with engine.begin() as conn:
        now = datetime.now(UTC)
        arrives = day + timedelta(days=1)
        conn.execute(
            statements.insert().values(
                account_no=BANK,
                bill_date=arrives,
                bank_code="0000",
                currency="CNY",
                credit_count=1,
                debit_count=0,
                credit_total=amount,
                debit_total=Decimal("0.00"),
                transaction_count=1,
                fetched_at=now,
                persisted_at=now,
            )
        )
        conn.execute(
            transactions.insert().values(
                account_no=BANK, bill_date=arrives, serial_no="B0001", seq=1, traded_at=now, direction="C",
                amount=amount, balance_after=amount, counterparty_name=SETTLEMENT_COUNTERPARTY,
                memo=f"微信支付结算 {day:%Y%m%d}",
            )
        )  # fmt: skip


def test_every_kind_of_exception_then_a_fixed_ledger(engine: Engine, tmp_path: Path) -> None:
    config = plant_demo(engine, tmp_path, DAY, BANK)
    first = reconcile(engine, config, DAY, "run-1")
    assert outcome(engine, "run-1") == EXPECTED
    details = {(item.reference, item.side): item.detail for item in run_items(engine, "run-1")}
    assert details[("O-004", "ledger")] == "fee within tolerance"
    assert details[("O-005", "channel")] == "fee beyond tolerance"
    totals = {(total.state, total.side): (total.lines, total.amount) for total in first.totals}
    assert totals[("matched", "channel")] == (9, Decimal("848.00"))
    assert totals[("amount_differs", "ledger")] == (2, Decimal("200.00"))
    # The 23:59:30 order is the next day's, the one of 23:59:58 the day before is this day's.
    assert not [item for item in run_items(engine, "run-1") if item.reference == "O-010"]

    duplicate = next(item for item in run_items(engine, "run-1") if item.state == "duplicate")
    explain(engine, duplicate.item_id, "charged twice by the channel; refund asked for", ALICE)
    open_before = open_exceptions(engine, DAY, DAY)
    assert {(item.reference, item.status) for item in open_before} == {
        ("O-005", "open"), ("O-006", "explained"), ("O-007", "open"), ("O-008", "open"), ("O-009", "open"),
        ("", "open"),
    }  # fmt: skip

    write_ledger(tmp_path / "ledger" / f"ledger-{DAY}.csv", DAY, DEMO_LEDGER_FIXED)
    with engine.connect() as conn:
        net = channel_net(conn, DEMO_CHANNEL, DAY)
    store_settlement_credit(engine, net.quantize(Decimal("0.01")))
    second = reconcile(engine, config, DAY, "run-2")
    exceptions = [item for item in run_items(engine, "run-2") if item.state != "matched"]
    assert [(item.state, item.reference, item.note) for item in exceptions] == [
        ("duplicate", "O-006", "charged twice by the channel; refund asked for")
    ]
    assert [(item.reference, item.status) for item in open_exceptions(engine, DAY, DAY)] == [
        ("O-006", "explained")
    ]
    assert {total.state for total in second.totals} == {"matched", "duplicate"}
    with engine.connect() as conn:
        runs = conn.execute(select(recon_runs.c.run_id, recon_runs.c.ledger_sha256).order_by("run_id")).all()
    assert [run.run_id for run in runs] == ["run-1", "run-2"]
    assert runs[0].ledger_sha256 != runs[1].ledger_sha256


def test_the_order_before_midnight_is_reported_by_the_day_that_booked_it(
    engine: Engine, tmp_path: Path
) -> None:
    config = plant_demo(engine, tmp_path, DAY, BANK)
    previous = date(2026, 11, 23)
    store_channel_day(engine, DEMO_CHANNEL, previous, [])
    reconcile(engine, config, previous, "run-before")
    assert [item.side for item in run_items(engine, "run-before")] == ["settlement"]
    reconcile(engine, config, DAY, "run-day")
    carried = [item for item in run_items(engine, "run-day") if item.reference == "O-900"]
    assert {(item.side, item.state, item.booked_on) for item in carried} == {
        ("ledger", "matched", previous),
        ("channel", "matched", DAY),
    }


def test_a_retried_run_returns_the_stored_one(engine: Engine, tmp_path: Path) -> None:
    config = plant_demo(engine, tmp_path, DAY, BANK)
    first = reconcile(engine, config, DAY, "run-1")
    write_ledger(tmp_path / "ledger" / f"ledger-{DAY}.csv", DAY, DEMO_LEDGER_FIXED)
    assert reconcile(engine, config, DAY, "run-1") == first


def test_the_three_ledger_kinds_read_the_same_lines(tmp_path: Path) -> None:
    csv_path = tmp_path / f"ledger-{DAY}.csv"
    write_ledger(csv_path, DAY, DEMO_LEDGER)
    with csv_path.open(encoding="utf-8") as file:
        rows = list(csv.reader(file))
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(rows[0])
    for row in rows[1:]:
        # As finance keys them in: amounts and fees as numbers, times as times.
        sheet.append([row[0], float(row[1]), row[2], datetime.fromisoformat(row[3]), row[4],
                      float(row[5]) if row[5] else None])  # fmt: skip
    workbook.save(tmp_path / f"ledger-{DAY}.xlsx")
    ledger_db = f"sqlite:///{tmp_path / 'erp.db'}"
    erp = create_engine(ledger_db)
    with erp.begin() as conn:
        conn.execute(
            text("CREATE TABLE orders (no TEXT, amt TEXT, kind TEXT, at TEXT, via TEXT, fee TEXT, day TEXT)")
        )
        conn.execute(
            text("INSERT INTO orders VALUES (:no, :amt, :kind, :at, :via, :fee, :day)"),
            [
                dict(zip(["no", "amt", "kind", "at", "via", "fee"], row, strict=True), day=str(DAY))
                for row in rows[1:]
            ],
        )
    erp.dispose()
    sources = {
        "csv": FileLedger(kind="csv", path=str(tmp_path / "ledger-{date}.csv")),
        "xlsx": FileLedger(kind="xlsx", path=str(tmp_path / "ledger-{date}.xlsx")),
        "sql": SqlLedger(
            kind="sql",
            url=ledger_db,
            query="SELECT no AS reference, amt AS amount, kind AS direction, at AS occurred_at, "
            "via AS channel, NULLIF(fee, '') AS fee FROM orders WHERE day = :day AND :account_no <> ''",
        ),
    }
    read = {
        kind: list(ledger_lines(ChannelRecon(ledger=source), DEMO_CHANNEL, DAY))
        for kind, source in sources.items()
    }
    assert len(read["csv"]) == len(DEMO_LEDGER)
    assert read["xlsx"] == read["csv"] == read["sql"]
    assert read["csv"][0].fee == Decimal("0.60") and read["csv"][1].fee is None


def test_a_bad_ledger_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / f"ledger-{DAY}.csv"
    path.write_text("reference,amount,direction,occurred_at,channel\nO-1,10.001,C,2026-11-24 10:00:00,x\n")
    channel = ChannelRecon(ledger=FileLedger(kind="csv", path=str(tmp_path / "ledger-{date}.csv")))
    with pytest.raises(
        LedgerError, match=r"ledger-2026-11-24.csv line 2: amount '10.001' has more than 2 decimals"
    ):
        list(ledger_lines(channel, DEMO_CHANNEL, DAY))


def test_a_ledger_query_on_the_same_postgresql_is_staged_inside_it(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("staging inside the database is PostgreSQL's")
    config = plant_demo(engine, tmp_path, DAY, BANK)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE erp_orders (reference TEXT, amount NUMERIC(12, 2), direction TEXT, "
                "occurred_at TIMESTAMP, channel TEXT, fee NUMERIC, day DATE)"
            )
        )
        for day in (DAY - timedelta(days=1), DAY):
            with (tmp_path / "ledger" / f"ledger-{day}.csv").open(encoding="utf-8") as file:
                for row in csv.DictReader(file):
                    conn.execute(
                        text(
                            "INSERT INTO erp_orders VALUES "
                            "(:reference, :amount, :direction, :at, :channel, :fee, :day)"
                        ),
                        {
                            **row,
                            "at": datetime.fromisoformat(row["occurred_at"]),
                            "fee": row["fee"] or None,
                            "day": day,
                        },
                    )
    query = "SELECT * FROM erp_orders WHERE day = :day AND :account_no <> ''"
    by_file = load_recon_config(config).channel(DEMO_CHANNEL)
    by_query = by_file.model_copy(update={"ledger": SqlLedger(kind="sql", url=database_url, query=query)})
    request = ReconRunRequest(
        day=ReconDay(account_no=DEMO_CHANNEL, recon_date=DAY), workflow_id="w", run_id="q"
    )
    summary = reconcile_day(engine, by_query, request)
    assert outcome(engine, "q") == EXPECTED
    assert summary.ledger_sha256 == reconcile(engine, config, DAY, "f").ledger_sha256

    with engine.begin() as conn:
        conn.execute(
            text("UPDATE erp_orders SET amount = 10.5, direction = 'sideways' WHERE reference = 'O-005'")
        )
    with pytest.raises(
        LedgerError, match=r"the ledger query's row \d+: direction 'sideways' is none of C, D"
    ):
        reconcile_day(engine, by_query, request.model_copy(update={"run_id": "bad"}))


# Two days after DAY: the channel books DAY's O-007 (a delayed notification) and the ledger
# DAY's O-008 the day after (an order keyed in late); the order before DAY + 1's midnight is booked.
LATER_LEDGER = {1: [DemoLine("O-008", "C", "90.00", 36_000)], 2: []}
LATER_CHANNEL = {
    1: [DemoLine("O-010", "C", "40.00", 5, "0.24")],
    2: [DemoLine("O-007", "C", "70.00", 36_000, "0.42")],
}


def plant_later_days(engine: Engine, data_dir: Path, day: date = DAY) -> None:
    for offset in (1, 2):
        later = day + timedelta(days=offset)
        write_ledger(data_dir / "ledger" / f"ledger-{later}.csv", later, LATER_LEDGER[offset])
        store_channel_day(engine, DEMO_CHANNEL, later, LATER_CHANNEL[offset])


def items_of(engine: Engine, run_id: str, reference: str) -> list[tuple[str, str, str | None]]:
    return [(i.state, i.side, i.detail) for i in run_items(engine, run_id) if i.reference == reference]


def statuses(engine: Engine, first: date, last: date) -> dict[tuple[date, str, str], str]:
    return {(i.recon_date, i.reference, i.side): i.status for i in open_exceptions(engine, first, last)}


def test_an_order_booked_days_later_is_matched_across_days_and_no_longer_open(
    engine: Engine, tmp_path: Path
) -> None:
    config = plant_demo(engine, tmp_path, DAY, BANK)
    plant_later_days(engine, tmp_path)
    reconcile(engine, config, DAY, "day")
    assert {(DAY, "O-007", "ledger"), (DAY, "O-008", "channel")} <= set(statuses(engine, DAY, DAY))
    reconcile(engine, config, DAY + timedelta(days=1), "day+1")
    reconcile(engine, config, DAY + timedelta(days=2), "day+2")

    assert items_of(engine, "day+1", "O-008") == [
        ("matched_across_days", "ledger", f"with the channel's line(s) of {DAY}")
    ]
    assert items_of(engine, "day+2", "O-007") == [
        ("matched_across_days", "channel", f"with the ledger's line(s) of {DAY}")
    ]
    # DAY's run is not rewritten; its items' status is.
    day_items = {(i.reference, i.side): i for i in run_items(engine, "day")}
    for reference, side, matched_on in [("O-007", "ledger", 2), ("O-008", "channel", 1)]:
        item = day_items[(reference, side)]
        state = "ledger_only" if side == "ledger" else "channel_only"
        assert (item.state, item.status, item.last_action, item.last_by) == (
            state, "resolved", "matched_across_days", "bankrecon"
        )  # fmt: skip
        assert f"of {DAY + timedelta(days=matched_on)}" in item.last_reason
    still_open = statuses(engine, DAY, DAY + timedelta(days=2))
    assert not {key for key in still_open if key[1] in ("O-007", "O-008")}
    assert {key[1] for key in still_open if key[0] == DAY} == {"O-005", "O-009", "O-006", ""}
    # Matched across days is a match: no exception of the later run but its settlement's.
    assert {t.state for t in reconcile(engine, config, DAY + timedelta(days=2), "day+2").exceptions} <= {
        "settlement_missing"
    }

    # A re-run of the later day matches again, without a second action; DAY's re-run stays resolved.
    reconcile(engine, config, DAY + timedelta(days=2), "day+2 again")
    reconcile(engine, config, DAY, "day again")
    with engine.connect() as conn:
        actions = conn.execute(select(recon_actions.c.reference, recon_actions.c.action)).all()
    assert sorted(actions) == [("O-007", "matched_across_days"), ("O-008", "matched_across_days")]
    assert not {key for key in statuses(engine, DAY, DAY) if key[1] in ("O-007", "O-008")}

    # The channel's line turns out to be another order's: the later day's re-run reopens DAY's.
    store_channel_day(
        engine, DEMO_CHANNEL, DAY + timedelta(days=2), [DemoLine("O-077", "C", "70.00", 36_000)]
    )
    reconcile(engine, config, DAY + timedelta(days=2), "day+2 corrected")
    assert statuses(engine, DAY, DAY)[(DAY, "O-007", "ledger")] == "open"
    assert [item.last_action for item in run_items(engine, "day again") if item.reference == "O-007"] == [
        "reopen"
    ]


def test_past_carry_days_a_line_stays_open_with_its_age(engine: Engine, tmp_path: Path) -> None:
    config = plant_demo(engine, tmp_path, DAY, BANK)
    config.write_text(
        config.read_text().replace("cutoff_seconds = 300", "cutoff_seconds = 300\ncarry_days = 1")
    )
    plant_later_days(engine, tmp_path)
    for offset in range(3):
        reconcile(engine, config, DAY + timedelta(days=offset), f"run-{offset}")
    assert items_of(engine, "run-1", "O-008")[0][0] == "matched_across_days"  # within a day
    assert items_of(engine, "run-2", "O-007") == [("channel_only", "channel", None)]
    later = DAY + timedelta(days=2)
    open_items = {(i.recon_date, i.reference, i.side): i for i in open_exceptions(engine, DAY, later)}
    assert open_items[(DAY, "O-007", "ledger")].status == "open"
    assert age_days(DAY, later) == 2 and age_days(later, later) == 0
    aged = {(t.state, t.band): (t.lines, t.amount) for t in open_by_age(engine, later, DAY, DEMO_CHANNEL)}
    assert aged[("ledger_only", "1-3 days")] == (1, Decimal("70.00"))
    assert aged[("channel_only", "today")] == (1, Decimal("70.00"))
    assert aged[("amount_differs", "1-3 days")] == (4, Decimal("392.00"))
    a_week_on = {(t.state, t.band) for t in open_by_age(engine, DAY + timedelta(days=7), DAY, DEMO_CHANNEL)}
    assert ("ledger_only", "over 3 days") in a_week_on and ("channel_only", "1-3 days") not in a_week_on


def test_pair_write_off_and_reopen_are_recorded_and_kept_across_a_rerun(
    engine: Engine, tmp_path: Path
) -> None:
    config = plant_demo(engine, tmp_path, DAY, BANK)
    reconcile(engine, config, DAY, "run-1")
    item = {(i.state, i.side, i.reference): i.item_id for i in run_items(engine, "run-1")}
    o_009 = (item[("amount_differs", "ledger", "O-009")], item[("amount_differs", "channel", "O-009")])
    bob = Actor(by="bob", at=datetime(2026, 11, 25, 2, 0, tzinfo=UTC))

    with pytest.raises(ActionRefused, match=r"difference 8\.00\): pair them with --allow-difference"):
        pair(engine, o_009, "reference mistyped in the ERP", ALICE)
    with pytest.raises(ActionRefused, match=r"pair takes a ledger_only with a channel_only"):
        pair(engine, (item[("ledger_only", "ledger", "O-007")], item[("amount_differs", "channel", "O-005")]),
             "no", ALICE)  # fmt: skip
    ledger, channel, difference = pair(
        engine, (item[("channel_only", "channel", "O-008")], item[("ledger_only", "ledger", "O-007")]),
        "reference mistyped in the ERP", ALICE, allow_difference=True,
    )  # fmt: skip
    assert (ledger.reference, channel.reference, difference) == ("O-007", "O-008", Decimal("-20.00"))
    write_off(engine, item[("duplicate", "channel", "O-006")], "fee rounding, accepted", bob, "6603")
    with pytest.raises(ActionRefused, match=r"resolved already \(write_off by bob\): reopen it first"):
        write_off(engine, item[("duplicate", "channel", "O-006")], "again", bob)
    pair(engine, (item[("amount_differs", "ledger", "O-005")], item[("amount_differs", "channel", "O-005")]),
         "fee corrected by the channel", bob)  # fmt: skip
    reopened = reopen(engine, item[("ledger_only", "ledger", "O-007")], "paired by mistake", bob)
    assert {i.reference for i in reopened} == {"O-007", "O-008"}
    with pytest.raises(ActionRefused, match=r"neither paired nor written off: nothing to reopen"):
        reopen(engine, item[("channel_only", "channel", "O-008")], "twice", bob)
    with pytest.raises(ActionRefused, match=r"^no reconciliation item 999999$"):
        write_off(engine, 999_999, "gone", bob)
    with pytest.raises(ActionRefused, match=r"is matched: only exceptions are worked"):
        write_off(engine, item[("matched", "ledger", "O-001")], "fine", bob)
    with pytest.raises(ActionRefused, match=r"who acts must be named in 1 to 128 characters"):
        Actor(by=" ", at=bob.at)

    def worked(run_id: str) -> dict[str, tuple[str, str, str]]:
        return {
            f"{i.side} {i.reference}": (i.status, i.last_action, i.last_by)
            for i in run_items(engine, run_id, exceptions_only=True)
            if i.side != "settlement"
        }

    expected = {
        "ledger O-005": ("resolved", "pair", "bob"),
        "channel O-005": ("resolved", "pair", "bob"),
        "channel O-006": ("resolved", "write_off", "bob"),
        "ledger O-007": ("open", "reopen", "bob"),
        "channel O-008": ("open", "reopen", "bob"),
        "ledger O-009": ("open", None, None),
        "channel O-009": ("open", None, None),
    }
    assert worked("run-1") == expected
    with engine.connect() as conn:
        before = conn.execute(select(recon_actions).order_by(recon_actions.c.action_id)).all()
    assert [(a.action, a.reference, a.acted_by, a.acted_at) for a in before] == [
        ("pair", "O-007", "alice", ALICE.at), ("pair", "O-008", "alice", ALICE.at),
        ("write_off", "O-006", "bob", bob.at),
        ("pair", "O-005", "bob", bob.at), ("pair", "O-005", "bob", bob.at),
        ("reopen", "O-007", "bob", bob.at), ("reopen", "O-008", "bob", bob.at),
    ]  # fmt: skip
    assert [a.ledger_account for a in before if a.action == "write_off"] == ["6603"]

    # A re-run makes new items; the actions hold for them by identity, and none is rewritten.
    reconcile(engine, config, DAY, "run-2")
    assert worked("run-2") == expected
    with engine.connect() as conn:
        assert conn.execute(select(recon_actions).order_by(recon_actions.c.action_id)).all() == before
    assert {i.reference for i in open_exceptions(engine, DAY, DAY)} == {"O-007", "O-008", "O-009", ""}


def test_across_days_the_fees_must_agree_as_within_a_day(engine: Engine, tmp_path: Path) -> None:
    config = plant_demo(engine, tmp_path, DAY, BANK)
    late = [DemoLine("O-500", "C", "30.00", 40_000, "0.18"), DemoLine("O-501", "C", "30.00", 40_001, "0.18")]
    write_ledger(tmp_path / "ledger" / f"ledger-{DAY}.csv", DAY, [*DEMO_LEDGER, *late])
    later = DAY + timedelta(days=1)
    write_ledger(tmp_path / "ledger" / f"ledger-{later}.csv", later, [])
    store_channel_day(engine, DEMO_CHANNEL, later, [
        DemoLine("O-010", "C", "40.00", 5, "0.24"),
        DemoLine("O-500", "C", "30.00", 100, "0.30"),  # 0.12 more than the ledger's fee: beyond 0.01
        DemoLine("O-501", "C", "30.00", 101, "0.19"),  # within
    ])  # fmt: skip
    reconcile(engine, config, DAY, "day")
    reconcile(engine, config, later, "day+1")
    assert items_of(engine, "day+1", "O-500") == [("channel_only", "channel", None)]
    assert items_of(engine, "day+1", "O-501") == [
        ("matched_across_days", "channel", f"with the ledger's line(s) of {DAY}")
    ]
    still_open = {(i.recon_date, i.reference) for i in open_exceptions(engine, DAY, later)}
    assert {(DAY, "O-500"), (later, "O-500")} <= still_open
    assert not {key for key in still_open if key[1] == "O-501"}
