"""Bank reconciliation: the four rules alone, then a planted month on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from bankrecon.bankrec.balance import bank_run_summary, day_balance
from bankrecon.bankrec.cashbook import cashbook_entries
from bankrecon.bankrec.config import BankAccountRecon, bank_account
from bankrecon.bankrec.demo import (
    DEMO_BANK_ACCOUNT,
    EXPECTED_MATCHES,
    EXPECTED_OPEN_AT_MONTH_END,
    MONTH_END,
    STATEMENT_DAYS,
    plant_month,
    recon_file_text,
    store_statement,
)
from bankrecon.bankrec.entries import BANK, BOOK, Entry
from bankrecon.bankrec.matching import MatchRules, match_entries, normalised_name
from bankrecon.bankrec.run import BankRecRefused, inputs_missing, reconcile_bank_day
from bankrecon.recon.config import ReconConfigError
from bankrecon.recon.ledger import LedgerError
from bankrecon.recon.models import ReconDay, ReconRunRequest
from bankrecon.recon.tables import recon_items
from bankrecon.store.db import make_engine
from bankrecon.store.schema import prepare_schema

RULES = MatchRules(date_window_days=3, group_max=5, voucher_pattern=r"(?:发票|INV)[- ]?(\d{6,})")
DAY = date(2026, 11, 10)


def entry(side: str, amount: str, key: str, days: int = 0, direction: str = "C", **fields: str) -> Entry:
    return Entry(
        side=side, booked_on=DAY + timedelta(days=days), seq=int(key[-1]) if key[-1].isdigit() else 0,
        direction=direction, amount=Decimal(amount), key=key, line_ref=key, **fields,
    )  # fmt: skip


def pairs(
    book: list[Entry], bank: list[Entry], rules: MatchRules = RULES
) -> list[tuple[str, list[str], list[str]]]:
    result = match_entries(book, bank, rules)
    return [(m.rule, [e.key for e in m.book], [e.key for e in m.bank]) for m in result.matches]


def test_a_shared_reference_or_the_memos_voucher_number_matches_first() -> None:
    book = [
        entry(BOOK, "100.00", "V1", reference="E2E-9", counterparty_account="A"),
        entry(BOOK, "100.00", "123456", counterparty_account="B"),
    ]
    # The first bank line is of B's account, but its reference is V1's: rule 1 comes before rule 2.
    bank = [
        entry(BANK, "100.00", "S1", 9, reference="E2E-9", counterparty_account="B"),
        entry(BANK, "100.00", "S2", 9, memo="付 INV-123456 尾款", counterparty_account="A"),
    ]
    assert pairs(book, bank) == [("reference", ["V1"], ["S1"]), ("reference", ["123456"], ["S2"])]
    # The amounts must be equal even where the reference is.
    assert match_entries(book[:1], [entry(BANK, "100.01", "S1", reference="E2E-9")], RULES).matches == []


def test_counterparty_by_account_or_by_the_normalised_name_within_the_window() -> None:
    assert normalised_name("ＡＢＣ　Co., Ltd.") == normalised_name("abc") == "abc"
    assert normalised_name("上海 甲乙科技 有限公司") == normalised_name("上海甲乙科技") == "上海甲乙科技"
    book = [
        entry(BOOK, "50.00", "V1", 0, "D", counterparty_account="6222 0001", counterparty_name="x"),
        entry(BOOK, "50.00", "V2", 0, "D", counterparty_name="上海甲乙科技"),
        entry(BOOK, "50.00", "V3", -4, "D", counterparty_account="777"),
    ]
    bank = [
        entry(BANK, "50.00", "S1", 1, "D", counterparty_account="62220001", counterparty_name="y"),
        entry(BANK, "50.00", "S2", 1, "D", counterparty_name="上海甲乙科技有限公司"),
        entry(BANK, "50.00", "S3", 0, "D", counterparty_account="777"),  # 4 days apart: outside
        entry(BANK, "50.00", "S4", 0, "C", counterparty_account="6222 0001"),  # the other direction
    ]
    result = match_entries(book, bank, RULES)
    assert [(m.rule, m.book[0].key, m.bank[0].key) for m in result.matches] == [
        ("counterparty", "V1", "S1"),
        ("counterparty", "V2", "S2"),
    ]
    assert [e.key for e in result.open_book] == ["V3"] and [e.key for e in result.open_bank] == ["S3", "S4"]


def test_amount_and_date_only_where_one_candidate_exists_on_each_side() -> None:
    book = [entry(BOOK, "70.00", "V1"), entry(BOOK, "80.00", "V2"), entry(BOOK, "80.00", "V3", 1)]
    bank = [entry(BANK, "70.00", "S1", 2), entry(BANK, "80.00", "S2", 1)]
    result = match_entries(book, bank, RULES)
    assert [(m.rule, m.book[0].key, m.bank[0].key) for m in result.matches] == [("amount_date", "V1", "S1")]
    assert [e.key for e in result.open_book] == ["V2", "V3"]


def test_the_nearest_date_wins_then_the_earlier_line() -> None:
    bank = [entry(BANK, "10.00", "S1", 0, counterparty_account="A")]
    near = [
        entry(BOOK, "10.00", "V1", -2, counterparty_account="A"),
        entry(BOOK, "10.00", "V2", 1, counterparty_account="A"),
    ]
    assert pairs(near, bank) == [("counterparty", ["V2"], ["S1"])]
    tie = [
        entry(BOOK, "10.00", "V2", 1, counterparty_account="A"),
        entry(BOOK, "10.00", "V1", 1, counterparty_account="A"),
    ]
    assert pairs(tie, bank) == [("counterparty", ["V1"], ["S1"])]


def test_groups_one_bank_line_for_several_entries_and_back_at_most_group_max() -> None:
    book = [
        entry(BOOK, amount, f"V{n}", counterparty_account="A")
        for n, amount in enumerate(["30.00", "20.00", "45.00", "5.00"], 1)
    ]
    # Another counterparty's, nearer: not in the group.
    book.append(entry(BOOK, "20.00", "V5", 1, counterparty_account="B"))
    bank = [entry(BANK, "50.00", "S1", 1, counterparty_account="A")]
    assert pairs(book, bank) == [("group", ["V1", "V2"], ["S1"])]
    one_entry = [entry(BOOK, "60.00", "V1", counterparty_account="A")]
    two_lines = [
        entry(BANK, amount, f"S{n}", n - 1, counterparty_account="A")
        for n, amount in [(1, "25.00"), (2, "35.00")]
    ]
    reverse = pairs(one_entry, two_lines)
    assert reverse == [("group", ["V1"], ["S1", "S2"])]
    six = [entry(BOOK, "1.00", f"V{n}", counterparty_account="A") for n in range(1, 7)]
    assert pairs(six, [entry(BANK, "6.00", "S1", counterparty_account="A")]) == []
    assert pairs(six, [entry(BANK, "6.00", "S1", counterparty_account="A")], MatchRules(3, 6)) == [
        ("group", [f"V{n}" for n in range(1, 7)], ["S1"])
    ]


def test_the_same_lines_in_any_order_give_the_same_matches() -> None:
    from bankrecon.bankrec.demo import BANK_LINES, BOOK_LINES

    book = [entry(BOOK, line.amount, line.key, (line.day - DAY).days, line.direction,
                  counterparty_name=line.name, counterparty_account=line.account, memo=line.memo,
                  reference=line.reference) for line in BOOK_LINES]  # fmt: skip
    bank = [entry(BANK, line.amount, line.key, (line.day - DAY).days, line.direction,
                  counterparty_name=line.name, counterparty_account=line.account, memo=line.memo,
                  reference=line.reference) for line in BANK_LINES]  # fmt: skip
    assert pairs(book, bank) == pairs(book[::-1], bank[::-1])


@pytest.fixture
def engine(database_url: str):
    engine = make_engine(database_url)
    prepare_schema(engine)
    yield engine
    engine.dispose()


def run(engine: Engine, config: Path, day: date, run_id: str) -> str:
    account = bank_account(config, DEMO_BANK_ACCOUNT)
    request = ReconRunRequest(
        day=ReconDay(account_no=DEMO_BANK_ACCOUNT, recon_date=day),
        workflow_id=f"bankrec-{day}",
        run_id=run_id,
    )
    return reconcile_bank_day(engine, account, request)


def matches_of(engine: Engine, run_id: str) -> list[tuple[date, str, tuple[str, ...], tuple[str, ...]]]:
    i = recon_items.c
    groups: dict[int, dict[str, list[str]]] = defaultdict(lambda: {BOOK: [], BANK: []})
    rules = {}
    with engine.connect() as conn:
        for row in conn.execute(
            select(i.match_no, i.rule, i.side, i.reference, i.recon_date)
            .where(i.run_id == run_id, i.state == "matched")
            .order_by(i.match_no, i.item_id)
        ):
            groups[row.match_no][row.side].append(row.reference)
            rules[row.match_no] = (row.recon_date, row.rule)
    return [(*rules[n], tuple(g[BOOK]), tuple(g[BANK])) for n, g in sorted(groups.items())]


def test_a_planted_month_every_rule_every_kind_carried_items_and_a_balancing_month_end(
    engine: Engine, tmp_path: Path
) -> None:
    config = plant_month(engine, tmp_path)
    account = bank_account(config, DEMO_BANK_ACCOUNT)
    assert inputs_missing(
        engine, account, ReconDay(account_no=DEMO_BANK_ACCOUNT, recon_date=date(2026, 11, 3))
    )
    found = []
    for day in STATEMENT_DAYS:
        assert inputs_missing(engine, account, ReconDay(account_no=DEMO_BANK_ACCOUNT, recon_date=day)) is None
        found += matches_of(engine, run(engine, config, day, f"run-{day}"))
    assert found == EXPECTED_MATCHES

    # After 11-02: a cheque written (丁, 3000.00), interest and a fee the book lacks.
    after_first = day_balance(engine, DEMO_BANK_ACCOUNT, date(2026, 11, 2))
    assert {
        s: [(i.reference, str(i.amount)) for i in items] for s, items in after_first.items.items() if items
    } == {
        "book_debit_not_in_bank": [("记-009", "3000.00")],
        "bank_credit_not_booked": [("B1102009", "66.60")],
        "bank_debit_not_booked": [("B1102010", "15.00")],
    }
    assert after_first.difference == 0

    statement = day_balance(engine, DEMO_BANK_ACCOUNT, MONTH_END)
    assert sorted(
        (s, i.reference, str(i.amount)) for s, items in statement.items.items() for i in items
    ) == sorted(EXPECTED_OPEN_AT_MONTH_END)
    assert statement.items["bank_debit_not_booked"][0].age_days == 28
    assert (statement.bank_balance, statement.book_balance) == (Decimal("111728.38"), Decimal("112673.38"))
    assert statement.adjusted_bank_balance == statement.adjusted_book_balance == Decimal("112978.38")
    summary = bank_run_summary(engine, f"run-{MONTH_END}")
    assert summary.difference == 0 and summary.rules == {"reference": 1}

    # Run again: the same items, nothing doubled; a stored run's retry stores nothing more.
    run(engine, config, MONTH_END, "rerun")
    assert matches_of(engine, "rerun") == matches_of(engine, f"run-{MONTH_END}")
    run(engine, config, MONTH_END, "rerun")
    assert day_balance(engine, DEMO_BANK_ACCOUNT, MONTH_END).run_id == "rerun"
    assert day_balance(engine, DEMO_BANK_ACCOUNT, MONTH_END).difference == 0


def test_a_cash_book_that_disagrees_shows_the_difference_unexplained(engine: Engine, tmp_path: Path) -> None:
    config = plant_month(engine, tmp_path)
    config.write_text(recon_file_text(tmp_path / "cashbook", DEMO_BANK_ACCOUNT, Decimal("100123.45")))
    for day in STATEMENT_DAYS:
        run(engine, config, day, f"run-{day}")
    statement = day_balance(engine, DEMO_BANK_ACCOUNT, MONTH_END)
    assert statement.difference == Decimal("-123.45")
    assert bank_run_summary(engine, f"run-{MONTH_END}").difference == Decimal("-123.45")


def test_past_carry_days_an_item_stays_open_but_is_matched_no_more(engine: Engine, tmp_path: Path) -> None:
    config = plant_month(engine, tmp_path)
    text = config.read_text().replace("carry_days = 62", "carry_days = 2")
    config.write_text(text)
    run(engine, config, date(2026, 11, 2), "first")
    # 记-009 and the interest are 3 days old on 11-05: within the window, past carry_days.
    run(engine, config, date(2026, 11, 5), "second")
    statement = day_balance(engine, DEMO_BANK_ACCOUNT, date(2026, 11, 5))
    open_keys = {i.reference: i.detail for items in statement.items.values() for i in items}
    assert open_keys == {
        "记-009": "past carry_days: no longer matched", "B1102009": "past carry_days: no longer matched",
        "B1102010": "past carry_days: no longer matched", "B1105001": "", "记-010": "",
    }  # fmt: skip
    assert statement.difference == 0


def test_a_channel_account_and_a_bad_cash_book_are_refused_in_one_line(
    engine: Engine, tmp_path: Path
) -> None:
    config = plant_month(engine, tmp_path)
    store_statement(engine, "wx-1900000001", date(2026, 11, 2), Decimal("0.00"), [])
    with engine.begin() as conn:
        from bankrecon.store.db import statements

        conn.execute(
            statements.update()
            .where(statements.c.account_no == "wx-1900000001")
            .values(source_kind="wechatpay")
        )
    config.write_text(config.read_text() + recon_file_text(tmp_path / "cashbook", "wx-1900000001"))
    wechat = bank_account(config, "wx-1900000001")
    with pytest.raises(BankRecRefused, match="wechatpay account: its bills carry no balance"):
        inputs_missing(engine, wechat, ReconDay(account_no="wx-1900000001", recon_date=date(2026, 11, 2)))
    with pytest.raises(ReconConfigError, match="is not in \\[bank_accounts\\]"):
        bank_account(config, "6222999999999999")
    (tmp_path / "cashbook" / "20261102.csv").write_text(
        "booked_on,amount,direction,counterparty_name,counterparty_account,memo,voucher_no\n"
        "2026-11-02,12.345,receipt,x,,m,v1\n",
        encoding="utf-8",
    )
    with pytest.raises(LedgerError, match=r"20261102\.csv line 2: amount '12\.345' has more than 2 decimals"):
        list(
            cashbook_entries(
                bank_account(config, DEMO_BANK_ACCOUNT).cashbook, DEMO_BANK_ACCOUNT, date(2026, 11, 2)
            )
        )
    (tmp_path / "cashbook" / "20261102.csv").write_text("booked_on,amount\n", encoding="utf-8")
    with pytest.raises(LedgerError, match=r"20261102\.csv has no column direction, counterparty_name"):
        list(
            cashbook_entries(
                bank_account(config, DEMO_BANK_ACCOUNT).cashbook, DEMO_BANK_ACCOUNT, date(2026, 11, 2)
            )
        )


def test_the_cash_book_from_a_database_query(engine: Engine, database_url: str, tmp_path: Path) -> None:
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE cash_journal (bank_account TEXT, booked_on DATE, amount NUMERIC(20,2), "
                "dir TEXT, cp_name TEXT, cp_account TEXT, memo TEXT, voucher TEXT)"
            )
        )
        conn.execute(
            text("INSERT INTO cash_journal VALUES (:a, :d, 1200.50, '收', '乙贸易', NULL, '货款', '记-1')"),
            {"a": DEMO_BANK_ACCOUNT, "d": date(2026, 11, 2)},
        )
    account = BankAccountRecon.model_validate({
        "cashbook": {
            "kind": "sql", "url": database_url, "opening_balance": "0.00", "opening_date": "2026-10-31",
            "query": "SELECT booked_on, amount, dir AS direction, cp_name AS counterparty_name, "
                     "cp_account AS counterparty_account, memo, voucher AS voucher_no FROM cash_journal "
                     "WHERE bank_account = :account_no AND booked_on = :day",
        }
    })  # fmt: skip
    [read] = cashbook_entries(account.cashbook, DEMO_BANK_ACCOUNT, date(2026, 11, 2))
    assert (read.direction, read.amount, read.key, read.counterparty_account) == (
        "C",
        Decimal("1200.50"),
        "记-1",
        None,
    )


def test_the_cash_book_as_a_spreadsheet_a_file_per_day(tmp_path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["booked_on", "amount", "direction", "counterparty_name", "counterparty_account", "memo",
                  "voucher_no", "reference"])  # fmt: skip
    # As finance types them: a date cell, number cells (floats), 借 / 贷 for money in and out.
    sheet.append([datetime(2026, 11, 2), 1234.5, "借", "甲实业", 6222000000000011, "货款", "记-1", None])
    sheet.append([datetime(2026, 11, 2), 0.1, "贷", None, None, "手续费", "记-2", "E2E-7"])
    sheet.append([None] * 8)
    workbook.save(tmp_path / "20261102.xlsx")
    account = BankAccountRecon.model_validate({
        "cashbook": {"kind": "xlsx", "path": f"{tmp_path}/{{date:%Y%m%d}}.xlsx", "opening_balance": "0.00",
                     "opening_date": "2026-10-31"},
    })  # fmt: skip
    entries = list(cashbook_entries(account.cashbook, DEMO_BANK_ACCOUNT, date(2026, 11, 2)))
    assert [
        (e.direction, e.amount, e.counterparty_account, e.key, e.reference, e.line_ref) for e in entries
    ] == [
        ("C", Decimal("1234.50"), "6222000000000011", "记-1", None, "20261102.xlsx line 2"),
        ("D", Decimal("0.10"), None, "记-2", "E2E-7", "20261102.xlsx line 3"),
    ]
    with pytest.raises(LedgerError, match=r"20261103\.xlsx"):
        list(cashbook_entries(account.cashbook, DEMO_BANK_ACCOUNT, date(2026, 11, 3)))
