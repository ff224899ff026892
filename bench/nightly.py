"""``python -m bench.nightly``: one night at scale (issue 12), started the way production starts it.

N accounts, each of its own merchant (its own secret and window), ready after a few refusals;
one Temporal dev server, the bank simulator, one PostgreSQL schema and the archives in it
(``ARCHIVE_STORE_URL=database``, no shared disk), and two ``worker.py`` processes with DATA_DIRs
of their own on one task queue. One ``NightlyStatementsWorkflow`` run plans the night in pages
and hands each page after the first to a follow-up run.

Timed: from the nightly start to the last statement stored (its ``persisted_at``). Verified,
or the run fails with the reason: every statement stored once with its exact row count, no
two requests of a merchant closer than its window (as the tests check it: no tolerance, and
no 1005), every workflow completed. Measured: each worker's idle and peak RSS and CPU time,
the calls each made to the server (the SDK's ``temporal_request``, and ``temporal_long_request``:
its long polls), the bank's requests, and the size of a sample of the statements' histories.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select
from temporalio.client import Client, WorkflowFailureError

from activities.statements import DECODING_AGAIN
from bankrecon.models import NightlyStatementsInput
from bankrecon.sources.refbank.simulator.server import BankSimulator, RequestRecord, StatementPlan
from bankrecon.store.db import make_engine, statements, transactions
from bankrecon.temporal.client import connect
from bench.children import cpu_seconds, settled_rss_mb, status_kb
from bench.harness import ROOT, TEST_POSTGRES, OneMerchantEach, Postgres, temporal_settings, write_report
from tests.processes import Child, DevServer, ProcessGroup, free_port, start_worker, worker_env
from workflows.daily_statement import statement_workflow_id, yesterday_in_china
from workflows.nightly_statements import NightlyStatementsWorkflow

SCHEMA = "bench_nightly"
# Bounds one bank request; a worker that died mid-request keeps its merchant's window this long.
REQUEST_TIMEOUT = 60
# Statements whose histories are read: spread over the night, first to last.
HISTORY_SAMPLE = 10
# The SDK core's counters as its /metrics names them (no _total): its calls, and its long polls apart.
REQUEST_METRIC = "temporal_request"
LONG_POLL_METRIC = "temporal_long_request"
# bankrecon's: a statement written to the database, not a retry that found it there already.
PERSISTED_METRIC = "bankrecon_statements_persisted"
PROGRESS_EVERY = 10.0
# With the dev server's SQLite on this machine's disk, each statement's start waited for its syncs:
# about half a second a statement (bench/README.md).
MIN_TIMEOUT = 600


def _parser() -> argparse.ArgumentParser:
    defaults = NightlyStatementsInput()
    parser = argparse.ArgumentParser(prog="python -m bench.nightly", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--accounts", type=int, default=10_000, help="accounts, one merchant each (default: 10000)"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker.py processes (default: 2)")
    parser.add_argument(
        "--window",
        type=float,
        default=1.0,
        help="each merchant's window in seconds, the bank's and the workers' alike; also the "
        "statements' retry interval (default: 1)",
    )
    parser.add_argument(
        "--refusals", type=int, default=2, help="requests the bank refuses before each statement (default: 2)"
    )
    parser.add_argument("--lines", type=int, default=100, help="lines of each statement (default: 100)")
    parser.add_argument(
        "--max-starts-per-run",
        type=int,
        default=defaults.max_starts_per_run,
        help=f"statements one nightly run starts (default: {defaults.max_starts_per_run}, production's)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds from the start until every statement must be stored (default: one per account, "
        f"at least {MIN_TIMEOUT})",
    )
    parser.add_argument(
        "--no-eager-activities",
        action="store_true",
        help="the dev server hands each activity to whichever worker polls (as a server with the "
        "default system.enableActivityEagerExecution does), not to the worker whose workflow task "
        "scheduled it (the dev server's own default)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the dev server's database and the hosts' DATA_DIRs after a successful run "
        "(a failed run always keeps them)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / "bench" / ".work",
        help="where each run's directory goes: logs, accounts file, server state (default: bench/.work; "
        "a directory on tmpfs such as /dev/shm/bankrecon-nightly spares the dev server's SQLite the "
        "disk's syncs, which limit it to some 2 statements a second)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "results-nightly.json",
        help="the figures as JSON (default: bench/results-nightly.json)",
    )
    parser.add_argument(
        "--postgres",
        default=TEST_POSTGRES,
        help=f"the server (default: BANKRECON_TEST_POSTGRES or the tests' own); schema {SCHEMA}, "
        "emptied first and left for a look",
    )
    return parser


@dataclass
class WorkerProcess:
    child: Child
    metrics_address: str
    idle_rss_mb: float = 0.0


# --- verification ------------------------------------------------------------------------------


def stored_problem(engine: Engine, accounts: Sequence[str], day: date, lines: int) -> str | None:
    """What keeps the database from holding each account's statement once with its ``lines`` rows."""
    with engine.connect() as conn:
        heads = conn.execute(
            select(statements.c.account_no, statements.c.bill_date, statements.c.transaction_count)
        ).all()
        row_counts = {
            (account, bill_date): rows
            for account, bill_date, rows in conn.execute(
                select(transactions.c.account_no, transactions.c.bill_date, func.count()).group_by(
                    transactions.c.account_no, transactions.c.bill_date
                )
            )
        }
    expected = {(account, day) for account in accounts}
    times = Counter((head.account_no, head.bill_date) for head in heads)
    checks = [
        ("stored more than once", [key for key, count in times.items() if count > 1]),
        ("never stored", sorted(expected - times.keys())),
        ("stored but not asked for", sorted((times.keys() | row_counts.keys()) - expected)),
        ("with a transaction_count other than the lines", [
            (h.account_no, h.bill_date) for h in heads if h.transaction_count != lines
        ]),
        ("with another number of rows", [key for key in expected if row_counts.get(key, 0) != lines]),
    ]  # fmt: skip
    for what, keys in checks:
        if keys:
            return f"{len(keys)} statements {what} (first: {keys[0]})"
    return None


def request_gaps(requests: Sequence[RequestRecord]) -> list[tuple[str, float]]:
    """The time between each two requests of a merchant that followed each other: merchant, seconds."""
    arrivals: defaultdict[str, list[float]] = defaultdict(list)
    for request in requests:
        arrivals[request.merchant_id].append(request.arrived_monotonic)
    return [
        (merchant, later - earlier)
        for merchant, times in arrivals.items()
        for earlier, later in pairwise(sorted(times))
    ]


def window_problem(
    gaps: Sequence[tuple[str, float]], requests: Sequence[RequestRecord], window: float
) -> str | None:
    early = [(merchant, gap) for merchant, gap in gaps if gap < window]
    if early:
        merchant, gap = min(early, key=lambda item: item[1])
        return (
            f"{len(early)} requests inside a merchant's {window} s window (closest {gap:.3f} s, {merchant})"
        )
    rushed = sum(1 for request in requests if request.code == "1005")
    if rushed:
        return f"the bank answered 1005 (too frequent) {rushed} times"
    return None


async def workflows_problem(client: Client, accounts: int) -> str | None:
    """What keeps the server from holding one completed statement run per account, and nothing failed."""
    statement_runs = await count(client, 'WorkflowType="DailyStatementWorkflow"')
    completed = await count(client, 'ExecutionStatus="Completed"')
    everything = await count(client, None)
    if completed != everything:
        return f"{everything - completed} of {everything} workflows did not complete"
    if statement_runs != accounts:
        return f"{statement_runs} statement runs for {accounts} accounts"
    return None


def persisted_problem(per_worker: Sequence[WorkerFigures], accounts: int) -> str | None:
    persisted = sum(worker.statements_persisted for worker in per_worker)
    if persisted != accounts:
        return f"the workers wrote {persisted:.0f} statements for {accounts} accounts"
    return None


# --- figures -----------------------------------------------------------------------------------


def metric_sums(exposition: str, name: str) -> tuple[float, dict[str, float]]:
    """A counter's total over its series in Prometheus text, and its totals by ``operation``."""
    total = 0.0
    by_operation: defaultdict[str, float] = defaultdict(float)
    for line in exposition.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        series, value = line.rsplit(" ", 1)
        metric, _, labels = series.partition("{")
        if metric != name:
            continue
        total += float(value)
        operation = next(
            (
                part.split("=", 1)[1].strip('"')
                for part in labels.rstrip("}").split(",")
                if part.startswith("operation=")
            ),
            "",
        )
        by_operation[operation] += float(value)
    return total, dict(sorted(by_operation.items(), key=lambda item: -item[1]))


async def scrape(address: str) -> str:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://{address}/metrics", timeout=30)
        answer.raise_for_status()
        return answer.text


@dataclass
class WorkerFigures:
    idle_rss_mb: float
    peak_rss_mb: float
    cpu_seconds: float
    statements_persisted: float
    # Persists that landed on the other host than their decode, which decoded again there.
    persists_that_decoded_again: int
    server_requests: float
    server_long_polls: float
    server_requests_by_operation: dict[str, float]
    server_long_polls_by_operation: dict[str, float]


async def worker_figures(worker: WorkerProcess) -> WorkerFigures:
    """The worker's figures so far; its metrics count from its start."""
    exposition = await scrape(worker.metrics_address)
    requests, requests_by_operation = metric_sums(exposition, REQUEST_METRIC)
    long_polls, long_polls_by_operation = metric_sums(exposition, LONG_POLL_METRIC)
    return WorkerFigures(
        idle_rss_mb=worker.idle_rss_mb,
        peak_rss_mb=status_kb(worker.child.pid, "VmHWM") / 1024,
        cpu_seconds=cpu_seconds(worker.child.pid),
        statements_persisted=metric_sums(exposition, PERSISTED_METRIC)[0],
        persists_that_decoded_again=worker.child.log.read_text().count(DECODING_AGAIN),
        server_requests=requests,
        server_long_polls=long_polls,
        server_requests_by_operation=requests_by_operation,
        server_long_polls_by_operation=long_polls_by_operation,
    )


async def count(client: Client, query: str | None) -> int:
    return (await client.count_workflows(query)).count


async def history_sizes(client: Client, workflow_ids: Sequence[str]) -> tuple[list[int], list[int]]:
    """The events and bytes of each workflow's history."""
    events, sizes = [], []
    for workflow_id in workflow_ids:
        info = (
            await client.get_workflow_handle(workflow_id).describe()
        ).raw_description.workflow_execution_info
        events.append(info.history_length)
        sizes.append(info.history_size_bytes)
    return events, sizes


# --- the night ---------------------------------------------------------------------------------


def _fail(reason: str) -> SystemExit:
    return SystemExit(f"bench.nightly: {reason}")


def start_workers(
    args: argparse.Namespace,
    group: ProcessGroup,
    server: DevServer,
    bank: BankSimulator,
    accounts_file: Path,
    url: str,
    task_queue: str,
) -> list[WorkerProcess]:
    workers = []
    # One at a time: the first brings the schema up to date before the second looks at it.
    for host in range(args.workers):
        address = f"127.0.0.1:{free_port()}"
        env = worker_env(
            temporal_address=server.address,
            task_queue=task_queue,
            data_dir=accounts_file.parent / f"host-{host}" / "data",
            database_url=url,
            bank_url=bank.url,
            min_interval=args.window,
            request_timeout=REQUEST_TIMEOUT,
        ) | {
            "BANK_ACCOUNTS_FILE": str(accounts_file),
            "ARCHIVE_STORE_URL": "database",
            "METRICS_ADDRESS": address,
        }
        workers.append(WorkerProcess(start_worker(group, env), address))
    return workers


async def wait_until_stored(
    engine: Engine,
    expected: int,
    workers: Sequence[WorkerProcess],
    started: float,
    timeout: float,
    logs: Path,
) -> None:
    next_progress = started + PROGRESS_EVERY
    while True:
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(statements)).scalar_one()
        now = time.time()
        if stored >= expected:
            return
        for worker in workers:
            if not worker.child.alive():
                raise _fail(f"a worker exited with {worker.child.proc.returncode} (log: {worker.child.log})")
        if now - started > timeout:
            raise _fail(f"{stored} of {expected} statements stored after {timeout:.0f} s (logs: {logs})")
        if now >= next_progress:
            print(f"nightly: {stored:,} of {expected:,} stored after {now - started:.0f} s", file=sys.stderr)
            next_progress = now + PROGRESS_EVERY
        await asyncio.sleep(1)


async def wait_until_closed(client: Client, timeout: float) -> None:
    """Until the server lists no running workflow: every statement's run has closed after its persist."""
    deadline = time.monotonic() + timeout
    while (running := await count(client, 'ExecutionStatus="Running"')) > 0:
        if time.monotonic() > deadline:
            raise _fail(
                f"{running} workflows still running {timeout:.0f} s after the last statement was stored"
            )
        await asyncio.sleep(1)


async def night(args: argparse.Namespace) -> dict[str, Any]:
    day = yesterday_in_china(datetime.now(UTC))
    fleet = OneMerchantEach.of(args.accounts)
    pg = Postgres(args.postgres, schema=SCHEMA)
    pg.reset()
    engine = make_engine(pg.url)
    home = args.workdir / f"nightly-{uuid.uuid4().hex[:8]}"
    task_queue = f"bench-nightly-{uuid.uuid4().hex[:8]}"
    plan = StatementPlan(ready_after=args.refusals, lines=args.lines)
    cpu_before = time.process_time()
    with (
        ProcessGroup(home / "logs") as group,
        BankSimulator(
            merchants=fleet.secrets,
            accounts=fleet.bank_accounts(),
            min_interval=args.window,
            default_plan=plan,
        ) as bank,
    ):
        eager = {"system.enableActivityEagerExecution": "false"} if args.no_eager_activities else {}
        server = DevServer(group, home / "temporal.db", dynamic_config=eager)
        server.start()
        assert server.child is not None
        accounts_file = fleet.write_accounts_file(home / "accounts.toml", args.window)
        workers = start_workers(args, group, server, bank, accounts_file, pg.url, task_queue)
        for worker in workers:
            worker.idle_rss_mb = await settled_rss_mb(worker.child.pid)
        client = await connect(temporal_settings(server.address))
        print(
            f"nightly: {args.accounts:,} accounts, {args.workers} workers, logs in {group.logs}",
            file=sys.stderr,
        )
        nightly_id = f"bench-nightly-{day}"
        started = time.time()
        try:
            await client.execute_workflow(
                NightlyStatementsWorkflow.run,
                NightlyStatementsInput(
                    bill_date=day,
                    catch_up_days=0,
                    retry_interval_seconds=args.window,
                    max_starts_per_run=args.max_starts_per_run,
                ),
                id=nightly_id,
                task_queue=task_queue,
            )
        except WorkflowFailureError as exc:
            raise _fail(f"the nightly run failed: {exc.cause} (logs: {group.logs})") from None
        timeout = args.timeout or max(MIN_TIMEOUT, args.accounts)
        await wait_until_stored(engine, args.accounts, workers, started, timeout, group.logs)
        await wait_until_closed(client, timeout=120)

        with engine.connect() as conn:
            last_stored = conn.execute(select(func.max(statements.c.persisted_at))).scalar_one()
        unfinished = await workflows_problem(client, args.accounts)
        if unfinished is not None:
            raise _fail(f"{unfinished} (logs: {group.logs})")
        nightly_runs = [
            run async for run in client.list_workflows('WorkflowType="NightlyStatementsWorkflow"')
        ]
        all_started = max(run.close_time for run in nightly_runs if run.close_time is not None)
        sample = fleet.accounts[:: max(1, len(fleet.accounts) // HISTORY_SAMPLE)][:HISTORY_SAMPLE]
        events, sizes = await history_sizes(client, [statement_workflow_id(a, day) for a in sample])
        (nightly_events,), (nightly_bytes,) = await history_sizes(client, [nightly_id])

        per_worker = [await worker_figures(worker) for worker in workers]
        dev_server = {
            "peak_rss_mb": status_kb(server.child.pid, "VmHWM") / 1024,
            "cpu_seconds": cpu_seconds(server.child.pid),
        }
        for worker in workers:
            worker.child.terminate()
        requests_at_bank = bank.requests
    not_stored_right = stored_problem(engine, fleet.accounts, day, args.lines)
    engine.dispose()
    gaps = request_gaps(requests_at_bank)
    for problem in (
        not_stored_right,
        persisted_problem(per_worker, args.accounts),
        window_problem(gaps, requests_at_bank, args.window),
    ):
        if problem is not None:
            raise _fail(problem)
    if not args.keep:
        # The server's state and the hosts' files grow with N; a successful night's logs are enough.
        (home / "temporal.db").unlink()
        for data_dir in home.glob("host-*"):
            shutil.rmtree(data_dir)

    seconds = last_stored.timestamp() - started
    requests = sum(worker.server_requests for worker in per_worker)
    long_polls = sum(worker.server_long_polls for worker in per_worker)
    return {
        "accounts": args.accounts,
        "workers": args.workers,
        "eager_activities": not args.no_eager_activities,
        "window_seconds": args.window,
        "refusals_before_ready": args.refusals,
        "lines_per_statement": args.lines,
        "max_starts_per_run": args.max_starts_per_run,
        "nightly_runs": len(nightly_runs),
        "seconds_to_all_started": all_started.timestamp() - started,
        "seconds_to_all_stored": seconds,
        "statements_per_second": args.accounts / seconds,
        "server_requests": requests,
        "server_requests_per_statement": requests / args.accounts,
        "server_long_polls": long_polls,
        "bank_requests": len(requests_at_bank),
        "bank_requests_per_statement": len(requests_at_bank) / args.accounts,
        "bank_requests_by_code": dict(Counter(r.code for r in requests_at_bank).most_common()),
        "requests_inside_a_window": 0,
        "closest_request_gap_seconds": min((gap for _, gap in gaps), default=None),
        "statement_history_events_median": statistics.median(events),
        "statement_history_events_max": max(events),
        "statement_history_bytes_max": max(sizes),
        "first_nightly_run_history_events": nightly_events,
        "first_nightly_run_history_bytes": nightly_bytes,
        "per_worker": [asdict(worker) for worker in per_worker],
        "dev_server": dev_server,
        "bench_process_cpu_seconds": time.process_time() - cpu_before,
    }


def table(figures: dict[str, Any]) -> str:
    def each_worker(key: str, form: str) -> str:
        return " / ".join(format(worker[key], form) for worker in figures["per_worker"])

    f = figures
    server = f["dev_server"]
    rows = [
        ("accounts (one merchant each), workers", f"{f['accounts']:,}, {f['workers']}"),
        ("eager activity dispatch", "on" if f["eager_activities"] else "off"),
        ("nightly runs (pages)", f"{f['nightly_runs']}"),
        ("time to all started", f"{f['seconds_to_all_started']:.1f} s"),
        ("time to all stored", f"{f['seconds_to_all_stored']:.1f} s"),
        ("statements per second", f"{f['statements_per_second']:.1f}"),
        ("worker idle RSS MB", each_worker("idle_rss_mb", ".0f")),
        ("worker peak RSS MB", each_worker("peak_rss_mb", ".0f")),
        ("worker CPU s", each_worker("cpu_seconds", ".1f")),
        ("statements each worker persisted", each_worker("statements_persisted", ",.0f")),
        ("persists that decoded again", each_worker("persists_that_decoded_again", ",")),
        ("dev server peak RSS MB, CPU s", f"{server['peak_rss_mb']:.0f}, {server['cpu_seconds']:.1f}"),
        ("server calls (per statement)",
         f"{f['server_requests']:,.0f} ({f['server_requests_per_statement']:.1f})"),
        ("server long polls", f"{f['server_long_polls']:,.0f}"),
        ("bank requests (per statement)", f"{f['bank_requests']:,} ({f['bank_requests_per_statement']:.2f})"),
        ("requests inside a window (closest gap)",
         f"{f['requests_inside_a_window']} ({f['closest_request_gap_seconds']:.3f} s)"),
        ("statement history events (median, max)",
         f"{f['statement_history_events_median']:.0f}, {f['statement_history_events_max']}"),
        ("first nightly run's history events", f"{f['first_nightly_run_history_events']:,}"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


async def run(args: argparse.Namespace) -> None:
    args.workdir.mkdir(parents=True, exist_ok=True)
    figures = await night(args)
    write_report(args.out, " ".join(["python -m bench.nightly", *sys.argv[1:]]), figures, table(figures))


def main() -> None:
    asyncio.run(run(_parser().parse_args()))


if __name__ == "__main__":
    main()
