"""The README's first command, as a new user runs it: dev server, simulator and worker as
processes, the workflow started with the ``temporal`` CLI, rows in the database at the end."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload

from bankrecon.models import StatementKey
from bankrecon.ops.binaries import find_binary
from bankrecon.ops.demo import _show_rows, write_demo_env
from bankrecon.store.db import make_engine
from bankrecon.store.schema import prepare_schema
from bankrecon.temporal.codec import EncryptionCodec, load_key_ring
from tests.harness import ACCOUNT, changed_url, readable_history, stored_rows
from tests.processes import DevServer, ProcessGroup, environment_without_settings, wait_until
from workflows.daily_statement import statement_workflow_id, yesterday_in_china

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_demo_ends_with_rows_in_the_database(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    temporal_port, ui_port, bank_port, wechatpay_port, alipay_port, unionpay_port, sftp_port, web_port = (
        _free_port() for _ in range(8)
    )
    try:
        demo = subprocess.run(
            [
                sys.executable, "-m", "bankrecon.ops.demo", "--exit-when-done",
                "--data-dir", str(data_dir), "--database-url", database_url,
                "--temporal-port", str(temporal_port), "--ui-port", str(ui_port),
                "--bank-port", str(bank_port), "--wechatpay-port", str(wechatpay_port),
                "--alipay-port", str(alipay_port), "--unionpay-port", str(unionpay_port),
                "--sftp-port", str(sftp_port), "--web-port", str(web_port),
                "--interval", "1", "--ready-after", "2",
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    finally:
        # A demo killed at the timeout leaves its services (each in a session of its own) behind;
        # every one of them names the data directory in its command line.
        subprocess.run(["pkill", "-KILL", "-f", str(data_dir)], check=False)
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "Web UI: http://127.0.0.1:" in output
    assert output.count("9999 系统错误 (not ready yet)") == 2, output
    assert "0000 成功" in output, output
    assert '"fetch_attempts": 3' in output and '"transaction_count": 20' in output, output
    statement, rows = stored_rows(database_url, "6222020000000001", yesterday_in_china(datetime.now(UTC)))
    assert statement is not None and statement.transaction_count == len(rows) == 20
    # The WeChat Pay bill of the same day, collected beside it by the same workflow.
    assert output.count("STATEMENT_CREATING 账单生成中 (not ready yet)") == 2, output
    statement, rows = stored_rows(database_url, "wx-demo-trade", yesterday_in_china(datetime.now(UTC)))
    assert statement is not None and statement.source_kind == "wechatpay" and len(rows) == 20
    # And every other source's, side by side.
    others = {"ali-demo-trade": "alipay", "up-demo": "unionpay", "DE89370400440532013000": "sftp"}
    for account_no, kind in others.items():
        statement, rows = stored_rows(database_url, account_no, yesterday_in_china(datetime.now(UTC)))
        assert statement is not None and statement.source_kind == kind and rows, (account_no, output)
    assert (data_dir / "logs" / "worker.log").exists()
    password = (data_dir / "web-demo-password").read_text().strip()
    assert f"web page: http://127.0.0.1:{web_port}/ (log in as demo, password {password})" in output
    assert "bankrecon web on" in (data_dir / "logs" / "web.log").read_text()
    # It stopped what it started.
    ports = (
        temporal_port,
        ui_port,
        bank_port,
        wechatpay_port,
        alipay_port,
        unionpay_port,
        sftp_port,
        web_port,
    )
    for port in ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listening"


DEMO_ENV_RECIPE = "set -a; . data/demo.env; set +a"


def test_the_readme_recipe_puts_bankrecon_and_temporal_on_a_new_shells_path(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_demo_env(tmp_path / "data" / "demo.env", {"TEMPORAL_ADDRESS": "127.0.0.1:7233"})
    assert DEMO_ENV_RECIPE in (ROOT / "README.md").read_text()
    # A new shell, with nothing of the venv: the system's PATH only.
    new_shell = subprocess.run(
        [
            "bash",
            "-c",
            f"{DEMO_ENV_RECIPE}; bankrecon --help && temporal --version && echo $TEMPORAL_ADDRESS",
        ],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert new_shell.returncode == 0, new_shell.stderr
    assert "usage: bankrecon" in new_shell.stdout
    assert "temporal version" in new_shell.stdout
    assert new_shell.stdout.endswith("127.0.0.1:7233\n")


def test_demo_help_shows_the_default_of_every_option_that_takes_a_value() -> None:
    shown = subprocess.run(
        [str(ROOT / "scripts" / "demo"), "--help"], capture_output=True, text=True, timeout=120, check=True
    )
    # argparse starts each option's entry on a line of its own, indented by two spaces.
    entries = [" ".join(entry.split()) for entry in re.split(r"\n  (?=-)", shown.stdout.split("options:")[1])]
    taking_a_value = [entry for entry in entries if re.match(r"--[a-z-]+ [A-Z_]+ ", entry)]
    assert len(taking_a_value) == 13, entries  # a port for each source beside the bank, and the web page's
    assert all(re.search(r"\(default: [^)]+\)$", entry) for entry in taking_a_value), taking_a_value
    assert "--temporal-port TEMPORAL_PORT Temporal dev server port (default: 7233)" in entries
    assert "--interval INTERVAL bank window and retry interval, seconds (default: 3.0)" in entries


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_demo_never_prints_its_database_password(database_url: str) -> None:
    with_password = changed_url(database_url, password="demo-database-password")
    engine = make_engine(with_password)
    prepare_schema(engine)
    engine.dispose()
    key = StatementKey(account_no=ACCOUNT, bill_date=yesterday_in_china(datetime.now(UTC)))
    with pytest.raises(SystemExit, match=r"the workflow completed but .* holds no statement") as nothing:
        _show_rows(with_password, key)
    assert "demo-database-password" not in str(nothing.value)


def printed(output: str, label: str) -> str:
    """The one line of the demo's output that starts with ``label``, after the label."""
    (line,) = [line for line in output.splitlines() if line.startswith(label)]
    return line.removeprefix(label)


def another_shell(command: str) -> str:
    """What ``command`` prints in a new shell of an operator's, who has only ``temporal`` on the PATH."""
    temporal_dir = str(Path(find_binary("temporal")).parent)
    env = environment_without_settings() | {"PATH": f"{temporal_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_demo_with_encryption_keeps_every_payload_encrypted(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    names = ("temporal", "ui", "bank", "wechatpay", "alipay", "unionpay", "sftp", "codec", "web")
    ports = {name: _free_port() for name in names}
    workflow_id = statement_workflow_id(ACCOUNT, yesterday_in_china(datetime.now(UTC)))
    demo_env = data_dir / "demo.env"
    decoded_input = f'"account_no":"{ACCOUNT}"'
    encrypted = "YmluYXJ5L2VuY3J5cHRlZA=="  # binary/encrypted, in base64
    with ProcessGroup(tmp_path / "demo") as group:
        demo = group.start(
            "demo",
            [
                sys.executable, "-m", "bankrecon.ops.demo", "--encrypt",
                "--data-dir", str(data_dir), "--temporal-port", str(ports["temporal"]),
                "--ui-port", str(ports["ui"]), "--bank-port", str(ports["bank"]),
                "--wechatpay-port", str(ports["wechatpay"]), "--alipay-port", str(ports["alipay"]),
                "--unionpay-port", str(ports["unionpay"]), "--sftp-port", str(ports["sftp"]),
                "--codec-port", str(ports["codec"]), "--web-port", str(ports["web"]),
                "--interval", "1", "--ready-after", "1",
            ],
        )  # fmt: skip
        try:
            wait_until(
                lambda: "Ctrl-C stops it all" in demo.log.read_text() or not demo.alive(),
                240,
                "the demo to store the statement",
                demo.log,
            )
            output = demo.log.read_text()
            assert demo.alive(), output
            # What the demo prints works when copied into another shell: the start (the date again),
            another_shell("temporal workflow start " + printed(output, "$ temporal workflow start "))
            # every temporal command in a shell that sourced demo.env (the result of that run),
            sourced = f"set -a; . {demo_env}; set +a; "
            result = another_shell(f"{sourced}temporal workflow result --workflow-id {workflow_id}")
            assert decoded_input in result and encrypted not in result
            # and the describe and show it suggests.
            assert decoded_input in another_shell(printed(output, "try: "))
            assert decoded_input in another_shell(printed(output, "decoded history: "))
            query = f"temporal workflow query --workflow-id {workflow_id} --type status"
            status = another_shell(sourced + query)
            assert decoded_input in status and '"phase":"done"' in status
            # The same query in a shell without demo.env gets the payload as stored: encrypted.
            assert encrypted in another_shell(f"{query} --address 127.0.0.1:{ports['temporal']}")
        finally:
            code = demo.terminate(timeout=60)
    output = demo.log.read_text()
    assert code == 130, output
    assert '"transaction_count": 20' in output
    assert f"--codec-endpoint http://127.0.0.1:{ports['codec']}" in output
    token = (data_dir / "codec-token").read_text().strip()
    assert token not in output
    for secret_file in ("codec-token", "encryption-keys", "demo.env"):
        assert (data_dir / secret_file).stat().st_mode & 0o077 == 0, f"{secret_file} is readable by others"
    logs = data_dir / "logs"
    assert "payload encryption on" in (logs / "worker.log").read_text()
    # The CLI encrypted the workflow's input through the codec server.
    assert "POST .../encode -> 200" in (logs / "codec-server.log").read_text()
    for port in ports.values():
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listening"

    # The history the demo left behind: every payload encrypted, readable with the demo's key.
    with ProcessGroup(tmp_path / "logs") as group:
        temporal = DevServer(group, data_dir / "temporal.db")
        temporal.start()
        show = subprocess.run(
            [find_binary("temporal"), "workflow", "show", "--workflow-id", workflow_id,
             "--address", temporal.address, "--output", "json"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        temporal.stop()
    history = json.loads(show.stdout)
    payloads = [
        json_format.ParseDict(payload, Payload())
        for event in history["events"]
        for attributes in event.values()
        if isinstance(attributes, dict)
        for field in ("input", "result")
        for payload in attributes.get(field, {}).get("payloads", [])
    ]
    assert len(payloads) >= 7  # the workflow's input and result, each activity's input and result
    assert {payload.metadata["encoding"] for payload in payloads} == {b"binary/encrypted"}
    assert "account_no" not in readable_history(show.stdout)
    ring = load_key_ring(None, data_dir / "encryption-keys")
    assert ring is not None
    decoded = asyncio.run(EncryptionCodec(ring).decode(payloads))
    assert any(b'"account_no":"6222020000000001"' in payload.data for payload in decoded)
