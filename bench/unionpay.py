"""``python -m bench.unionpay [RECORDS ...]``: a UnionPay settlement file's ingest against the raw pipeline.

For each size: the simulator's generator writes the day's zip (cached in bench/.work); the raw
pipeline ``unzip -p | cut -b (the 42 fields, tab-separated) | iconv -f GBK -t UTF-8 | psql COPY``
loads every field into a table of 42 text columns; bankrecon ingests the same zip in a fresh
process (``decode_settlement``, every record checked, then ``save_statement`` on PostgreSQL)
and reports its peak RSS. Prints one JSON line per contender and run.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from bankrecon.models import ArchiveRef, PersistRequest, StatementKey
from bankrecon.sources.unionpay.records import ZM_FIELDS, decode_settlement
from bankrecon.sources.unionpay.simulator.generator import (
    SettlementShape,
    detail_member,
    write_settlement_zip,
)
from bankrecon.statements.common import ArchiveLimits
from bankrecon.store.archive import archive_path
from bankrecon.store.db import make_engine
from bankrecon.store.persistence import save_statement
from bankrecon.store.schema import prepare_schema
from bench.harness import Postgres
from bench.ingest import _sha256

MER_ID = "802310048993424"
DAY = date(2026, 11, 20)
ACCOUNT = "up-bench"
WORK = Path(__file__).parent / ".work"
RAW_TABLE = (
    "DROP TABLE IF EXISTS raw_unionpay; CREATE TABLE raw_unionpay ("
    + ", ".join(f"f{i} text" for i in range(len(ZM_FIELDS)))
    + ", PRIMARY KEY (f9))"
)
_RANGES = []
_start = 1
for _name, _width in ZM_FIELDS:
    _RANGES.append(f"{_start}-{_start + _width - 1}")
    _start += _width + 1
CUT = "cut -b " + ",".join(_RANGES) + " --output-delimiter=$'\\t'"


def settlement_file(records: int) -> Path:
    path = WORK / f"unionpay-{records}.zip"
    if not path.exists():
        WORK.mkdir(exist_ok=True)
        with path.open("wb") as out:
            write_settlement_zip(out, DAY, SettlementShape(rows=records, error_records=10), MER_ID)
    return path


def raw_pipeline(archive: Path, records: int, pg: Postgres) -> dict[str, float]:
    pg.psql(RAW_TABLE)
    pipeline = (
        f"unzip -p '{archive}' '{detail_member(DAY, MER_ID)}' | tr -d '\\r' | {CUT} | iconv -f GBK -t UTF-8 "
        f'| {pg.command()} -c "COPY raw_unionpay FROM STDIN"'
    )
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", pipeline], env=pg.env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or f"COPY {records}" not in done.stdout:
        raise SystemExit(f"the raw pipeline failed ({done.returncode}): {done.stdout} {done.stderr}")
    return {"seconds": seconds, "rows": records}


def ingest(source: Path, database_url: str, data_dir: Path) -> dict[str, float]:
    """One ingest in this process (run it in a fresh one): decode then persist."""
    key = StatementKey(account_no=ACCOUNT, bill_date=DAY)
    sha256 = _sha256(source)
    target = archive_path(data_dir, sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    archive = ArchiveRef(sha256=sha256, size=target.stat().st_size, file_name=source.name)
    engine = make_engine(database_url)
    prepare_schema(engine)
    started = time.perf_counter()
    decoded = decode_settlement(data_dir, key, archive, MER_ID, ArchiveLimits(), lambda _count: None)
    decoded_at = time.perf_counter()
    result = save_statement(
        engine,
        data_dir,
        PersistRequest(
            statement=key,
            bank_code="00",
            totals=decoded.totals,
            records_file=decoded.records_file,
            records_format="canonical",
            source_sha256=sha256,
            fetched_at=datetime.now(UTC),
        ),
        source_kind="unionpay",
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
    if sys.argv[1:2] == ["--one"]:
        source, url, data_dir = sys.argv[2:5]
        print(json.dumps(ingest(Path(source), url, Path(data_dir))))
        return
    sizes = [int(size) for size in sys.argv[1:]] or [100_000]
    pg = Postgres(
        os.environ.get("BANKRECON_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    for records in sizes:
        archive = settlement_file(records)
        for attempt in range(2):
            pg.reset()
            raw = raw_pipeline(archive, records, pg)
            pg.reset()
            work_dir = WORK / "unionpay-data"
            shutil.rmtree(work_dir, ignore_errors=True)
            done = subprocess.run(
                [sys.executable, "-m", "bench.unionpay", "--one", str(archive), pg.url, str(work_dir)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise SystemExit(f"bankrecon ingest failed:\n{done.stderr[-3000:]}")
            ours = json.loads(done.stdout)
            ours["ratio"] = ours["seconds"] / raw["seconds"]
            print(json.dumps({"records": records, "run": attempt + 1, "raw": raw, "bankrecon": ours}))


if __name__ == "__main__":
    main()
