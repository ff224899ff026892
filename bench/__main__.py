"""``./bench/run``: bankrecon against the raw shell pipeline at bank scale; a table and a JSON file.

Three benchmarks, each on the same machine in the same run as its yardstick:

ingest   the stored archive to committed rows (decode + persist, every rule checked), on
         SQLite and PostgreSQL, against ``base64 -d | funzip | iconv | grep '^D|' | psql COPY``
         into an equivalent table;
memory   a real worker process (``python worker.py``) fetching, decoding and persisting one
         statement through the Temporal dev server and the bank simulator: its peak RSS;
fanout   N accounts x 1 date, 100 lines each, ready after 2 refusals, a 1-second window,
         one merchant per account, through one worker: against the same workflows served by
         a worker whose activities do nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from bankrecon.models import DailyStatementInput, DailyStatementResult
from bankrecon.sources.refbank.simulator.server import BankSimulator, StatementPlan
from bankrecon.store.schema import open_database
from bankrecon.temporal.client import connect
from bench.children import ChildrenPeak, settled_rss_mb, status_kb
from bench.harness import (
    ACCOUNT,
    ROOT,
    SEED,
    TEST_POSTGRES,
    OneMerchantEach,
    Postgres,
    statement_files,
    temporal_settings,
    write_report,
)
from tests.processes import WORKER_READY, Child, DevServer, ProcessGroup, start_worker, wait_until, worker_env
from workflows.daily_statement import DailyStatementWorkflow, yesterday_in_china

RAW_TABLE = """
DROP TABLE IF EXISTS bench_raw;
CREATE TABLE bench_raw (
    record_type char(1) NOT NULL,
    trade_date date NOT NULL,
    trade_time time NOT NULL,
    serial_no varchar(32) PRIMARY KEY,
    direction char(1) NOT NULL,
    amount numeric(20, 2) NOT NULL,
    balance_after numeric(20, 2) NOT NULL,
    counterparty_account varchar(64),
    counterparty_name varchar(256),
    memo varchar(512)
);
"""
STARTS_IN_FLIGHT = 32
RAW_COPY = "COPY bench_raw FROM STDIN WITH (FORMAT text, DELIMITER '|', NULL '')"


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./bench/run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=_sizes, default=[100_000], help="ingest sizes (default: 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each ingest (default: 3)")
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="ingest targets (default: sqlite,postgresql)"
    )
    parser.add_argument(
        "--memory-lines",
        type=_sizes,
        default=[100_000, 200_000],
        help="statement sizes for the worker's peak RSS (default: 100000,200000)",
    )
    parser.add_argument("--memory-database", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument(
        "--archive-store",
        default="local",
        help="the memory run's worker's ARCHIVE_STORE_URL (default: local); with --memory-database "
        "postgresql it is also timed end to end, from the bank's 0000 to the workflow's close, "
        "against the raw pipeline on the same archive",
    )
    parser.add_argument(
        "--fanout-accounts", type=int, default=100, help="accounts in the fan-out, 0 to skip (default: 100)"
    )
    parser.add_argument(
        "--fanout-repeat",
        type=int,
        default=2,
        help="rounds of the fan-out, each running both kinds, first one then the other (default: 2)",
    )
    parser.add_argument("--only", choices=["ingest", "memory", "fanout"], action="append")
    parser.add_argument(
        "--profile", action="store_true", help="profile one ingest of the largest size with pyinstrument"
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument(
        "--postgres",
        default=TEST_POSTGRES,
    )
    return parser


# --- ingest -----------------------------------------------------------------------------------


def raw_pipeline(encoded: Path, lines: int, pg: Postgres) -> dict[str, float]:
    pg.psql(RAW_TABLE)
    pipeline = (
        f"base64 -d '{encoded}' | funzip 2>/dev/null | iconv -f gb18030 -t utf-8 | grep '^D|' "
        f'| {pg.command()} -c "{RAW_COPY}"'
    )
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", pipeline], env=pg.env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or f"COPY {lines}" not in done.stdout:
        raise SystemExit(f"the raw pipeline failed ({done.returncode}): {done.stdout} {done.stderr}")
    return {"seconds": seconds, "rows": lines}


def bankrecon_ingest(archive: Path, day: date, database: str, pg: Postgres, workdir: Path) -> dict[str, Any]:
    data_dir = workdir / "ingest-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    if database == "sqlite":
        db_file = workdir / "ingest.db"
        for leftover in workdir.glob("ingest.db*"):
            leftover.unlink()
        url = f"sqlite:///{db_file}"
    else:
        pg.reset()
        url = pg.url
    done = subprocess.run(
        [sys.executable, "-m", "bench.ingest", str(archive), url, str(data_dir), ACCOUNT, f"{day:%Y%m%d}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"bankrecon ingest failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ingest(args: argparse.Namespace, day: date, pg: Postgres) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    databases = [d for d in args.databases.split(",") if d]
    for lines in args.lines:
        archive, encoded = statement_files(args.workdir, lines, day)
        runs: dict[str, list[dict[str, Any]]] = {"raw": [], **{d: [] for d in databases}}
        pg.reset()
        raw_pipeline(encoded, lines, pg)  # warms the caches for every contender alike
        for attempt in range(args.repeat):
            print(f"ingest {lines:,} lines, run {attempt + 1} of {args.repeat}", file=sys.stderr)
            pg.reset()
            runs["raw"].append(raw_pipeline(encoded, lines, pg))
            for database in databases:
                runs[database].append(bankrecon_ingest(archive, day, database, pg, args.workdir))
        raw_median = statistics.median(r["seconds"] for r in runs["raw"])
        for name, results in runs.items():
            seconds = [r["seconds"] for r in results]
            median = statistics.median(seconds)
            row: dict[str, Any] = {
                "benchmark": "ingest",
                "target": "raw pipeline (PostgreSQL)" if name == "raw" else f"bankrecon {name}",
                "lines": lines,
                "runs": len(seconds),
                "seconds_median": median,
                "seconds_min": min(seconds),
                "seconds_max": max(seconds),
                "rows_per_second": lines / median,
                "ratio_to_raw": median / raw_median,
            }
            if name != "raw":
                row["decode_seconds_median"] = statistics.median(r["decode_seconds"] for r in results)
                row["persist_seconds_median"] = statistics.median(r["persist_seconds"] for r in results)
                row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
                row["validation_process_peak_rss_mb"] = max(
                    r["validation_process_peak_rss_mb"] for r in results
                )
            rows.append(row)
    return rows


def profile(args: argparse.Namespace, day: date, pg: Postgres) -> Path:
    """A pyinstrument profile of one PostgreSQL ingest of the largest size."""
    lines = max(args.lines)
    archive, _ = statement_files(args.workdir, lines, day)
    pg.reset()
    data_dir = args.workdir / "ingest-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    report: Path = args.workdir / f"profile-{lines}.txt"
    with report.open("w") as out:
        subprocess.run(
            [
                sys.executable, "-m", "pyinstrument", "--show-all", "-m", "bench.ingest",
                str(archive), pg.url, str(data_dir), ACCOUNT, f"{day:%Y%m%d}",
            ],
            cwd=ROOT, stdout=out, check=True,
        )  # fmt: skip
    return report


# --- a real worker through Temporal -----------------------------------------------------------


def _statement_input(account: str, day: date) -> DailyStatementInput:
    # A 1 s retry interval beside the bank's 1 s window (0 for the memory run); the dates are
    # past their deadline, and an alert is not what is measured.
    return DailyStatementInput(
        account_no=account, bill_date=day, retry_interval_seconds=1, alert_when_late=False
    )


def _start_noop_worker(group: ProcessGroup, env: dict[str, str]) -> Child:
    child = group.start("noop-worker", [sys.executable, "-m", "bench.noop_worker"], env)
    wait_until(
        lambda: WORKER_READY in child.log.read_text(errors="replace") or not child.alive(),
        60,
        "the no-op worker to poll its task queue",
        child.log,
    )
    assert child.alive()
    return child


async def memory(
    args: argparse.Namespace, day: date, pg: Postgres, group: ProcessGroup, server: DevServer
) -> list[dict[str, Any]]:
    rows = []
    client = await connect(temporal_settings(server.address))
    for lines in args.memory_lines:
        archive, encoded = statement_files(args.workdir, lines, day)
        data_dir = args.workdir / f"memory-data-{lines}"
        shutil.rmtree(data_dir, ignore_errors=True)
        if args.memory_database == "sqlite":
            url = f"sqlite:///{data_dir / 'bankrecon.db'}"
        else:
            pg.reset()
            url = pg.url
        # Migrated beforehand, as compose's migrate service does: the worker only checks it.
        data_dir.mkdir(parents=True)
        open_database(url).dispose()
        # The archive is served from memory: the worker's time is not the generator's.
        plan = StatementPlan(archive=archive.read_bytes(), mime_wrap=True)
        with BankSimulator(min_interval=0, seed=SEED, default_plan=plan) as bank:
            task_queue = f"bench-memory-{uuid.uuid4().hex[:8]}"
            env = worker_env(
                temporal_address=server.address,
                task_queue=task_queue,
                data_dir=data_dir,
                database_url=url,
                bank_url=bank.url,
                min_interval=0,
                request_timeout=600,
            ) | {"ARCHIVE_STORE_URL": args.archive_store}
            print(f"memory: a worker loading a {lines:,}-line statement", file=sys.stderr)
            worker = start_worker(group, env)
            idle = await settled_rss_mb(worker.pid)
            started = time.perf_counter()
            with ChildrenPeak(worker.pid) as children:
                result = await client.execute_workflow(
                    DailyStatementWorkflow.run,
                    _statement_input(ACCOUNT, day),
                    id=f"{task_queue}-{ACCOUNT}",
                    task_queue=task_queue,
                )
            seconds = time.perf_counter() - started
            peak = status_kb(worker.pid, "VmHWM") / 1024
            worker.terminate()
            # End to end: from the bank's 0000 (its answer follows the request's arrival at
            # once, the archive being in memory) to the workflow's close on the server.
            answered = max(r.arrived_at for r in bank.requests if r.code == "0000")
            handle = client.get_workflow_handle(f"{task_queue}-{ACCOUNT}")
            closed = (await handle.describe()).close_time
            assert closed is not None
            end_to_end = closed.timestamp() - answered
            steps = await activity_seconds(handle)
        raw = raw_pipeline(encoded, lines, pg)["seconds"] if args.memory_database == "postgresql" else None
        if result.transaction_count != lines:
            raise SystemExit(f"the worker stored {result.transaction_count} of {lines} lines")
        rows.append(
            {
                "benchmark": "memory",
                "target": f"worker.py, {args.memory_database}",
                "lines": lines,
                "runs": 1,
                "seconds_median": seconds,
                "seconds_min": seconds,
                "seconds_max": seconds,
                "rows_per_second": lines / seconds,
                "idle_rss_mb": idle,
                "peak_rss_mb": peak,
                "validation_processes": len(children.seen),
                "validation_process_peak_rss_mb": children.mb,
                "archive_store": args.archive_store,
                "end_to_end_seconds": end_to_end,
                "raw_pipeline_seconds": raw,
                "end_to_end_ratio": end_to_end / raw if raw else None,
                "activity_seconds": steps,
            }
        )
    return rows


async def activity_seconds(handle: WorkflowHandle[Any, Any]) -> dict[str, float]:
    """Each activity's last attempt, from its start to its completion, by the server's clock; and
    ``between``, the rest of the time from the first activity's start to the workflow's close
    (scheduling, workflow tasks, the waits between)."""
    events = [event async for event in handle.fetch_history_events()]
    names: dict[int, str] = {}
    started: dict[int, float] = {}
    spans: dict[str, float] = {}
    for event in events:
        at = event.event_time.ToDatetime(tzinfo=UTC).timestamp()
        if event.HasField("activity_task_scheduled_event_attributes"):
            names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.HasField("activity_task_started_event_attributes"):
            started[event.activity_task_started_event_attributes.scheduled_event_id] = at
        elif event.HasField("activity_task_completed_event_attributes"):
            scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
            name = names[scheduled]
            spans[name] = spans.get(name, 0.0) + at - started[scheduled]
    if started:
        first = min(started.values())
        last = events[-1].event_time.ToDatetime(tzinfo=UTC).timestamp()
        spans["between"] = last - first - sum(spans.values())
    return spans


FANOUT_KINDS = ("no-op activities", "bankrecon")


async def fanout(
    args: argparse.Namespace, day: date, group: ProcessGroup, server: DevServer
) -> list[dict[str, Any]]:
    count = args.fanout_accounts
    fleet = OneMerchantEach.of(count)
    accounts = fleet.accounts
    accounts_file = fleet.write_accounts_file(args.workdir / f"fanout-accounts-{count}.toml", 1)
    plan = StatementPlan(ready_after=2, lines=100)
    client = await connect(temporal_settings(server.address))
    seconds: dict[str, list[float]] = {kind: [] for kind in FANOUT_KINDS}
    peaks: dict[str, float] = dict.fromkeys(FANOUT_KINDS, 0.0)
    with BankSimulator(
        merchants=fleet.secrets,
        accounts=fleet.bank_accounts(),
        min_interval=1.0,
        seed=SEED,
        default_plan=plan,
    ) as bank:
        for round_ in range(args.fanout_repeat):
            # Each kind goes first in every other round: the server's history grows with each run.
            for kind in FANOUT_KINDS if round_ % 2 == 0 else reversed(FANOUT_KINDS):
                data_dir = args.workdir / f"fanout-data-{uuid.uuid4().hex[:8]}"
                env = worker_env(
                    temporal_address=server.address,
                    task_queue=f"bench-fanout-{uuid.uuid4().hex[:8]}",
                    data_dir=data_dir,
                    database_url=f"sqlite:///{data_dir / 'bankrecon.db'}",
                    bank_url=bank.url,
                    min_interval=1,
                    request_timeout=60,
                ) | {"BANK_ACCOUNTS_FILE": str(accounts_file), "BENCH_REFUSALS": str(plan.ready_after)}
                print(f"fan-out: {count} accounts, {kind}, round {round_ + 1}", file=sys.stderr)
                run_seconds, peak = await _fanout_run(kind, client, env, group, accounts, day)
                print(f"fan-out: {kind}: {run_seconds:.1f} s", file=sys.stderr)
                seconds[kind].append(run_seconds)
                peaks[kind] = max(peaks[kind], peak)
    rows = [
        {
            "benchmark": "fanout",
            "target": kind,
            "lines": 100 * count,
            "accounts": count,
            "runs": len(seconds[kind]),
            "seconds_median": statistics.median(seconds[kind]),
            "seconds_min": min(seconds[kind]),
            "seconds_max": max(seconds[kind]),
            "rows_per_second": 100 * count / statistics.median(seconds[kind]),
            "peak_rss_mb": peaks[kind],
        }
        for kind in FANOUT_KINDS
    ]
    rows[1]["ratio_to_noop"] = rows[1]["seconds_median"] / rows[0]["seconds_median"]
    return rows


async def _fanout_run(
    kind: str, client: Client, env: dict[str, str], group: ProcessGroup, accounts: list[str], day: date
) -> tuple[float, float]:
    """One statement per account through one worker: the seconds until all are done, its peak RSS."""
    task_queue = env["TEMPORAL_TASK_QUEUE"]
    worker = start_worker(group, env) if kind == "bankrecon" else _start_noop_worker(group, env)
    # A thousand starts at once time out on the dev server; a few dozen in flight do not.
    starting = asyncio.Semaphore(STARTS_IN_FLIGHT)

    async def statement(account: str) -> DailyStatementResult:
        async with starting:
            handle = await client.start_workflow(
                DailyStatementWorkflow.run,
                _statement_input(account, day),
                id=f"{task_queue}-{account}",
                task_queue=task_queue,
            )
        return await handle.result()

    started = time.perf_counter()
    results = await asyncio.gather(*(statement(account) for account in accounts))
    seconds = time.perf_counter() - started
    peak = status_kb(worker.pid, "VmHWM") / 1024
    worker.terminate()
    expected = 100 if kind == "bankrecon" else 0
    if any(r.transaction_count != expected for r in results):
        raise SystemExit(f"fan-out ({kind}): not every statement was stored")
    return seconds, peak


# --- report -----------------------------------------------------------------------------------


def table(rows: Sequence[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], key: str, form: Callable[[Any], str]) -> str:
        return form(row[key]) if key in row else ""

    header = [
        "benchmark",
        "target",
        "lines",
        "seconds median (min-max)",
        "rows/s",
        "ratio",
        "peak RSS MB",
        "validation processes' MB",
    ]
    lines = [header]
    for row in rows:
        ratio = row.get("ratio_to_raw", row.get("ratio_to_noop"))
        lines.append(
            [
                row["benchmark"],
                row["target"],
                f"{row['lines']:,}",
                f"{row['seconds_median']:.2f} ({row['seconds_min']:.2f}-{row['seconds_max']:.2f})",
                f"{row['rows_per_second']:,.0f}",
                "" if ratio is None else f"{ratio:.2f}x",
                cell(row, "peak_rss_mb", lambda v: f"{v:.0f}"),
                cell(row, "validation_process_peak_rss_mb", lambda v: f"{v:.0f} each" if v else ""),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [
        " | ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)) for line in lines
    ]
    out.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(out)


async def run(args: argparse.Namespace) -> None:
    args.workdir.mkdir(parents=True, exist_ok=True)
    only = set(args.only or ["ingest", "memory", "fanout"])
    day = yesterday_in_china(datetime.now(UTC))
    pg = Postgres(args.postgres)
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    if "ingest" in only:
        rows += ingest(args, day, pg)
    if args.profile:
        extra["profile"] = str(profile(args, day, pg))
    if only & {"memory", "fanout"}:
        with ProcessGroup(args.workdir / "logs") as group:
            server = DevServer(group, args.workdir / f"temporal-{uuid.uuid4().hex[:8]}.db")
            server.start()
            if "memory" in only and args.memory_lines:
                rows += await memory(args, day, pg, group, server)
            if "fanout" in only and args.fanout_accounts:
                rows += await fanout(args, day, group, server)
    write_report(args.out, " ".join(["./bench/run", *sys.argv[1:]]), {"rows": rows, **extra}, table(rows))


def main() -> None:
    asyncio.run(run(_parser().parse_args()))


if __name__ == "__main__":
    main()
