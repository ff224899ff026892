"""The configuration contract: environment variables, a .env file, and the defaults for the local setup."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from bankrecon.config import DEMO_MERCHANT_ID, SIMULATOR_URL, Settings
from bankrecon.temporal.client import key_ring, tls_config
from bankrecon.temporal.codec import new_key
from tests.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
VARIABLES = [
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_TASK_QUEUE",
    "DATA_DIR",
    "DATABASE_URL",
    "BANK_BASE_URL",
    "BANK_MERCHANT_ID",
    "BANK_MERCHANT_SECRET",
    "BANK_MIN_INTERVAL_SECONDS",
    "BANK_ACCOUNTS",
    "NIGHTLY_TIME",
    "NIGHTLY_TIMEZONE",
    "ALERT_WEBHOOK_URL",
    "BANKRECON_ENCRYPTION_KEYS",
    "BANKRECON_ENCRYPTION_KEYS_FILE",
    "CODEC_SERVER_HOST",
    "CODEC_SERVER_PORT",
    "CODEC_SERVER_TOKEN",
    "CODEC_SERVER_CORS_ORIGINS",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_run_against_the_local_setup(tmp_path: Path) -> None:
    settings = Settings()
    assert (settings.temporal_address, settings.temporal_namespace, settings.temporal_task_queue) == (
        "localhost:7233",
        "default",
        "bank-statements",
    )
    assert settings.data_dir == Path("./data")
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path / 'data' / 'bankrecon.db'}"
    assert settings.bank_base_url == SIMULATOR_URL
    assert settings.bank_merchant_id == DEMO_MERCHANT_ID
    assert (
        settings.bank_merchant_secret is None
    )  # no default: see test_the_worker_refuses_to_start_without_a_secret
    assert settings.bank_min_interval_seconds == 1800


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "TEMPORAL_ADDRESS": "temporal.internal:7233",
        "TEMPORAL_NAMESPACE": "finance",
        "TEMPORAL_TASK_QUEUE": "statements-eu",
        "DATA_DIR": "/srv/bankrecon",
        "DATABASE_URL": "postgresql+psycopg://u@db/bankrecon",
        "BANK_BASE_URL": "https://bank.example/api",
        "BANK_MERCHANT_ID": "M2",
        "BANK_MERCHANT_SECRET": "s3cret",
        "BANK_MIN_INTERVAL_SECONDS": "0.5",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.temporal_address == "temporal.internal:7233"
    assert settings.temporal_namespace == "finance"
    assert settings.temporal_task_queue == "statements-eu"
    assert settings.data_dir == Path("/srv/bankrecon")
    assert settings.resolved_database_url() == "postgresql+psycopg://u@db/bankrecon"
    assert settings.bank_base_url == "https://bank.example/api"
    assert settings.bank_merchant_id == "M2"
    assert (
        settings.bank_merchant_secret is not None
        and settings.bank_merchant_secret.get_secret_value() == "s3cret"
    )
    assert settings.bank_min_interval_seconds == 0.5
    assert "s3cret" not in repr(settings)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BANK_MERCHANT_ID=M3\nBANK_MIN_INTERVAL_SECONDS=60\n")
    settings = Settings()
    assert (settings.bank_merchant_id, settings.bank_min_interval_seconds) == ("M3", 60)


def test_nonsense_is_refused_with_the_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANK_MIN_INTERVAL_SECONDS", "-5")
    with pytest.raises(ValueError, match="bank_min_interval_seconds"):
        Settings()


def test_a_database_url_mistake_is_refused_without_quoting_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # A raw '@' in the password: the rest of it would pass for the host, which errors quote.
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:p@ss-w0rd@db/bankrecon")
    with pytest.raises(ValueError, match="database_url") as refused:
        Settings()
    assert "write an '@' in the user or password as %40" in str(refused.value)
    assert "w0rd" not in str(refused.value)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:pw@db:port/bankrecon")
    with pytest.raises(ValueError, match="not a SQLAlchemy URL") as refused:
        Settings()
    assert "u:pw" not in str(refused.value)


def _worker_refuses(env: dict[str, str]) -> str:
    """What ``python worker.py`` with these settings says as it refuses to start (exit status 1)."""
    worker = subprocess.run(
        [sys.executable, "worker.py"],
        cwd=ROOT,
        env=os.environ | {"TEMPORAL_ADDRESS": "127.0.0.1:1"} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 1, worker.stderr
    return worker.stderr.strip()


def test_the_worker_refuses_a_bad_configuration_before_connecting(tmp_path: Path) -> None:
    assert _worker_refuses({"BANK_ACCOUNTS_FILE": str(tmp_path / "missing.toml")}) == (
        f"configuration error: BANK_ACCOUNTS_FILE {tmp_path / 'missing.toml'}: cannot read it: "
        f"[Errno 2] No such file or directory: '{tmp_path / 'missing.toml'}'"
    )


def test_the_nightly_settings_and_their_mistakes(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert (settings.nightly_time.isoformat(), settings.nightly_timezone) == ("00:30:00", "Asia/Shanghai")
    assert (settings.nightly_catch_up_days, settings.statement_deadline.isoformat()) == (7, "09:00:00")
    assert settings.alert_webhook_url is None
    monkeypatch.setenv("NIGHTLY_TIMEZONE", "Asia/Beijing")
    with pytest.raises(ValueError, match="unknown time zone 'Asia/Beijing'"):
        Settings()
    monkeypatch.setenv("NIGHTLY_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("NIGHTLY_TIME", "25:00")
    with pytest.raises(ValueError, match="nightly_time"):
        Settings()
    monkeypatch.setenv("NIGHTLY_TIME", "01:15")
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "https://hooks.example.com/T0/secret-token")
    settings = Settings()
    assert settings.nightly_time.isoformat() == "01:15:00"
    assert "secret-token" not in repr(settings)


def test_an_empty_variable_is_an_unset_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # As docker-compose passes ${NAME:-} for an optional setting nobody set.
    for name in (
        "ALERT_WEBHOOK_URL",
        "TEMPORAL_API_KEY",
        "CODEC_SERVER_TOKEN",
        "NIGHTLY_TIME",
        "DATABASE_URL",
    ):
        monkeypatch.setenv(name, "")
    settings = Settings()
    assert (settings.alert_webhook_url, settings.temporal_api_key, settings.codec_server_token) == (None,) * 3
    assert settings.nightly_time.isoformat() == "00:30:00"
    assert tls_config(settings) is False  # an empty API key turned TLS on
    assert settings.resolved_database_url().endswith("bankrecon.db")


def test_encryption_and_codec_server_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key()
    values = {
        "BANKRECON_ENCRYPTION_KEYS": f"2026-11:{key}",
        "CODEC_SERVER_HOST": "0.0.0.0",
        "CODEC_SERVER_PORT": "9081",
        "CODEC_SERVER_TOKEN": "t0ken",
        "CODEC_SERVER_CORS_ORIGINS": "https://temporal-ui.internal",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    ring = key_ring(settings)
    assert ring is not None and ring.ids == ["2026-11"]
    assert (settings.codec_server_host, settings.codec_server_port) == ("0.0.0.0", 9081)
    assert (
        settings.codec_server_token is not None and settings.codec_server_token.get_secret_value() == "t0ken"
    )
    assert settings.codec_server_cors_origins == "https://temporal-ui.internal"
    assert key not in repr(settings) and "t0ken" not in repr(settings)
    assert key_ring(Settings(bankrecon_encryption_keys=None)) is None  # off without keys


def test_the_worker_refuses_a_malformed_key_before_connecting() -> None:
    short_key = base64.b64encode(b"sixteen byte key").decode()
    env = {"BANKRECON_ENCRYPTION_KEYS": f"k1:{short_key}", "BANK_MERCHANT_SECRET": "s3cret"}
    assert _worker_refuses(env) == (
        "configuration error: BANKRECON_ENCRYPTION_KEYS, key 'k1': decodes to 16 bytes; AES-256 needs 32 "
        "(make one with: python -m bankrecon.temporal.codec new-key)"
    )


@pytest.mark.parametrize("secret", ["unset", "empty", "empty in the accounts file"])
def test_the_worker_refuses_to_start_without_a_secret(tmp_path: Path, secret: str) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[[merchant]]\nid = "M1"\nsecret_env = "TEST_SECRET_M1"\n')
    env = {
        "unset": {},
        "empty": {"BANK_MERCHANT_SECRET": ""},
        "empty in the accounts file": {"BANK_ACCOUNTS_FILE": str(accounts), "TEST_SECRET_M1": ""},
    }[secret]
    # Temporal and the bank at an address that would see any connection.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        said = _worker_refuses(env | {"TEMPORAL_ADDRESS": address, "BANK_BASE_URL": f"http://{address}"})
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert said == (
        f"configuration error: BANK_ACCOUNTS_FILE {accounts}: "
        "merchant M1: secret_env TEST_SECRET_M1 is not set"
        if "accounts file" in secret
        else "configuration error: BANK_MERCHANT_SECRET is not set: merchant M100001's secret, "
        "which signs every request to the bank"
    )


@pytest.mark.parametrize("url", ["mysql://u:hunter2@db/bankrecon", "postgresql://u:hunter2@db/bankrecon"])
def test_the_worker_refuses_an_unsupported_database_in_one_line(url: str) -> None:
    scheme = url.split(":")[0]
    assert _worker_refuses({"DATABASE_URL": url}) == (
        f"configuration error: DATABASE_URL: unsupported URL scheme {scheme!r}: use "
        "sqlite:///path/to/bankrecon.store.db or postgresql+psycopg://user:password@host:5432/dbname"
    )


async def test_the_worker_says_in_one_line_that_the_database_is_unreachable(
    dev_env: WorkflowEnvironment,
) -> None:
    port = free_port()
    said = await asyncio.to_thread(
        _worker_refuses,
        {
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "DATABASE_URL": f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{port}/test",
            "BANK_MERCHANT_SECRET": "s3cret",
        },
    )
    assert said == (
        f"cannot use the database 127.0.0.1:{port}/test (DATABASE_URL): connection failed: connection to "
        f'server at "127.0.0.1", port {port} failed: Connection refused Is the server running on that host '
        "and accepting TCP/IP connections?"
    )
