"""``python -m bench.handoff``: what a persist on another host than its decode costs, two ways.

bankrecon decodes the archive again there (``persist_statement``). The other way would send
the decode's records file through the archive store: put by every decode, since it cannot know
where the persist will land, and got by a persist on another host. Both are timed on one
seeded statement of the reference bank, with the store in a PostgreSQL schema of its own
(``ARCHIVE_STORE_URL=database``) and the hosts' DATA_DIRs on tmpfs. How often a persist lands
on another host is ``bench.nightly``'s "persists that decoded again".
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bankrecon.models import ArchiveRef, StatementKey
from bankrecon.sources.refbank.decoding import decode_archive
from bankrecon.statements.common import ArchiveLimits
from bankrecon.store.archive import archive_path
from bankrecon.store.archives import DatabaseArchiveStore
from bankrecon.store.db import make_engine
from bankrecon.store.schema import upgrade_schema
from bench.harness import ACCOUNT, ROOT, TEST_POSTGRES, Postgres, statement_files, write_report
from bench.ingest import _sha256

SCHEMA = "bench_handoff"
KEY = StatementKey(account_no=ACCOUNT, bill_date=date(2026, 12, 1))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.handoff", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="statement lines (default: 1000000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each, the median reported (default: 3)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / "bench" / ".work",
        help="where the seeded statement is made once and kept, as ./bench/run does (default: bench/.work)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "results-handoff.json",
        help="the figures as JSON (default: bench/results-handoff.json)",
    )
    parser.add_argument(
        "--postgres",
        default=TEST_POSTGRES,
        help=f"the server (default: the tests'); schema {SCHEMA}, emptied first",
    )
    return parser


def _seconds_since(started: float) -> float:
    return time.perf_counter() - started


def main() -> None:
    args = _parser().parse_args()
    pg = Postgres(args.postgres, schema=SCHEMA)
    pg.reset()
    engine = make_engine(pg.url)
    upgrade_schema(engine)
    store = DatabaseArchiveStore(engine)
    work = Path(tempfile.mkdtemp(prefix="bankrecon-handoff-", dir="/dev/shm"))
    decoding_host, persisting_host = work / "decoding-host", work / "persisting-host"
    decodes: list[float] = []
    puts: list[float] = []
    gets: list[float] = []
    try:
        zipped, _ = statement_files(args.workdir, args.lines, KEY.bill_date)
        sha256 = _sha256(zipped)
        archive = ArchiveRef(sha256=sha256, size=zipped.stat().st_size, file_name=zipped.name)
        kept = archive_path(decoding_host, sha256)
        kept.parent.mkdir(parents=True)
        shutil.copy(zipped, kept)
        for _ in range(args.runs):
            started = time.perf_counter()
            decoded = decode_archive(decoding_host, KEY, archive, ArchiveLimits())
            decodes.append(_seconds_since(started))
            records = decoding_host / decoded.records_file
            records_size = records.stat().st_size
            # The store keeps files by their SHA-256, as it keeps archives.
            records_sha256 = _sha256(records)
            records.rename(archive_path(decoding_host, records_sha256))
            started = time.perf_counter()
            store.put(decoding_host, records_sha256)
            puts.append(_seconds_since(started))
            started = time.perf_counter()
            store.get(persisting_host, records_sha256)
            gets.append(_seconds_since(started))
            archive_path(decoding_host, records_sha256).unlink()
            archive_path(persisting_host, records_sha256).unlink()
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM archive_chunks; DELETE FROM stored_archives")
    finally:
        shutil.rmtree(work)
        engine.dispose()
    figures = {
        "lines": args.lines,
        "runs": args.runs,
        "archive_bytes": archive.size,
        "records_file_bytes": records_size,
        "decode_again_seconds": decodes,
        "records_put_seconds": puts,
        "records_get_seconds": gets,
    }
    decode, put, get = (statistics.median(values) for values in (decodes, puts, gets))
    table = "\n".join(
        [
            f"{args.lines:,} lines: archive {archive.size / 1e6:.0f} MB, "
            f"records file {records_size / 1e6:.0f} MB",
            f"decode again on the persisting host     {decode:.2f} s (medians of {args.runs} runs)",
            f"records file put by the decoding host   {put:.2f} s",
            f"records file got by the persisting host {get:.2f} s",
        ]
    )
    write_report(args.out, " ".join(["python -m bench.handoff", *sys.argv[1:]]), figures, table)


if __name__ == "__main__":
    main()
