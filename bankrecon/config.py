"""Settings from the environment (and a .env file), with defaults for the local setup."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from bankrecon.models import ACCOUNT_NO_PATTERN

# The simulator's demo merchant; a real deployment overrides it.
DEMO_MERCHANT_ID = "M100001"
SIMULATOR_URL = "http://127.0.0.1:8600"
# The databases and drivers bankrecon is built and tested for (requirements.lock holds no other).
SUPPORTED_DATABASE_URLS = (
    "sqlite:///path/to/bankrecon.store.db or postgresql+psycopg://user:password@host:5432/dbname"
)
_SUPPORTED_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


class Settings(BaseSettings):
    # Errors name the setting, never its value: several values are secrets (DATABASE_URL's password).
    # An empty variable is an unset one (docker-compose's ${NAME:-} passes optional settings
    # through that way): an empty API key must not turn TLS on, nor an empty token pass for one.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
        env_ignore_empty=True,
    )

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "bank-statements"
    # Named as in Temporal's own environment configuration (the CLI and the SDKs read the same).
    # TLS is on when TEMPORAL_TLS is set, when any file below is given, or with an API key.
    temporal_tls: bool = False
    temporal_tls_server_ca_cert_path: Path | None = None
    temporal_tls_client_cert_path: Path | None = None
    temporal_tls_client_key_path: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None

    # host:port for the Prometheus endpoint (/metrics) of the SDK and of bankrecon; unset: no metrics.
    metrics_address: str | None = None
    log_format: Literal["text", "json"] = "text"

    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file bankrecon.store.db in DATA_DIR"
    )

    # Several merchants and their accounts (see bankrecon/accounts.py); without it, one
    # merchant from BANK_MERCHANT_ID / BANK_MERCHANT_SECRET owns every account.
    bank_accounts_file: Path | None = None
    # Without BANK_ACCOUNTS_FILE: the accounts the nightly run collects, comma-separated.
    bank_accounts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    bank_base_url: str = SIMULATOR_URL
    bank_merchant_id: str = DEMO_MERCHANT_ID
    # No default: a missing secret would sign every request wrongly, seen only as the bank's 1001.
    # The demo passes the simulator's.
    bank_merchant_secret: SecretStr | None = None
    bank_min_interval_seconds: float = Field(default=1800.0, ge=0)
    bank_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # Bounds one whole request, download included; the merchant's window stays reserved
    # for this long when a worker dies mid-request, since the bank may still count it.
    bank_request_timeout_seconds: float = Field(default=300.0, gt=0)

    # Where archives live so that every worker reaches them (bankrecon/store/archives.py): local,
    # database, or s3://bucket/prefix?endpoint=URL&region=NAME; unset: database with PostgreSQL,
    # local (DATA_DIR alone) with SQLite.
    archive_store_url: str | None = None

    # Bounds on what one downloaded archive may inflate to, checked while streaming.
    archive_max_members: int = Field(default=1_000, gt=0)
    archive_max_total_bytes: int = Field(default=2 * 1024**3, gt=0)
    archive_max_compression_ratio: int = Field(default=200, gt=0)

    # The nightly run: its Schedule, the statements it starts, and when they count as late.
    schedule_id: str = "bankrecon-nightly"
    nightly_time: time = time(0, 30)
    nightly_timezone: str = "Asia/Shanghai"
    nightly_catch_up_days: int = Field(default=7, ge=0, le=60)
    statement_retry_interval_seconds: float = Field(default=1800.0, gt=0)
    statement_deadline: time = time(9, 0)  # China Standard Time, on the day after the statement's date
    alert_webhook_url: SecretStr | None = None
    alert_webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Retention (RetentionWorkflow, its Schedule made by `bankrecon schedule`): days of each kept.
    retention_schedule_id: str = "bankrecon-retention"
    retention_time: time = time(3, 0)  # daily, in NIGHTLY_TIMEZONE
    retention_bank_requests_days: int = Field(default=365, ge=1)
    retention_window_queue_days: int = Field(default=7, ge=1)
    retention_cancellations_days: int = Field(default=365, ge=1)
    retention_archives_days: int = Field(default=365, ge=1)  # stored and DATA_DIR's archives
    retention_records_days: int = Field(default=7, ge=1)  # records files no persist took
    retention_quarantine_days: int = Field(default=365, ge=1)
    retention_batch_size: int = Field(default=1000, ge=1, le=10000)
    # Reconciliation of channel accounts against the company's ledger (docs/reconciliation.md).
    recon_config_file: Path | None = None
    # Who `bankrecon recon explain / pair / write-off / reopen` records as acting without --by;
    # unset: the system user's name.
    bankrecon_operator: str | None = None

    @field_validator("bank_accounts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("bank_accounts")
    @classmethod
    def _account_numbers(cls, value: list[str]) -> list[str]:
        bad = [item for item in value if not re.fullmatch(ACCOUNT_NO_PATTERN, item)]
        if bad:
            raise ValueError(f"not account numbers (10 to 32 digits): {', '.join(bad)}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError(f"not a SQLAlchemy URL ({SUPPORTED_DATABASE_URLS})") from None
        if url.drivername not in _SUPPORTED_DRIVERS:
            raise ValueError(f"unsupported URL scheme {url.drivername!r}: use {SUPPORTED_DATABASE_URLS}")
        # A raw '@' ends the password early and the rest passes for the host, which the
        # database's errors quote: part of the password would reach the logs and history.
        if "@" in (url.host or ""):
            raise ValueError("more than one '@' before the host: write an '@' in the user or password as %40")
        return value

    @field_validator("archive_store_url")
    @classmethod
    def _archive_store(cls, value: str | None) -> str | None:
        if value is None or value in ("local", "database") or re.match(r"s3://[^/?]+", value):
            return value
        raise ValueError("use local, database, or s3://bucket/prefix?endpoint=https://host:port&region=name")

    @field_validator("nightly_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Asia/Shanghai)") from None
        return value

    # Payload encryption (bankrecon/temporal/codec.py): KEY_ID:BASE64_KEY entries, newest first, in
    # the variable or in a file; off when neither is set.
    bankrecon_encryption_keys: SecretStr | None = None
    bankrecon_encryption_keys_file: Path | None = None
    # The codec server (python -m bankrecon.temporal.codec_server) for the CLI and the Web UI.
    codec_server_host: str = "127.0.0.1"
    codec_server_port: int = Field(default=8081, ge=0, le=65535)
    codec_server_token: SecretStr | None = None
    codec_server_cors_origins: str = Field(
        default="http://localhost:8233,http://127.0.0.1:8233",
        description="comma-separated Web UI origins allowed to call the codec server",
    )

    # The web page for the finance team (bankrecon/web, docs/web.md).
    web_users_file: Path | None = None  # TOML: [[user]] name, password_hash, role
    # Signs the session cookies; unset: a key kept in DATA_DIR/web-session.key (made on first use).
    web_secret_key: SecretStr | None = None
    web_session_hours: float = Field(default=8.0, gt=0)
    # Cookies marked Secure even when the page is reached over plain HTTP (a TLS proxy in front).
    web_cookie_secure: bool = False

    @model_validator(mode="after")
    def _client_cert_with_its_key(self) -> Self:
        if (self.temporal_tls_client_cert_path is None) != (self.temporal_tls_client_key_path is None):
            raise ValueError(
                "TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together: "
                "set both or neither"
            )
        return self

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'bankrecon.db').resolve()}"


def settings_error(error: ValidationError) -> str:
    """Settings mistakes in one line, each after the variable it is in (never its value)."""
    return "; ".join(
        f"{'.'.join(map(str, problem['loc'])).upper() + ': ' if problem['loc'] else ''}"
        f"{problem['msg'].removeprefix('Value error, ')}"
        for problem in error.errors()
    )
