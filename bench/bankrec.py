"""``python -m bench.bankrec``: a bank account's day, cash book against statement, on PostgreSQL,
against a plain SQL join of the same two tables.

N cash-book entries (a table read through the cash book's SQL source) against N statement lines
(the transactions table) of one day, 1 % of each kind of 未达账项 planted, the rest matching by
counterparty. Timed: ``reconcile_bank_day`` in a fresh process that imports the worker (so its
peak RSS is the worker's with the run in it). Yardstick, in the same run on the same data:
``CREATE TABLE ... AS SELECT`` of the two tables joined on (amount, direction,
counterparty_account) with the date window as a range condition.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta

from sqlalchemy import text

from bench.children import status_kb
from bench.harness import ROOT, TEST_POSTGRES, Postgres

SCHEMA = "bench_bankrec"
ACCOUNT = "6222020000009999"
DAY = date(2026, 11, 24)
# Entries 1 and 2 of every hundred are only in the book (a payment, a receipt), 3 and 4 only in
# the bank: each of the four kinds is 1 % of its side; the rest match by rule 2.
SEED_SQL = """
DROP TABLE IF EXISTS bench_cashbook, bench_join;
DELETE FROM transactions WHERE account_no = :account;
DELETE FROM statements WHERE account_no = :account;
DELETE FROM recon_items; DELETE FROM recon_runs; DELETE FROM bankrec_balances;
CREATE TABLE bench_cashbook AS
SELECT :account AS bank_account, DATE '2026-11-24' AS booked_on,
       (10 + i % 50000 + (i % 100) / 100.0)::numeric(20, 2) AS amount,
       CASE WHEN i % 2 = 0 THEN 'C' ELSE 'D' END AS direction,
       'counterparty ' || (i % 20000) AS counterparty_name, 'CP' || (i % 20000) AS counterparty_account,
       'memo ' || i AS memo, 'V' || i AS voucher_no
FROM generate_series(1, :lines) AS i WHERE i % 100 NOT IN (3, 4);
INSERT INTO transactions (account_no, bill_date, serial_no, seq, traded_at, direction, amount,
                          balance_after, counterparty_name, counterparty_account, memo)
SELECT :account, DATE '2026-11-24', 'S' || i, i, TIMESTAMPTZ '2026-11-24 09:00:00+08',
       CASE WHEN i % 2 = 0 THEN 'C' ELSE 'D' END,
       (10 + i % 50000 + (i % 100) / 100.0)::numeric(20, 2), 0,
       'COUNTERPARTY ' || (i % 20000) || ' 有限公司', 'CP' || (i % 20000), 'bank memo ' || i
FROM generate_series(1, :lines) AS i WHERE i % 100 NOT IN (1, 2);
INSERT INTO statements (account_no, bill_date, bank_code, currency, opening_balance, closing_balance,
                        credit_count, debit_count, credit_total, debit_total, transaction_count,
                        fetched_at, persisted_at, source_kind)
VALUES (:account, DATE '2026-11-24', '0000', 'CNY', 0, 0, 0, 0, 0, 0, 0, now(), now(), 'refbank');
ANALYZE bench_cashbook; ANALYZE transactions;
"""
JOIN = """
CREATE TABLE bench_join AS
SELECT b.voucher_no, t.serial_no, b.amount
FROM bench_cashbook b
JOIN transactions t
  ON t.account_no = :account AND t.amount = b.amount AND t.direction = b.direction
 AND t.counterparty_account = b.counterparty_account
 AND t.bill_date BETWEEN b.booked_on - 3 AND b.booked_on + 3
"""
CASHBOOK_QUERY = (
    "SELECT booked_on, amount, direction, counterparty_name, counterparty_account, memo, voucher_no "
    "FROM bench_cashbook WHERE bank_account = :account_no AND booked_on = :day"
)


def child(url: str) -> None:
    """One bank run in this process, which holds what the worker holds: its figures as JSON."""
    import worker  # noqa: F401  (the worker's imports count in its RSS)
    from bankrecon.bankrec.balance import bank_run_summary
    from bankrecon.bankrec.config import BankAccountRecon
    from bankrecon.bankrec.run import reconcile_bank_day
    from bankrecon.recon.models import ReconDay, ReconRunRequest
    from bankrecon.store.db import make_engine

    engine = make_engine(url)
    account = BankAccountRecon.model_validate({
        "cashbook": {"kind": "sql", "url": url, "query": CASHBOOK_QUERY, "opening_balance": "0.00",
                     "opening_date": DAY - timedelta(days=1)},
    })  # fmt: skip
    request = ReconRunRequest(
        day=ReconDay(account_no=ACCOUNT, recon_date=DAY),
        workflow_id="bench",
        run_id=f"bench-{time.time_ns()}",
    )
    started = time.perf_counter()
    run_id = reconcile_bank_day(engine, account, request)
    seconds = time.perf_counter() - started
    summary = bank_run_summary(engine, run_id)
    peak = status_kb(os.getpid(), "VmHWM")
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak / 1024, "rules": summary.rules,
                      "totals": {f"{t.state}/{t.side}": t.lines for t in summary.totals}}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bankrec", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres",
        default=TEST_POSTGRES,
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    from bankrecon.store.db import make_engine
    from bankrecon.store.schema import prepare_schema

    # The bench's own schema, made anew: one left by an older bankrecon would not be at the head.
    database = Postgres(args.postgres, SCHEMA)
    database.reset()
    url = database.url
    engine = make_engine(url)
    prepare_schema(engine)
    with engine.begin() as conn:
        for statement in filter(str.strip, SEED_SQL.split(";")):
            conn.execute(text(statement), {"account": ACCOUNT, "lines": args.lines})
    with engine.begin() as conn:
        started = time.perf_counter()
        conn.execute(text(JOIN), {"account": ACCOUNT})
        join_seconds = time.perf_counter() - started
    engine.dispose()
    done = subprocess.run([sys.executable, "-m", "bench.bankrec", "--child", url],
                          cwd=ROOT, capture_output=True, text=True, check=True)  # fmt: skip
    figures = json.loads(done.stdout)
    print(
        f"{args.lines:,} x {args.lines:,}: join {join_seconds:.2f} s, reconcile_bank_day "
        f"{figures['seconds']:.2f} s ({figures['seconds'] / join_seconds:.2f}x), "
        f"peak RSS {figures['peak_rss_mb']:.0f} MB; rules {figures['rules']}; {figures['totals']}",
        flush=True,
    )


if __name__ == "__main__":
    main()
