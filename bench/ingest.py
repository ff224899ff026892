"""One ingest in a fresh process: stored archive -> validated records -> committed rows.

``python -m bench.ingest ARCHIVE DATABASE_URL DATA_DIR`` prints one JSON line: the seconds
of decode and of persist, and the process's peak RSS. A process per run keeps one run's
memory from showing in the next one's peak.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bankrecon.models import ArchiveRef, PersistRequest, StatementKey
from bankrecon.sources.refbank.decoding import decode_archive
from bankrecon.statements.common import ArchiveLimits
from bankrecon.store.archive import archive_path
from bankrecon.store.db import make_engine
from bankrecon.store.persistence import save_statement
from bankrecon.store.schema import prepare_schema
from bench.children import ChildrenPeak


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ingest_figures(started: float, decoded_at: float, finished: float, rows: int) -> dict[str, float]:
    """One ingest's seconds (whole, decode, persist), its rows and this process's peak RSS."""
    return {
        "seconds": finished - started,
        "decode_seconds": decoded_at - started,
        "persist_seconds": finished - decoded_at,
        "rows": rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def ingest(source: Path, database_url: str, data_dir: Path, key: StatementKey) -> dict[str, float]:
    sha256 = _sha256(source)
    target = archive_path(data_dir, sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    archive = ArchiveRef(sha256=sha256, size=target.stat().st_size, file_name=source.name)
    engine = make_engine(database_url)
    prepare_schema(engine)

    started = time.perf_counter()
    with ChildrenPeak(os.getpid()) as validation:
        decoded = decode_archive(data_dir, key, archive, ArchiveLimits(), "CNY")
    decoded_at = time.perf_counter()
    result = save_statement(
        engine,
        data_dir,
        PersistRequest(
            statement=key,
            bank_code="0000",
            totals=decoded.totals,
            records_file=decoded.records_file,
            source_sha256=sha256,
            fetched_at=datetime.now(UTC),
        ),
    )
    finished = time.perf_counter()
    engine.dispose()
    return {
        **ingest_figures(started, decoded_at, finished, result.transaction_count),
        # The largest of the processes that validated a share of the blocks, if any did.
        "validation_processes": len(validation.seen),
        "validation_process_peak_rss_mb": validation.mb,
    }


def main() -> None:
    source, database_url, data_dir, account_no, bill_date = sys.argv[1:6]
    key = StatementKey(account_no=account_no, bill_date=datetime.strptime(bill_date, "%Y%m%d").date())
    print(json.dumps(ingest(Path(source), database_url, Path(data_dir), key)))


if __name__ == "__main__":
    main()
