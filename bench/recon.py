"""``python -m bench.recon``: reconciling a channel day on PostgreSQL against a plain SQL full outer join.

N ledger lines (a table read through the ledger's SQL source, as a company database would
be) against N channel lines (the transactions table), one per order, with 1 % of each
kind of exception. Timed: ``reconcile_day`` in a fresh process that imports the worker
(so its peak RSS is the worker's with the run in it): ledger read and staged by COPY,
fingerprints, the matching statement, the settlement, the run recorded. Yardstick, in
the same run on the same data: ``CREATE TABLE ... AS SELECT ... FULL OUTER JOIN`` of the
ledger and the day's channel lines on the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date

from sqlalchemy import text

from bench.children import status_kb
from bench.harness import ROOT, TEST_POSTGRES, Postgres

SCHEMA = "bench_recon"
CHANNEL = "wx-bench-1900000001"
DAY = date(2026, 11, 24)
# Orders spread over the day; every 100th is ledger-only, channel-only, or differs in amount.
SEED_SQL = """
DROP TABLE IF EXISTS bench_ledger, bench_join;
DELETE FROM transactions WHERE account_no = :channel;
DELETE FROM recon_items; DELETE FROM recon_runs;
CREATE TABLE bench_ledger AS
SELECT CASE WHEN i % 100 = 1 THEN 'L' ELSE 'O' END || i AS reference,
       (10 + i % 5000 + (i % 100) / 100.0)::numeric(20, 2) AS amount,
       'C' AS direction,
       TIMESTAMPTZ '2026-11-24 00:00:00+08' + (i * 86000.0 / :lines) * INTERVAL '1 second' AS occurred_at,
       'wechatpay' AS channel,
       NULL::numeric AS fee,
       DATE '2026-11-24' AS business_day
FROM generate_series(1, :lines) AS i;
INSERT INTO transactions (account_no, bill_date, serial_no, seq, traded_at, direction, amount,
                          balance_after, reference, fee)
SELECT :channel, DATE '2026-11-24', 'S' || i, i,
       TIMESTAMPTZ '2026-11-24 00:00:01+08' + (i * 86000.0 / :lines) * INTERVAL '1 second', 'C',
       (10 + i % 5000 + (i % 100) / 100.0 + CASE WHEN i % 100 = 3 THEN 1 ELSE 0 END)::numeric(20, 2),
       0, CASE WHEN i % 100 = 2 THEN 'C' ELSE 'O' END || i,
       ROUND((10 + i % 5000) * 0.006, 5)
FROM generate_series(1, :lines) AS i;
ANALYZE bench_ledger; ANALYZE transactions;
"""
FULL_JOIN = """
CREATE TABLE bench_join AS
SELECT l.reference AS ledger_reference, l.amount AS ledger_amount, t.serial_no, t.reference, t.amount
FROM bench_ledger l
FULL OUTER JOIN (SELECT * FROM transactions WHERE account_no = :channel AND bill_date = :day) t
  ON t.reference = l.reference
"""
LEDGER_QUERY = (
    "SELECT reference, amount, direction, occurred_at, channel, fee FROM bench_ledger WHERE :day IS NOT NULL"
)


def child(url: str) -> None:
    """One reconciliation in this process, which holds what the worker holds: its figures as JSON."""
    import worker  # noqa: F401  (the worker's imports count in its RSS)
    from bankrecon.recon.config import ChannelRecon, SqlLedger
    from bankrecon.recon.models import ReconDay, ReconRunRequest
    from bankrecon.recon.run import reconcile_day
    from bankrecon.store.db import make_engine

    engine = make_engine(url)
    channel = ChannelRecon(ledger=SqlLedger(kind="sql", url=url, query=LEDGER_QUERY))
    request = ReconRunRequest(
        day=ReconDay(account_no=CHANNEL, recon_date=DAY),
        workflow_id="bench",
        run_id=f"bench-{time.time_ns()}",
    )
    started = time.perf_counter()
    summary = reconcile_day(engine, channel, request)
    seconds = time.perf_counter() - started
    peak = status_kb(os.getpid(), "VmHWM")
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak / 1024,
                      "totals": {f"{t.state}/{t.side}": t.lines for t in summary.totals}}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recon", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
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
            conn.execute(text(statement), {"channel": CHANNEL, "lines": args.lines})
    runs = []
    for _ in range(args.repeat):
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS bench_join"))
            started = time.perf_counter()
            conn.execute(text(FULL_JOIN), {"channel": CHANNEL, "day": DAY})
            join_seconds = time.perf_counter() - started
        done = subprocess.run(
            [sys.executable, "-m", "bench.recon", "--child", url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(done.stdout)
        runs.append(
            {"full_join_seconds": join_seconds, **figures, "ratio": figures["seconds"] / join_seconds}
        )
        print(
            f"{args.lines:,} x {args.lines:,}: full outer join {join_seconds:.2f} s, reconcile_day "
            f"{figures['seconds']:.2f} s ({figures['seconds'] / join_seconds:.2f}x), "
            f"peak RSS {figures['peak_rss_mb']:.0f} MB; {figures['totals']}",
            flush=True,
        )
    engine.dispose()
    ratios = sorted(run["ratio"] for run in runs)
    print(f"median ratio {ratios[len(ratios) // 2]:.2f}x")


if __name__ == "__main__":
    main()
