"""The README's first command, as a new user runs it: dev server, simulator and worker as
processes, the workflow started with the ``temporal`` CLI, rows in the database at the end."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.harness import stored_rows
from workflows.daily_statement import yesterday_in_china

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_demo_ends_with_rows_in_the_database(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "data"
    temporal_port, ui_port, bank_port = _free_port(), _free_port(), _free_port()
    demo = subprocess.run(
        [
            sys.executable, "-m", "bankrecon.demo", "--exit-when-done",
            "--data-dir", str(data_dir), "--database-url", database_url,
            "--temporal-port", str(temporal_port), "--ui-port", str(ui_port),
            "--bank-port", str(bank_port), "--interval", "1", "--ready-after", "2",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "Web UI: http://127.0.0.1:" in output
    assert output.count("9999 系统错误 (not ready yet)") == 2, output
    assert "0000 成功" in output, output
    assert '"fetch_attempts": 3' in output and '"transaction_count": 20' in output, output
    statement, rows = stored_rows(database_url, "6222020000000001", yesterday_in_china(datetime.now(UTC)))
    assert statement is not None and statement.transaction_count == len(rows) == 20
    assert (data_dir / "logs" / "worker.log").exists()
    # It stopped what it started.
    for port in (temporal_port, ui_port, bank_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listening"
