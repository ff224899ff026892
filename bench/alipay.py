"""Alipay trade bill ingest against ``unzip -p | iconv -f GBK -t UTF-8 | psql COPY``, on the same zip.

``python -m bench.alipay [--rows N] [--repeat R]`` generates a trade bill zip of N rows with the
simulator's seeded generator (cached in bench/.work/), then times, in the same run: the raw
pipeline into a table of the detail member's 25 columns as text (the '#' lines dropped by
``grep``, which COPY cannot skip), and bankrecon's ingest in a fresh process (decode_bill: the
zip defences, GBK, every row checked and mapped, the trailer totals; then save_statement into
PostgreSQL), with that process's peak RSS. Prints one JSON line per run and a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import make_url

from bankrecon.sources.alipay.simulator.generator import TRADE_COLUMNS, BillShape, write_bill

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
DATABASE_URL = os.environ.get("BANKRECON_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BILL_DATE = date(2026, 11, 28)


def bill(rows: int) -> Path:
    path = WORK / f"alipay-trade-{rows}.csv.zip"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".partial")
        with staged.open("wb") as out:
            write_bill(out, BILL_DATE, BillShape("trade", rows), seed=1)
        staged.replace(path)
    return path


def raw_pipeline(path: Path, psql_url: str) -> float:
    columns = ", ".join(f'"c{n}" text' for n in range(len(TRADE_COLUMNS)))
    setup = f"DROP TABLE IF EXISTS bench.alipay_raw; CREATE TABLE bench.alipay_raw ({columns});"
    subprocess.run(["psql", psql_url, "-qc", "CREATE SCHEMA IF NOT EXISTS bench; " + setup], check=True)
    pipeline = (
        # The detail member: all but the summary, whose GBK name is the one with "(汇总)".
        f"unzip -p {path} -x '*)*' | iconv -f GBK -t UTF-8 | grep -v '^#' | "
        f'psql {psql_url} -qc "COPY bench.alipay_raw FROM STDIN (FORMAT csv, HEADER true)"'
    )
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], check=True)
    return time.perf_counter() - started


def ingest_child(path: Path, database_url: str, data_dir: Path) -> dict[str, float]:
    """Runs in its own process: the stored zip to committed rows."""
    import hashlib

    from bankrecon.models import ArchiveRef, PersistRequest, StatementKey
    from bankrecon.sources.alipay.bill import decode_bill
    from bankrecon.statements.common import ArchiveLimits
    from bankrecon.store.archive import archive_path
    from bankrecon.store.db import make_engine
    from bankrecon.store.persistence import save_statement
    from bankrecon.store.schema import prepare_schema

    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    archive_path(data_dir, sha256).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, archive_path(data_dir, sha256))
    archive = ArchiveRef(sha256=sha256, size=path.stat().st_size, file_name=path.name)
    key = StatementKey(account_no="ali-bench-trade", bill_date=BILL_DATE)
    engine = make_engine(database_url)
    prepare_schema(engine)
    started = time.perf_counter()
    decoded = decode_bill(data_dir, key, archive, "trade", ArchiveLimits(), lambda _count: None)
    decoded_at = time.perf_counter()
    result = save_statement(
        engine,
        data_dir,
        PersistRequest(
            statement=key,
            bank_code="10000",
            totals=decoded.totals,
            records_file=decoded.records_file,
            records_format="canonical",
            source_sha256=sha256,
            fetched_at=datetime.now(UTC),
        ),
    )
    finished = time.perf_counter()
    engine.dispose()
    return {
        "seconds": finished - started,
        "decode_seconds": decoded_at - started,
        "persist_seconds": finished - decoded_at,
        "rows": result.transaction_count,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.alipay")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--child", nargs=3, metavar=("ZIP", "DATABASE_URL", "DATA_DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(ingest_child(Path(args.child[0]), args.child[1], Path(args.child[2]))))
        return
    path = bill(args.rows)
    schema_url = make_url(DATABASE_URL).update_query_dict({"options": "-csearch_path=bench_alipay"})
    psql_url = make_url(DATABASE_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run(
        ["psql", psql_url, "-qc", "DROP SCHEMA IF EXISTS bench_alipay CASCADE; CREATE SCHEMA bench_alipay"],
        check=True,
    )
    raw, ours = [], []
    for run in range(args.repeat):
        raw.append(raw_pipeline(path, psql_url))
        data_dir = WORK / f"alipay-data-{run}"
        shutil.rmtree(data_dir, ignore_errors=True)
        subprocess.run(
            [
                "psql",
                psql_url,
                "-qc",
                "DROP SCHEMA IF EXISTS bench_alipay CASCADE; CREATE SCHEMA bench_alipay",
            ],
            check=True,
        )
        target = schema_url.render_as_string(hide_password=False)
        child = subprocess.run(
            [sys.executable, "-m", "bench.alipay", "--child", str(path), target, str(data_dir)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        ours.append(json.loads(child.stdout))
        shutil.rmtree(data_dir, ignore_errors=True)
        print(json.dumps({"run": run, "raw_seconds": raw[-1], **ours[-1]}), flush=True)
    raw_median = statistics.median(raw)
    ours_median = statistics.median(r["seconds"] for r in ours)
    summary = {
        "rows": args.rows,
        "zip_mb": round(path.stat().st_size / 1024**2, 1),
        "raw_seconds_median": round(raw_median, 2),
        "bankrecon_seconds_median": round(ours_median, 2),
        "decode_seconds_median": round(statistics.median(r["decode_seconds"] for r in ours), 2),
        "persist_seconds_median": round(statistics.median(r["persist_seconds"] for r in ours), 2),
        "ratio": round(ours_median / raw_median, 2),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in ours)),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
