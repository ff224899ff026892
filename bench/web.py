"""``python -m bench.web``: the web page's Today and open items pages on PostgreSQL, against its reads.

Seeded in a schema of its own: N accounts x 7 days of stored statements, each day reconciled
(one run), and M open exceptions spread over those runs. Timed over real HTTP (uvicorn in a
thread, a logged-in client): ``GET /`` (every account by the last 7 days) and ``GET /open`` (the
first page of 100 of all M open exceptions). Yardstick, in the same run on the same data: the
page's reads alone, called in the process (``configured_accounts`` and ``today_grid``;
``open_items``), i.e. the SQL and its rows without the HTTP, the session and the template.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from psycopg import sql
from sqlalchemy import text

from bankrecon.config import Settings
from bankrecon.store.db import make_engine
from bankrecon.store.schema import prepare_schema
from bankrecon.web.app import configured_accounts, create_app
from bankrecon.web.queries import grid_days, open_items, today_grid
from bankrecon.web.users import Role, add_user
from tests.conftest import POSTGRES_URL
from tests.web_setup import csrf_of, free_port, today

SCHEMA = "bench_web"
FIRST_ACCOUNT = 6222000000000000
SEED_SQL = """
INSERT INTO statements (account_no, bill_date, bank_code, currency, credit_count, debit_count, credit_total,
                        debit_total, transaction_count, fetched_at, persisted_at, source_kind)
SELECT (:first + a)::text, :last - d, '0000', 'CNY', 10, 10, 1000.00, 900.00, 20, now(), now(), 'refbank'
FROM generate_series(1, :accounts) AS a, generate_series(0, 6) AS d;
INSERT INTO recon_runs (run_id, workflow_id, account_no, recon_date, started_at, finished_at, ledger_sha256,
                        statement_sha256, ledger_lines, channel_lines, settings_json)
SELECT 'run-' || a || '-' || d, 'recon-' || a || '-' || d, (:first + a)::text, :last - d, now(), now(),
       repeat('0', 64), repeat('0', 64), 20, 20, '{}'
FROM generate_series(1, :accounts) AS a, generate_series(0, 6) AS d;
INSERT INTO recon_items (run_id, account_no, recon_date, state, side, reference, direction, amount,
                         occurred_at, line_ref, booked_on)
SELECT 'run-' || (1 + i % :accounts) || '-' || (i / :accounts) % 7, (:first + 1 + i % :accounts)::text,
       :last - (i / :accounts) % 7, 'ledger_only', 'ledger', 'O-' || i, 'C', (10 + i % 5000)::numeric(20, 2),
       now(), i::text, :last - (i / :accounts) % 7
FROM generate_series(0, :open_items - 1) AS i;
ANALYZE statements; ANALYZE recon_runs; ANALYZE recon_items;
"""


def _median_ms(run: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    run()  # warm: connections, caches, templates
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000, min(seconds) * 1000, max(seconds) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=1000, help="accounts (default: %(default)s)")
    parser.add_argument(
        "--open-items", type=int, default=100_000, help="open exceptions (default: %(default)s)"
    )
    parser.add_argument(
        "--repeat", type=int, default=20, help="timed requests of each (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{SCHEMA}"
    engine = make_engine(url)
    prepare_schema(engine)
    last = today() - timedelta(days=1)
    with engine.begin() as seeding:
        for statement in SEED_SQL.split(";"):
            if statement.strip():
                seeding.execute(
                    text(statement),
                    {
                        "first": FIRST_ACCOUNT,
                        "last": last,
                        "accounts": args.accounts,
                        "open_items": args.open_items,
                    },
                )
    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    accounts = [str(FIRST_ACCOUNT + a) for a in range(1, args.accounts + 1)]
    settings = Settings(
        _env_file=None,
        data_dir=work,
        database_url=url,
        web_users_file=work / "users.toml",
        bank_accounts=accounts,
    )
    add_user(work / "users.toml", "bench", "bench-password-1", Role.viewer)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    results: list[dict[str, Any]] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            token = csrf_of(client.get("/login"))
            client.post("/login", data={"csrf": token, "name": "bench", "password": "bench-password-1"})
            days = grid_days(today())
            first = last - timedelta(days=6)

            def today_reads() -> object:
                return today_grid(engine, configured_accounts(settings, engine, days), days)

            def open_reads() -> object:
                return open_items(engine, first, last, None, today(), "date")

            def page(path: str) -> Callable[[], object]:
                def get() -> object:
                    answer = client.get(path)
                    assert answer.status_code == 200, answer.status_code
                    return answer

                return get

            open_path = f"/open?from={first}&to={last}"
            for name, size, reads, served in (
                ("today", f"{args.accounts} accounts x 7 days", today_reads, page("/")),
                ("open items", f"{args.open_items} exceptions, page 1 of 100", open_reads, page(open_path)),
            ):
                reads_ms, page_ms = _median_ms(reads, args.repeat), _median_ms(served, args.repeat)
                results.append(
                    {
                        "page": name,
                        "size": size,
                        "reads_ms_median": round(reads_ms[0], 1),
                        "page_ms_median": round(page_ms[0], 1),
                        "page_ms_min_max": [round(page_ms[1], 1), round(page_ms[2], 1)],
                        "ratio": round(page_ms[0] / reads_ms[0], 2),
                    }
                )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
    print("| page | size | reads alone, ms (median) | page over HTTP, ms (median; min-max) | ratio |")
    print("|---|---|---|---|---|")
    for r in results:
        low, high = r["page_ms_min_max"]
        figures = f"{r['reads_ms_median']} | {r['page_ms_median']} ({low}-{high}) | {r['ratio']}x"
        print(f"| {r['page']} | {r['size']} | {figures} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
