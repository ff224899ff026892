"""Bank statement files over SFTP (docs/sources/sftp.md): MT940 or camt.053, one file a day and account.

Its ``[[merchant]]`` keys: ``host``, ``port`` (22), ``username``, ``private_key_file`` or
``password_env`` (the variable holding the password), ``known_hosts_file`` (required: the
server's host key is always checked against it). Its ``[[account]]`` keys: ``format``
(mt940 or camt053), ``path`` (a template of ``{account_no}`` and ``{bill_date:...}``, or a
glob that must match one file), ``ready`` (stable or marker), ``stable_seconds`` (30),
``after`` (keep, or ``move:/dir/``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import string
from collections.abc import Mapping
from datetime import date, time
from pathlib import Path
from typing import Any, Literal

import asyncssh
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from bankrecon.models import ArchiveRef, DecodedStatement
from bankrecon.sources.base import (
    Account,
    DecodeJob,
    Defaults,
    Merchant,
    SourceKind,
    SourceSettings,
    StatementClient,
    validated,
)
from bankrecon.sources.sftp.client import SftpClient, SftpLogin
from bankrecon.sources.sftp.statement import decode_statement

log = logging.getLogger(__name__)
_TEMPLATE_FIELDS = {"account_no", "bill_date"}


class _MerchantEntry(SourceSettings):
    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    port: int = Field(default=22, ge=1, le=65535)
    username: str = Field(min_length=1, max_length=128)
    private_key_file: Path | None = None
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    known_hosts_file: Path

    @model_validator(mode="after")
    def _one_credential(self) -> _MerchantEntry:
        if (self.private_key_file is None) == (self.password_env is None):
            raise ValueError("give one of private_key_file and password_env")
        return self


class SftpMerchant(_MerchantEntry):
    """The login, loaded and checked; never shown nor dumped."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    private_key: asyncssh.SSHKey | None = Field(default=None, repr=False, exclude=True)
    password: SecretStr | None = Field(default=None, repr=False, exclude=True)
    known_hosts: asyncssh.SSHKnownHosts = Field(repr=False, exclude=True)


class SftpAccount(SourceSettings):
    format: Literal["mt940", "camt053"]
    path: str = Field(min_length=2, max_length=1024, pattern=r"^/")
    ready: Literal["stable", "marker"] = "stable"
    # How long a file's size and time must stay the same before it is taken (ready = "stable").
    stable_seconds: float = Field(default=30.0, ge=0, le=600)
    after: str = Field(default="keep", pattern=r"^(keep|move:/.*/)$")

    @field_validator("path")
    @classmethod
    def _template(cls, path: str) -> str:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(path) if name is not None}
        except ValueError as exc:
            raise ValueError(f"not a path template: {exc}") from None
        if not fields <= _TEMPLATE_FIELDS:
            raise ValueError(f"a template names only {{account_no}} and {{bill_date:%Y%m%d}}, not {fields}")
        return path

    @property
    def move_to(self) -> str | None:
        return self.after.removeprefix("move:") if self.after.startswith("move:") else None


def _load(given: _MerchantEntry) -> SftpMerchant:
    try:
        known_hosts = asyncssh.read_known_hosts(str(given.known_hosts_file))
    except (OSError, ValueError) as exc:
        raise ValueError(f"known_hosts_file {given.known_hosts_file}: cannot read it: {exc}") from None
    private_key = password = None
    if given.private_key_file is not None:
        try:
            private_key = asyncssh.read_private_key(given.private_key_file)
        except (OSError, asyncssh.KeyImportError) as exc:
            raise ValueError(f"private_key_file {given.private_key_file}: not a usable key: {exc}") from None
    else:
        assert given.password_env is not None
        value = os.environ.get(given.password_env)
        if not value:
            raise ValueError(f"password_env: the variable {given.password_env} is not set")
        password = SecretStr(value)
    return SftpMerchant(
        **given.model_dump(), private_key=private_key, password=password, known_hosts=known_hosts
    )


def login_of(merchant: Merchant, defaults: Defaults) -> SftpLogin:
    settings = merchant.settings
    assert isinstance(settings, SftpMerchant)
    return SftpLogin(
        host=settings.host,
        port=settings.port,
        username=settings.username,
        private_key=settings.private_key,
        password=None if settings.password is None else settings.password.get_secret_value(),
        known_hosts=settings.known_hosts,
        connect_timeout=defaults.connect_timeout_seconds,
        request_timeout=defaults.request_timeout_seconds,
    )


class Sftp(SourceKind):
    name = "sftp"
    label = "SFTP"
    # Banks drop the previous day's statement file overnight.
    default_earliest = time(6, 0)
    account_entry = SftpAccount

    def merchant_settings(self, entry: Mapping[str, Any], defaults: Defaults) -> SftpMerchant:
        given = validated(_MerchantEntry, entry)
        return _load(given)

    def refusal(self, bill_date: date, today: date) -> str | None:
        if bill_date >= today:
            return f"the statement of {bill_date} does not exist yet: the day is not over"
        return None

    def client(self, merchant: Merchant, defaults: Defaults) -> StatementClient:
        return SftpClient(login_of(merchant, defaults))

    def after_stored(
        self, account: Account, bill_date: date, archive: ArchiveRef, defaults: Defaults
    ) -> None:
        settings = account.settings
        assert isinstance(settings, SftpAccount)
        if settings.move_to is None:
            return
        client = SftpClient(login_of(account.merchant, defaults))
        problem = asyncio.run(client.move_away(account, bill_date, archive, settings.move_to))
        if problem is not None:
            # The statement is stored; a file that cannot be moved without an operator stays where it is.
            log.warning(
                "statement %s %s stored, its file was not moved: %s", account.account_no, bill_date, problem
            )

    def decode(self, job: DecodeJob) -> DecodedStatement:
        settings = job.account.settings
        assert isinstance(settings, SftpAccount)
        return decode_statement(job.data_dir, job.key, job.archive, settings.format, job.on_progress)


SFTP = Sftp()
