"""``python -m bench.wechatpay``: a WeChat Pay trade bill ingested against the raw shell pipeline.

bankrecon reads the gzip bill, checks every row and the summary, and commits the canonical
rows to PostgreSQL (decode + persist, in a fresh process whose peak RSS is measured); the
yardstick, on the same file in the same run, is
``gunzip | sed 's/`//g' | head -n -2 | psql -c "COPY ... (FORMAT csv, HEADER)"`` into a table of
the bill's columns. Prints a table and writes bench/results-wechatpay.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from bankrecon.models import ArchiveRef, PersistRequest, StatementKey
from bankrecon.sources.base import Account, Merchant, SourceSettings
from bankrecon.sources.wechatpay import WECHATPAY
from bankrecon.sources.wechatpay.simulator.generator import TRADE_ALL_COLUMNS, BillShape, write_bill
from bankrecon.statements.common import ArchiveLimits
from bankrecon.store.archive import archive_path
from bankrecon.store.db import make_engine
from bankrecon.store.persistence import save_statement
from bankrecon.store.schema import prepare_schema
from bench.harness import ROOT, Postgres
from bench.ingest import _sha256

ACCOUNT = "wx-bench-trade"
DAY = date(2026, 11, 24)
AMOUNT_COLUMNS = {"应结订单金额", "代金券金额", "退款金额", "充值券退款金额", "订单金额", "申请退款金额"}


def bill_file(workdir: Path, rows: int) -> Path:
    path = workdir / f"wechatpay-trade-{rows}.csv.gz"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".partial")
        with staged.open("wb") as out:
            write_bill(out, DAY, BillShape(rows=rows), compresslevel=6)
        staged.replace(path)
    return path


def _raw_table() -> str:
    def column(name: str) -> str:
        if name == "交易时间":
            return f'"{name}" timestamp NOT NULL'
        if name in AMOUNT_COLUMNS:
            return f'"{name}" numeric(20, 2)'
        if name == "手续费":
            return f'"{name}" numeric'
        return f'"{name}" text'

    columns = ", ".join(map(column, TRADE_ALL_COLUMNS))
    return f"DROP TABLE IF EXISTS bench_wechatpay_raw; CREATE TABLE bench_wechatpay_raw ({columns});"


def raw_pipeline(bill: Path, rows: int, pg: Postgres) -> dict[str, float]:
    pg.psql(_raw_table())
    copy = "COPY bench_wechatpay_raw FROM STDIN WITH (FORMAT csv, HEADER)"
    # The summary header and row end the file: they are no detail rows.
    pipeline = f"gunzip -c '{bill}' | sed 's/`//g' | head -n -2 | {pg.command()} -c \"{copy}\""
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", pipeline], env=pg.env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or f"COPY {rows}" not in done.stdout:
        raise SystemExit(f"the raw pipeline failed ({done.returncode}): {done.stdout} {done.stderr}")
    return {"seconds": seconds}


def ingest_once(bill: Path, database_url: str, data_dir: Path) -> dict[str, float]:
    """Decode and persist the bill here; the seconds of each and this process's peak RSS."""
    sha256 = _sha256(bill)
    target = archive_path(data_dir, sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.link(bill, target)
    archive = ArchiveRef(sha256=sha256, size=target.stat().st_size, file_name=bill.name)
    merchant = Merchant("wx-bench", "wechatpay", 1800, clock_time(10), SourceSettings())
    account = Account(ACCOUNT, merchant, "CNY", WECHATPAY.account_settings({"bill": "tradebill"}))
    key = StatementKey(account_no=ACCOUNT, bill_date=DAY)
    engine = make_engine(database_url)
    prepare_schema(engine)
    started = time.perf_counter()
    decoded = WECHATPAY.decode(data_dir, key, archive, account, ArchiveLimits(), lambda _count: None)
    decoded_at = time.perf_counter()
    stored = save_statement(
        engine,
        data_dir,
        PersistRequest(
            statement=key,
            bank_code="SUCCESS",
            totals=decoded.totals,
            records_file=decoded.records_file,
            records_format=decoded.records_format,
            source_sha256=sha256,
            fetched_at=datetime.now(UTC),
        ),
        source_kind="wechatpay",
    )
    finished = time.perf_counter()
    engine.dispose()
    return {
        "seconds": finished - started,
        "decode_seconds": decoded_at - started,
        "persist_seconds": finished - decoded_at,
        "rows": stored.transaction_count,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def bankrecon_ingest(bill: Path, pg: Postgres, workdir: Path) -> dict[str, Any]:
    pg.reset()
    done = subprocess.run(
        [sys.executable, "-m", "bench.wechatpay", "--ingest-once", str(bill), pg.url, str(workdir / "data")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"bankrecon ingest failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    pg = Postgres(args.postgres)
    rows_out = []
    for rows in args.rows:
        bill = bill_file(args.workdir, rows)
        pg.reset()
        raw_pipeline(bill, rows, pg)  # warms the caches for both alike
        raw, ours = [], []
        for attempt in range(args.repeat):
            print(f"wechatpay ingest {rows:,} rows, run {attempt + 1} of {args.repeat}", file=sys.stderr)
            pg.reset()
            raw.append(raw_pipeline(bill, rows, pg)["seconds"])
            ours.append(bankrecon_ingest(bill, pg, args.workdir))
        raw_median = statistics.median(raw)
        median = statistics.median(r["seconds"] for r in ours)
        rows_out.append(
            {
                "benchmark": "wechatpay ingest",
                "rows": rows,
                "runs": args.repeat,
                "raw_seconds_median": raw_median,
                "bankrecon_seconds_median": median,
                "decode_seconds_median": statistics.median(r["decode_seconds"] for r in ours),
                "persist_seconds_median": statistics.median(r["persist_seconds"] for r in ours),
                "ratio_to_raw": median / raw_median,
                "peak_rss_mb": max(r["peak_rss_mb"] for r in ours),
                "bill_bytes": bill.stat().st_size,
            }
        )
    return rows_out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wechatpay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=lambda t: [int(x) for x in t.split(",")], default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BANKRECON_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1/test"),
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-wechatpay.json")
    parser.add_argument(
        "--ingest-once", nargs=3, metavar=("BILL", "DATABASE_URL", "DATA_DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.ingest_once:
        bill, url, data_dir = args.ingest_once
        print(json.dumps(ingest_once(Path(bill), url, Path(data_dir))))
        return
    results = run(args)
    measured = {"at": datetime.now(UTC).isoformat(), "results": results}
    args.out.write_text(json.dumps(measured, indent=2) + "\n")
    for row in results:
        print(
            f"{row['rows']:>9,} rows: bankrecon {row['bankrecon_seconds_median']:.2f} s "
            f"(decode {row['decode_seconds_median']:.2f}, persist {row['persist_seconds_median']:.2f}), "
            f"raw {row['raw_seconds_median']:.2f} s, ratio {row['ratio_to_raw']:.2f}, "
            f"peak RSS {row['peak_rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
