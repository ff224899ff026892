"""The whole system on one machine, for a first look: ``./scripts/demo``.

Starts the Temporal dev server (SQLite-backed, with its Web UI), a simulator of each
statement source (the reference bank, WeChat Pay), and the worker; then starts one
DailyStatementWorkflow for yesterday with the ``temporal`` CLI, and one for the WeChat Pay
trade bill beside it. Each simulator refuses a few times before its statement is ready and
the interval is a few seconds, so the whole story plays out in under a minute: the
refusals, the success, then the rows in the SQLite database.

At the end the finance team's web page (``bankrecon web``) serves the demo's days, with a
demo user (an operator) whose password is made once in the data dir and printed.

With ``--encrypt`` every payload in Temporal's history is encrypted: a key and a codec
server token are made once in the data dir, the codec server runs beside the dev
server, and the Web UI decodes through it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from bankrecon.bankrec.demo import MONTH_END, STATEMENT_DAYS, plant_month
from bankrecon.config import Settings
from bankrecon.models import DailyStatementInput, DailyStatementResult, StatementKey
from bankrecon.ops.bankrec_commands import start_bank_reconciliation
from bankrecon.ops.binaries import find_binary
from bankrecon.ops.demo_sources import (
    REFBANK_ACCOUNT,
    DemoSource,
    alipay_source,
    refbank_source,
    sftp_source,
    unionpay_source,
    wechatpay_source,
)
from bankrecon.ops.recon_commands import run_stored, start_reconciliation
from bankrecon.recon.demo import DEMO_CHANNEL, plant_demo
from bankrecon.statements.common import CHINA_STANDARD_TIME
from bankrecon.store.db import database_location, make_engine
from bankrecon.store.persistence import load_statement
from bankrecon.store.schema import upgrade_schema
from bankrecon.temporal.client import connect
from bankrecon.temporal.codec import new_key
from bankrecon.temporal.search_attributes import dev_server_flags
from bankrecon.web.users import Role, add_user
from workflows.daily_statement import (
    DailyStatementWorkflow,
    statement_workflow_id,
    yesterday_in_china,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO_ACCOUNT = REFBANK_ACCOUNT
DEMO_WEB_USER = "demo"


def _say(text: str) -> None:
    print(text, flush=True)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) != 0


def _wait_for_port(host: str, port: int, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _port_free(host, port):
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start listening on {host}:{port}; see {log}")
        time.sleep(0.2)


class Services:
    """Child processes with their output in DATA_DIR/logs, stopped together on exit."""

    def __init__(self, stack: ExitStack, logs: Path, env: dict[str, str]):
        self._stack = stack
        self._logs = logs
        self._env = env
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str]) -> Path:
        log = self._logs / f"{name}.log"
        out = self._stack.enter_context(log.open("ab"))
        proc = subprocess.Popen(
            args, cwd=ROOT, env=self._env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._stack.callback(_stop, proc)
        return log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _write_owner_only(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file there already keeps its old mode through O_CREAT
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


def write_demo_env(path: Path, settings: dict[str, str]) -> None:
    """The demo's settings for `bankrecon` and `temporal` commands in another shell.

    Sourced there with ``set -a; . data/demo.env; set +a``, it also puts the commands installed
    beside this Python (the venv's ``bin``: bankrecon, temporal) first on that shell's PATH.
    Owner-only: it may hold the codec token and a database password.
    """
    commands = Path(sys.executable).parent.absolute()
    lines = [f"{name}={shlex.quote(value)}\n" for name, value in settings.items()]
    # "$PATH" unquoted by shlex: the shell that sources the file expands it.
    lines.append(f'PATH={shlex.quote(str(commands))}:"$PATH"\n')
    _write_owner_only(path, "".join(lines))


def _secret_file(path: Path, make: str) -> str:
    """The content of ``path``, written (readable by its owner only) with ``make`` when missing."""
    if not path.exists():
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(make + "\n")
    return path.read_text().strip()


class Encryption:
    """The demo's key file and codec server token in the data dir, made on first use."""

    def __init__(self, data_dir: Path, codec_port: int, ui: str):
        self.keys_file = data_dir / "encryption-keys"
        _secret_file(self.keys_file, f"demo-{datetime.now(UTC):%Y%m%d}:{new_key()}")
        self.token_file = data_dir / "codec-token"
        self.token = _secret_file(self.token_file, secrets.token_urlsafe(32))
        self.codec_port = codec_port
        self.codec_url = f"http://127.0.0.1:{codec_port}"
        self.env = {
            "BANKRECON_ENCRYPTION_KEYS_FILE": str(self.keys_file),
            "CODEC_SERVER_TOKEN": self.token,
            "CODEC_SERVER_HOST": "127.0.0.1",
            "CODEC_SERVER_PORT": str(codec_port),
            "CODEC_SERVER_CORS_ORIGINS": f"{ui},{ui.replace('127.0.0.1', 'localhost')}",
        }

    @property
    def ui_endpoint(self) -> str:
        # The Web UI sends no Authorization header without an OIDC login: the token goes in the path.
        return f"{self.codec_url}/{self.token}"

    @property
    def cli_env(self) -> dict[str, str]:
        """What the ``temporal`` CLI reads for ``--codec-endpoint`` and ``--codec-auth``."""
        return {"TEMPORAL_CODEC_ENDPOINT": self.codec_url, "TEMPORAL_CODEC_AUTH": f"Bearer {self.token}"}

    @property
    def cli_options(self) -> str:
        """The same as options of a command to copy into a shell, which reads the token from its file."""
        return (
            f"--codec-endpoint {self.codec_url} "
            f'--codec-auth "Bearer $(cat {shlex.quote(str(self.token_file))})"'
        )


async def _watch(
    handle: WorkflowHandle[DailyStatementWorkflow, DailyStatementResult], source: DemoSource
) -> None:
    """Print each request the source received and what Temporal plans next, until the workflow closes."""
    if source.describe is None:  # no request log to show: its workflow's end is the news
        await handle.result()
        return
    seen = 0
    async with httpx.AsyncClient(base_url=source.url) as simulator:
        while True:
            description = await handle.describe()
            log = (await simulator.get("/_sim/requests")).json()
            for record in log[seen:]:
                seen += 1
                said = source.describe(record)
                if said is not None:
                    arrived = datetime.fromtimestamp(record["arrived_at"]).strftime("%H:%M:%S")
                    _say(f"  {arrived} {source.label} request {seen}: {said}")
            if description.status != WorkflowExecutionStatus.RUNNING:
                return
            await asyncio.sleep(0.2)


def _show_rows(database_url: str, key: StatementKey) -> None:
    engine = make_engine(database_url)
    stmt, rows = load_statement(engine, key)
    engine.dispose()
    if stmt is None:
        raise SystemExit(
            f"the workflow completed but {database_location(database_url)} holds no statement for {key}"
        )
    balances = (
        f"opening {stmt.opening_balance} closing {stmt.closing_balance}, "
        if stmt.opening_balance is not None
        else ""
    )
    fees = f", fees {stmt.fee_total}" if stmt.fee_total is not None else ""
    _say(
        f"\nstatements: {stmt.account_no} {stmt.bill_date} {stmt.source_kind} {stmt.currency} {balances}"
        f"{stmt.credit_count} credits ({stmt.credit_total}), "
        f"{stmt.debit_count} debits ({stmt.debit_total}){fees}"
    )
    _say(f"transactions ({len(rows)} rows, first 5):")
    for row in rows[:5]:
        traded_at = row.traded_at.astimezone(CHINA_STANDARD_TIME)
        after = (
            f"balance {row.balance_after:>14}"
            if row.balance_after is not None
            else f"fee {row.fee}"
            if row.fee is not None
            else ""
        )
        _say(
            f"  {row.serial_no}  {traded_at:%Y-%m-%d %H:%M:%S}  {row.direction} {row.amount:>14}  {after}  "
            f"{row.reference or row.counterparty_name or ''} {row.memo or ''}".rstrip()
        )


def _write_accounts_file(data_dir: Path, sources: list[DemoSource]) -> Path:
    path = data_dir / "accounts.toml"
    header = "# The demo's merchants and accounts (BANK_ACCOUNTS_FILE), one per statement source.\n"
    _write_owner_only(path, header + "".join(source.accounts_entries for source in sources))
    return path


async def _collect_beside(
    client: Client, source: DemoSource, bill_date: date, interval: float, database_url: str
) -> None:
    """The same workflow for another source's statement of the same day."""
    workflow_id = statement_workflow_id(source.account_no, bill_date)
    handle = await client.start_workflow(
        DailyStatementWorkflow.run,
        DailyStatementInput(
            account_no=source.account_no, bill_date=bill_date, retry_interval_seconds=interval
        ),
        id=workflow_id,
        task_queue="bank-statements",
    )
    _say(f"\nstarted {workflow_id}, the same workflow for the {source.label} statement of the same day")
    await _watch(handle, source)
    result = await handle.result()
    _say(
        f"workflow result: {result.transaction_count} rows after {result.fetch_attempts} requests "
        f"({result.bank_code})"
    )
    _show_rows(database_url, StatementKey(account_no=source.account_no, bill_date=bill_date))


async def _reconcile_demo(
    client: Client, env: dict[str, str], data_dir: Path, database_url: str, bill_date: date, interval: float
) -> None:
    """A WeChat-Pay-like channel day with every kind of exception, reconciled against a planted ledger."""
    engine = make_engine(database_url)
    config = plant_demo(engine, data_dir, bill_date, DEMO_ACCOUNT)
    engine.dispose()
    _say(f"\nplanted channel {DEMO_CHANNEL} for {bill_date} and its ledger ({config}); reconciling it")
    settings = Settings(_env_file=None, statement_retry_interval_seconds=interval)
    handle = await start_reconciliation(client, settings, DEMO_CHANNEL, bill_date)
    # Its settlement waits for the bank statement of today, collected tomorrow night.
    engine = make_engine(database_url)
    try:
        await run_stored(handle, engine)
    finally:
        engine.dispose()
    shown = subprocess.run(
        [sys.executable, "-m", "bankrecon.ops.cli", "recon", DEMO_CHANNEL, bill_date.isoformat()],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    _say(f"$ bankrecon recon {DEMO_CHANNEL} {bill_date}\n{shown.stdout.strip() or shown.stderr.strip()}")


def _serve_web(services: Services, data_dir: Path, port: int) -> None:
    """The finance team's page on the demo's database, with the demo user (an operator)."""
    password = _secret_file(data_dir / "web-demo-password", secrets.token_urlsafe(12))
    add_user(data_dir / "web-users.toml", DEMO_WEB_USER, password, Role.operator)
    log = services.start("web", [sys.executable, "-m", "bankrecon.ops.cli", "web", "--port", str(port)])
    _wait_for_port("127.0.0.1", port, "the web page", log)
    _say(f"\nweb page: http://127.0.0.1:{port}/ (log in as {DEMO_WEB_USER}, password {password})")


async def _bank_reconcile_demo(
    client: Client, env: dict[str, str], data_dir: Path, database_url: str
) -> None:
    """The demo bank account's planted November against a planted cash book: every rule, every kind
    of 未达账项, items resolved across days, and the month end's 余额调节表, which balances."""
    engine = make_engine(database_url)
    bank_config = plant_month(engine, data_dir, DEMO_ACCOUNT, config_name="recon-bank.toml")
    engine.dispose()
    recon_file = data_dir / "recon.toml"
    both = recon_file.read_text(encoding="utf-8") + "\n" + bank_config.read_text(encoding="utf-8")
    recon_file.write_text(both, encoding="utf-8")
    _say(f"\nplanted {DEMO_ACCOUNT}'s statements of {', '.join(map(str, STATEMENT_DAYS))} and its cash book")
    settings = Settings(_env_file=None, recon_config_file=recon_file)
    for day in STATEMENT_DAYS:
        summary = await (await start_bank_reconciliation(client, settings, DEMO_ACCOUNT, day)).result()
        _say(
            f"bank reconciliation of {day}: matches per rule {summary.rules}, difference {summary.difference}"
        )
    month = f"{MONTH_END:%Y-%m}"
    shown = subprocess.run(
        [sys.executable, "-m", "bankrecon.ops.cli", "recon", "balance", DEMO_ACCOUNT, "--month", month],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    _say(f"$ bankrecon recon balance {DEMO_ACCOUNT} --month {month}\n"
         f"{shown.stdout.strip() or shown.stderr.strip()}")  # fmt: skip


async def run(args: argparse.Namespace) -> int:
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    temporal_address = f"127.0.0.1:{args.temporal_port}"
    bank = refbank_source(args.bank_port, args.interval, args.ready_after)
    wechatpay = wechatpay_source(args.wechatpay_port, data_dir, args.ready_after)
    bill_date = yesterday_in_china(datetime.now(UTC))
    alipay = alipay_source(args.alipay_port, data_dir, args.ready_after)
    unionpay = unionpay_source(args.unionpay_port, data_dir, args.ready_after)
    sftp = sftp_source(args.sftp_port, data_dir, args.ready_after, bill_date)
    beside = [wechatpay, alipay, unionpay, sftp]
    database_url = args.database_url or f"sqlite:///{data_dir / 'bankrecon.db'}"
    ui = f"http://127.0.0.1:{args.ui_port}"
    encryption = Encryption(data_dir, args.codec_port, ui) if args.encrypt else None
    for port, what in (
        (args.temporal_port, "Temporal"),
        (args.ui_port, "Temporal Web UI"),
        (args.bank_port, "the bank simulator"),
        (args.wechatpay_port, "the WeChat Pay simulator"),
        (args.alipay_port, "the Alipay simulator"),
        (args.unionpay_port, "the UnionPay simulator"),
        (args.sftp_port, "the SFTP server"),
        (args.web_port, "the web page"),
        *([(args.codec_port, "the codec server")] if encryption else []),
    ):
        if not _port_free("127.0.0.1", port):
            raise SystemExit(f"port {port} for {what} is in use: stop what runs there or pick another port")
    env = {
        "TEMPORAL_ADDRESS": temporal_address,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        # Each source's merchant and account, as the simulators know them.
        "BANK_ACCOUNTS_FILE": str(_write_accounts_file(data_dir, [bank, *beside])),
        "BANK_MIN_INTERVAL_SECONDS": str(args.interval),
        "STATEMENT_RETRY_INTERVAL_SECONDS": str(args.interval),
        # Written once the statement is stored (_reconcile_demo); the worker reads it at each run.
        "RECON_CONFIG_FILE": str(data_dir / "recon.toml"),
        "WEB_USERS_FILE": str(data_dir / "web-users.toml"),
    }
    for source in beside:
        env |= source.env
    if encryption:
        env["BANKRECON_ENCRYPTION_KEYS_FILE"] = str(encryption.keys_file)
    demo_env = env | (encryption.cli_env if encryption else {})
    write_demo_env(data_dir / "demo.env", demo_env)
    env = os.environ | env | (encryption.env if encryption else {}) | {"PYTHONUNBUFFERED": "1"}
    # A demo database kept from an earlier release is brought up to date: the worker refuses an old one.
    engine = make_engine(database_url)
    try:
        _say(f"database {database_location(database_url)}: {upgrade_schema(engine)}")
    finally:
        engine.dispose()
    temporal = find_binary("temporal")
    workflow_id = statement_workflow_id(DEMO_ACCOUNT, bill_date)
    codec_options = f" {encryption.cli_options}" if encryption else ""
    with ExitStack() as stack:
        services = Services(stack, data_dir / "logs", env)
        if encryption:
            log = services.start("codec-server", [sys.executable, "-m", "bankrecon.temporal.codec_server"])
            _wait_for_port("127.0.0.1", encryption.codec_port, "the codec server", log)
            _say(
                f"payloads encrypted with the key in {encryption.keys_file}; codec server on "
                f"{encryption.codec_url}, its token in {encryption.token_file}"
            )
        log = services.start(
            "temporal",
            [
                temporal, "server", "start-dev", "--db-filename", str(data_dir / "temporal.db"),
                "--ip", "127.0.0.1", "--port", str(args.temporal_port), "--ui-port", str(args.ui_port),
                "--log-level", "warn", *dev_server_flags(),
                *(["--ui-codec-endpoint", encryption.ui_endpoint] if encryption else []),
            ],
        )  # fmt: skip
        _wait_for_port("127.0.0.1", args.temporal_port, "the Temporal dev server", log)
        _say(f"Temporal dev server on {temporal_address}, data in {data_dir / 'temporal.db'}")
        _say(f"Web UI: {ui}")
        named = (
            ("simulator", bank),
            ("wechatpay", wechatpay),
            ("alipay", alipay),
            ("unionpay", unionpay),
            ("sftp", sftp),
        )
        for name, source in named:
            log = services.start(name, source.simulator)
            _wait_for_port("127.0.0.1", source.port, f"the {source.label} simulator", log)
            _say(f"{source.label} simulator on {source.url}: not ready for {args.ready_after} requests")
        services.start("worker", [sys.executable, "worker.py"])
        _say(f"worker started (log: {data_dir / 'logs' / 'worker.log'})\n")
        client = await connect(
            Settings(
                temporal_address=temporal_address,
                bankrecon_encryption_keys_file=encryption.keys_file if encryption else None,
            )
        )
        workflow_input = json.dumps(
            {
                "account_no": DEMO_ACCOUNT,
                "bill_date": bill_date.isoformat(),
                "retry_interval_seconds": args.interval,
            }
        )
        start = [
            "temporal", "workflow", "start", "--type", "DailyStatementWorkflow",
            "--task-queue", "bank-statements", "--workflow-id", workflow_id,
            "--input", workflow_input, "--address", temporal_address,
        ]  # fmt: skip
        _say("$ " + shlex.join(start) + codec_options)
        # With the codec endpoint the CLI encrypts the input through the codec server. Run
        # here, the command gets the codec options from its environment, as with demo.env.
        subprocess.run([temporal, *start[1:]], check=True, env=env | demo_env, stdout=subprocess.DEVNULL)
        _say(f"started {workflow_id}; watch it at {ui}/namespaces/default/workflows/{workflow_id}")
        handle = client.get_workflow_handle_for(DailyStatementWorkflow.run, workflow_id)
        await _watch(handle, bank)
        result = await handle.result()
        _say(f"\nworkflow result: {result.model_dump_json(indent=2)}")
        _show_rows(database_url, StatementKey(account_no=DEMO_ACCOUNT, bill_date=bill_date))
        for source in beside:
            await _collect_beside(client, source, bill_date, args.interval, database_url)
        await _reconcile_demo(client, env, data_dir, database_url, bill_date, args.interval)
        _serve_web(services, data_dir, args.web_port)
        await _bank_reconcile_demo(client, env, data_dir, database_url)
        _say(f"\ndatabase: {database_location(database_url)} (in SQLite, money is in integer cents)")
        _say(
            f"try: {temporal} workflow describe --workflow-id {workflow_id} --address {temporal_address}"
            + codec_options
        )
        scheduled = subprocess.run(
            [sys.executable, "-m", "bankrecon.ops.cli", "schedule"], env=env, capture_output=True, text=True
        )
        _say(f"\n$ bankrecon schedule\n{scheduled.stdout.strip() or scheduled.stderr.strip()}")
        _say(f"bankrecon and temporal commands in another shell: set -a; . {data_dir / 'demo.env'}; set +a")
        if encryption:
            _say(
                f"decoded history: {temporal} workflow show --workflow-id {workflow_id} "
                f"--address {temporal_address}{codec_options}"
            )
        if args.exit_when_done:
            return 0
        _say(f"\nEverything keeps running for the Web UI ({ui}); Ctrl-C stops it all.")
        await asyncio.Event().wait()
    return 0


async def run_until_stopped(args: argparse.Namespace) -> int:
    """Ctrl-C or SIGTERM at any moment stops the demo, and leaving ``run`` stops every child."""
    demo = asyncio.current_task()
    assert demo is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, demo.cancel)
    try:
        return await run(args)
    except asyncio.CancelledError:
        _say("\nstopped")
        return 130


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        help="state, logs and demo.env of the demo (default: ./%(default)s)",
    )
    parser.add_argument(
        "--database-url", help="bankrecon's database (default: SQLite file bankrecon.db in the data dir)"
    )
    parser.add_argument(
        "--temporal-port", type=int, default=7233, help="Temporal dev server port (default: %(default)s)"
    )
    parser.add_argument(
        "--ui-port", type=int, default=8233, help="Temporal Web UI port (default: %(default)s)"
    )
    parser.add_argument(
        "--bank-port", type=int, default=8600, help="bank simulator port (default: %(default)s)"
    )
    parser.add_argument(
        "--wechatpay-port", type=int, default=8610, help="WeChat Pay simulator port (default: %(default)s)"
    )
    parser.add_argument(
        "--unionpay-port", type=int, default=8630, help="UnionPay simulator port (default: %(default)s)"
    )
    parser.add_argument(
        "--alipay-port", type=int, default=8620, help="Alipay simulator port (default: %(default)s)"
    )
    parser.add_argument("--sftp-port", type=int, default=2222, help="SFTP server port (default: %(default)s)")
    parser.add_argument(
        "--interval",
        type=float,
        default=3.0,
        help="bank window and retry interval, seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--ready-after",
        type=int,
        default=3,
        help="refusals before the statement is ready (default: %(default)s)",
    )
    parser.add_argument(
        "--web-port", type=int, default=8700, help="the finance team's web page port (default: %(default)s)"
    )
    parser.add_argument("--exit-when-done", action="store_true", help="stop everything once the rows are in")
    parser.add_argument(
        "--encrypt",
        action="store_true",
        help="encrypt every payload in history (key and codec token made in the data dir); "
        "run the codec server and point the Web UI at it",
    )
    parser.add_argument(
        "--codec-port",
        type=int,
        default=8081,
        help="codec server port, with --encrypt (default: %(default)s)",
    )
    raise SystemExit(asyncio.run(run_until_stopped(parser.parse_args())))


if __name__ == "__main__":
    main()
