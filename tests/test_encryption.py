"""Encrypted history for real: dev server with its Web UI, codec server, worker and bank as processes.

With encryption on, ``temporal workflow show`` shows no account number or amount unless
it is given the codec server; the Web UI (headless Chromium) shows the decoded input
through the codec server; and no credential appears in history, logs or exceptions,
whether encryption is on or off.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

from bankrecon.config import DEMO_MERCHANT_ID, Settings
from bankrecon.models import DailyStatementInput, DailyStatementResult
from bankrecon.ops.binaries import find_binary
from bankrecon.sources.refbank.simulator.server import BankSimulator, StatementPlan
from bankrecon.temporal.client import connect
from bankrecon.temporal.codec import new_key
from tests.harness import ACCOUNT, BILL_DATE, changed_url, readable_history
from tests.processes import (
    Child,
    DevServer,
    ProcessGroup,
    environment_without_settings,
    free_port,
    listening,
    log_tail,
    start_worker,
    wait_until,
    worker_env,
)
from workflows.daily_statement import DailyStatementWorkflow

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
MERCHANT_SECRET = f"merchant-secret-{uuid.uuid4().hex}"
CODEC_TOKEN = f"codec-token-{uuid.uuid4().hex}"
OLD_KEY, NEW_KEY = new_key(), new_key()
KEYS = f"2026-11:{NEW_KEY},2026-01:{OLD_KEY}"
DATABASE_PASSWORD = f"database-password-{uuid.uuid4().hex}"
CREDENTIALS = {
    "merchant secret": MERCHANT_SECRET,
    "codec token": CODEC_TOKEN,
    "new key": NEW_KEY,
    "old key": OLD_KEY,
    "database password": DATABASE_PASSWORD,
}


def with_password(database_url: str) -> str:
    """The test's PostgreSQL URL with DATABASE_PASSWORD (the server trusts its clients: any will do)."""
    return changed_url(database_url, password=DATABASE_PASSWORD)


@dataclass
class Stack:
    processes: ProcessGroup
    temporal: DevServer
    codec_url: str
    codec_server: Child
    bank: BankSimulator
    home: Path

    @property
    def temporal_log(self) -> Path:
        assert self.temporal.child is not None
        return self.temporal.child.log

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.temporal.ui_port}"

    def settings(self, task_queue: str, keys: str | None) -> Settings:
        return Settings(
            _env_file=None,
            temporal_address=self.temporal.address,
            temporal_task_queue=task_queue,
            bankrecon_encryption_keys=keys,
        )

    def start_worker(self, task_queue: str, keys: str | None, database_url: str | None = None) -> Child:
        """A worker on ``task_queue``; its database is a SQLite file of its own unless given."""
        env = worker_env(
            temporal_address=self.temporal.address,
            task_queue=task_queue,
            data_dir=self.home / task_queue,
            database_url=database_url or f"sqlite:///{self.home / task_queue / 'bankrecon.db'}",
            bank_url=self.bank.url,
            min_interval=0,
            request_timeout=5,
        ) | {"BANK_MERCHANT_SECRET": MERCHANT_SECRET}
        return start_worker(self.processes, env | ({"BANKRECON_ENCRYPTION_KEYS": keys} if keys else {}))

    def temporal_cli(self, *args: str) -> str:
        done = subprocess.run(
            [find_binary("temporal"), *args, "--address", self.temporal.address],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("encrypted")
    codec_port = free_port()
    codec_url = f"http://127.0.0.1:{codec_port}"
    with (
        ProcessGroup(home / "logs") as group,
        BankSimulator(
            merchants={DEMO_MERCHANT_ID: MERCHANT_SECRET},
            min_interval=0,
            today=lambda: BILL_DATE + timedelta(days=1),
        ) as bank,
    ):
        # The Web UI sends no Authorization header without an OIDC login: its endpoint
        # carries the token as the first path segment.
        temporal = DevServer(group, home / "temporal.db", ui_codec_endpoint=f"{codec_url}/{CODEC_TOKEN}")
        temporal.start()
        ui_origin = f"http://127.0.0.1:{temporal.ui_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BANKRECON_", "CODEC_SERVER_"))}
        codec_server = group.start(
            "codec-server",
            [sys.executable, "-m", "bankrecon.temporal.codec_server"],
            env
            | {
                "BANKRECON_ENCRYPTION_KEYS": KEYS,
                "CODEC_SERVER_TOKEN": CODEC_TOKEN,
                "CODEC_SERVER_PORT": str(codec_port),
                "CODEC_SERVER_CORS_ORIGINS": ui_origin,
                "PYTHONUNBUFFERED": "1",
            },
        )
        wait_until(
            lambda: listening(codec_port) or not codec_server.alive(),
            30,
            "the codec server",
            codec_server.log,
        )
        assert codec_server.alive(), f"the codec server exited:\n{log_tail(codec_server.log)}"
        assert temporal.ui_port is not None and temporal.child is not None
        ui_port = temporal.ui_port
        wait_until(lambda: listening(ui_port), 60, "the Web UI", temporal.child.log)
        yield Stack(group, temporal, codec_url, codec_server, bank, home)
        temporal.stop()


@dataclass
class Run:
    workflow_id: str
    run_id: str
    result: DailyStatementResult


def new_workflow_id() -> str:
    # Without the account number, so that any account number on show was decoded.
    return f"encryption-test-{uuid.uuid4().hex[:8]}"


async def run_statement(stack: Stack, task_queue: str, keys: str | None, workflow_id: str = "") -> Run:
    """One statement collected by the worker on ``task_queue``."""
    stack.bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=12))
    client = await connect(stack.settings(task_queue, keys))
    handle = await client.start_workflow(
        DailyStatementWorkflow.run,
        DailyStatementInput(account_no=ACCOUNT, bill_date=BILL_DATE, retry_interval_seconds=1),
        id=workflow_id or new_workflow_id(),
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=90),
    )
    return Run(handle.id, handle.result_run_id or "", await handle.result())


def amounts(result: DailyStatementResult) -> list[str]:
    return [str(amount) for amount in (result.opening_balance, result.closing_balance) if amount is not None]


@pytest.fixture(scope="module")
async def encrypted_run(stack: Stack) -> Run:
    task_queue = f"encrypted-{uuid.uuid4().hex[:8]}"
    worker = stack.start_worker(task_queue, KEYS)
    try:
        return await run_statement(stack, task_queue, KEYS)
    finally:
        worker.terminate()


def test_history_is_unreadable_without_the_codec_and_readable_with_it(
    stack: Stack, encrypted_run: Run
) -> None:
    hidden = [ACCOUNT, *amounts(encrypted_run.result)]
    assert len(hidden) == 3, encrypted_run.result
    show = ["workflow", "show", "--workflow-id", encrypted_run.workflow_id, "--output", "json"]

    raw = stack.temporal_cli(*show)
    assert raw.count('"YmluYXJ5L2VuY3J5cHRlZA=="') >= 6  # base64 of binary/encrypted: input, results...
    # Search attributes are the server's index, never encoded by a codec: they hold the
    # account number and date on purpose, for operators' queries, and nothing else
    # (TemporalChangeVersion is Temporal's own: the workflow.patched ids a run took).
    history = json.loads(raw)
    indexed = pop_search_attributes(history)
    assert indexed <= {"BankAccount", "BillDate", "StatementPhase", "StatementLate", "TemporalChangeVersion"}
    assert [value for value in hidden if value in readable_history(json.dumps(history))] == []

    for codec_options in (
        ["--codec-endpoint", stack.codec_url, "--codec-auth", f"Bearer {CODEC_TOKEN}"],
        ["--codec-endpoint", f"{stack.codec_url}/{CODEC_TOKEN}"],
    ):
        decoded = readable_history(stack.temporal_cli(*show, *codec_options))
        assert [value for value in hidden if value not in decoded] == []

    # With a wrong token the codec server decodes nothing.
    refused = subprocess.run(
        [find_binary("temporal"), *show, "--address", stack.temporal.address,
         "--codec-endpoint", stack.codec_url, "--codec-auth", "Bearer wrong-token"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0 or ACCOUNT not in readable_history(refused.stdout)
    assert ACCOUNT not in refused.stderr


async def test_web_ui_shows_the_decoded_input_through_the_codec_server(
    stack: Stack, encrypted_run: Run
) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    from playwright.async_api import async_playwright

    run = f"{encrypted_run.workflow_id}/{encrypted_run.run_id}"
    page_url = f"{stack.ui_url}/namespaces/default/workflows/{run}/history"
    closing_balance = str(encrypted_run.result.closing_balance)
    screenshot = ARTIFACTS / "web-ui-decoded-input.png"
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1800})
            await page.goto(page_url)
            # The page renders with JavaScript, and the payloads arrive from the codec server after it.
            await page.get_by_text(ACCOUNT).first.wait_for(timeout=60_000)
            await page.get_by_text(closing_balance).first.wait_for(timeout=30_000)
            await page.screenshot(path=str(screenshot), full_page=True)
            text = await page.inner_text("body")
        finally:
            await browser.close()
    print(f"Web UI screenshot: {screenshot}")
    assert ACCOUNT in text and "account_no" in text and closing_balance in text
    assert "decode" in log_tail(stack.codec_server.log)


def pop_search_attributes(node: object) -> set[str]:
    """Remove every search attribute map from a history's JSON; the names it held."""
    names: set[str] = set()
    if isinstance(node, dict):
        attributes = node.pop("searchAttributes", None)
        if isinstance(attributes, dict):
            names |= set(attributes.get("indexedFields", {}))
        for value in node.values():
            names |= pop_search_attributes(value)
    elif isinstance(node, list):
        for value in node:
            names |= pop_search_attributes(value)
    return names


def failure_texts(error: BaseException) -> str:
    """Everything an operator could read of an exception: messages, causes, traceback."""
    texts = ["".join(traceback.format_exception(error))]
    cause: BaseException | None = error
    while cause is not None:
        texts.append(str(cause))
        texts.extend(str(arg) for arg in cause.args)
        cause = cause.__cause__
    return "\n".join(texts)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("encrypted", [False, True], ids=["encryption-off", "encryption-on"])
async def test_credentials_never_reach_history_logs_or_exceptions(
    stack: Stack, encrypted: bool, database_url: str
) -> None:
    task_queue = f"credentials-{uuid.uuid4().hex[:8]}"
    keys = KEYS if encrypted else None
    worker = stack.start_worker(task_queue, keys, with_password(database_url))
    failed_id = new_workflow_id()
    try:
        succeeded = await run_statement(stack, task_queue, keys)
        # The bank rotates the merchant's secret: the worker's own is now refused (1001).
        stack.bank.merchants[DEMO_MERCHANT_ID] = f"rotated-{uuid.uuid4().hex}"
        with pytest.raises(WorkflowFailureError) as failure:
            await run_statement(stack, task_queue, keys, workflow_id=failed_id)
    finally:
        stack.bank.merchants[DEMO_MERCHANT_ID] = MERCHANT_SECRET
        worker.terminate()
    exception = failure_texts(failure.value)
    assert "1001" in exception and "BANK_MERCHANT_SECRET" in exception  # the real failure, decoded

    histories = {}
    for workflow_id in (succeeded.workflow_id, failed_id):
        show = ["workflow", "show", "--workflow-id", workflow_id, "--output", "json"]
        histories[workflow_id, "raw"] = readable_history(stack.temporal_cli(*show))
        if encrypted:
            decoded = stack.temporal_cli(
                *show, "--codec-endpoint", stack.codec_url, "--codec-auth", f"Bearer {CODEC_TOKEN}"
            )
            histories[workflow_id, "decoded"] = readable_history(decoded)
    # Encrypted, even the failure message is only in the decoded history.
    assert ("signature rejected" in histories[failed_id, "raw"]) is not encrypted
    assert "signature rejected" in histories[failed_id, "decoded" if encrypted else "raw"]

    places = {
        "history": "\n".join(histories.values()),
        "worker log": worker.log.read_text(errors="replace"),
        "codec server log": stack.codec_server.log.read_text(errors="replace"),
        "Temporal dev server log": stack.temporal_log.read_text(errors="replace"),
        "exception": exception,
    }
    leaks = [
        (what, where)
        for what, secret in CREDENTIALS.items()
        for where, text in places.items()
        if secret in text
    ]
    assert leaks == []
    assert ("payload encryption on" in places["worker log"]) is encrypted


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_console_and_the_worker_never_print_the_database_password(
    database_url: str, tmp_path: Path
) -> None:
    reachable = with_password(database_url)
    closed_port = free_port()
    no_temporal = f"127.0.0.1:{free_port()}"
    # Unencoded, the '@' would end the password there and the rest would pass for the host.
    raw_at_sign = reachable.replace(DATABASE_PASSWORD, f"pass@{DATABASE_PASSWORD}")

    def failing(*command: str, database: str) -> str:
        env = environment_without_settings() | {
            "DATABASE_URL": database,
            "TEMPORAL_ADDRESS": no_temporal,
            "DATA_DIR": str(tmp_path / "data"),
            "BANK_MERCHANT_SECRET": MERCHANT_SECRET,
        }
        done = subprocess.run(
            [sys.executable, *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode != 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    console = ("-m", "bankrecon.ops.cli")
    said = {
        "Temporal unreachable": failing(*console, "status", database=reachable),
        "database unreachable": failing(
            *console, "status", database=changed_url(reachable, port=closed_port)
        ),
        "no such database": failing(
            *console, "pause", DEMO_MERCHANT_ID, database=changed_url(reachable, database="nosuchdb")
        ),
        "raw @, console": failing(*console, "status", database=raw_at_sign),
        "raw @, worker": failing(str(ROOT / "worker.py"), database=raw_at_sign),
    }
    assert f"cannot reach Temporal at {no_temporal}" in said["Temporal unreachable"]
    assert f"cannot use the database 127.0.0.1:{closed_port}/" in said["database unreachable"]
    assert 'database "nosuchdb" does not exist' in said["no such database"]
    for raw_at in ("raw @, console", "raw @, worker"):
        assert "configuration error" in said[raw_at] and "as %40" in said[raw_at], said[raw_at]
    assert [what for what, text in said.items() if DATABASE_PASSWORD in text] == []


async def test_after_a_rotation_old_payloads_still_decode_and_new_ones_use_the_newest_key(
    stack: Stack,
) -> None:
    task_queue = f"rotation-{uuid.uuid4().hex[:8]}"
    stack.bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=12))
    # Started before the rotation: its input is under the old key alone.
    before = await connect(stack.settings(task_queue, f"2026-01:{OLD_KEY}"))
    handle = await before.start_workflow(
        DailyStatementWorkflow.run,
        DailyStatementInput(account_no=ACCOUNT, bill_date=BILL_DATE, retry_interval_seconds=1),
        id=new_workflow_id(),
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=90),
    )
    worker = stack.start_worker(task_queue, KEYS)  # rotated: the new key first, the old one kept
    try:
        after = await connect(stack.settings(task_queue, KEYS))
        result = await after.get_workflow_handle_for(DailyStatementWorkflow.run, handle.id).result()
    finally:
        worker.terminate()
    assert result.account_no == ACCOUNT and result.transaction_count == 12

    history = json.loads(
        stack.temporal_cli("workflow", "show", "--workflow-id", handle.id, "--output", "json")
    )
    key_ids = [
        (event["eventType"], base64.b64decode(payload["metadata"]["encryption-key-id"]).decode())
        for event in history["events"]
        for attributes in event.values()
        if isinstance(attributes, dict)
        for field in ("input", "result")
        for payload in attributes.get(field, {}).get("payloads", [])
    ]
    assert key_ids[0] == ("EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", "2026-01")
    assert len(key_ids) >= 7 and {key_id for _, key_id in key_ids[1:]} == {"2026-11"}, key_ids
