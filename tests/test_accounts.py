"""BANK_ACCOUNTS_FILE: several merchants, each account with its own credentials and currency."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bankrecon.accounts import AccountDirectory, AccountsFileError, Merchant
from bankrecon.config import Settings
from bankrecon.sources.refbank.kind import RefBankMerchant
from tests.harness import settings_for

VALID = """
[[merchant]]
id = "M1"
secret = "inline-secret"

[[merchant]]
id = "M2"
secret_env = "TEST_BANK_SECRET_M2"
base_url = "http://127.0.0.1:9/other-bank"
min_interval_seconds = 60

[[account]]
account_no = "6222020000000001"
merchant = "M1"
currency = "CNY"

[[account]]
account_no = "6222020000000002"
merchant = "M2"
"""


def refbank(merchant: Merchant) -> RefBankMerchant:
    assert merchant.kind == "refbank" and isinstance(merchant.settings, RefBankMerchant)
    return merchant.settings


def _directory(tmp_path: Path, text: str) -> AccountDirectory:
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    return AccountDirectory.from_settings(
        settings_for(tmp_path, "sqlite://", "http://127.0.0.1:8600", "q", bank_accounts_file=path)
    )


def test_accounts_map_to_their_merchants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_BANK_SECRET_M2", "from-env")
    directory = _directory(tmp_path, VALID)
    first = directory.account("6222020000000001")
    second = directory.account("6222020000000002")
    assert first is not None and second is not None
    assert (first.merchant.id, refbank(first.merchant).secret.get_secret_value(), first.currency) == (
        "M1",
        "inline-secret",
        "CNY",
    )
    assert refbank(first.merchant).base_url == "http://127.0.0.1:8600"  # BANK_BASE_URL by default
    assert first.merchant.min_interval_seconds == 0  # BANK_MIN_INTERVAL_SECONDS by default
    assert (second.merchant.id, refbank(second.merchant).secret.get_secret_value(), second.currency) == (
        "M2",
        "from-env",
        None,
    )
    assert (refbank(second.merchant).base_url, second.merchant.min_interval_seconds) == (
        "http://127.0.0.1:9/other-bank",
        60,
    )
    assert directory.account("6222020000000003") is None
    assert sorted(m.id for m in directory.merchants()) == ["M1", "M2"]
    # BANK_ACCOUNTS is for the single merchant only: the file's accounts are the nightly ones.
    assert directory.nightly_accounts() == ["6222020000000001", "6222020000000002"]


def test_without_a_file_one_merchant_owns_every_account(tmp_path: Path) -> None:
    directory = AccountDirectory.from_settings(
        settings_for(tmp_path, "sqlite://", "http://bank", "q", bank_merchant_id="M9")
    )
    account = directory.account("1234567890")
    assert account is not None and account.merchant.id == "M9" and account.currency is None
    assert directory.nightly_accounts() == []


def test_without_a_file_the_nightly_accounts_come_from_bank_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BANK_ACCOUNTS", " 6222020000000002, 6222020000000001,6222020000000002 ")
    monkeypatch.setenv("BANK_MERCHANT_SECRET", "s3cret")
    directory = AccountDirectory.from_settings(Settings(_env_file=None))
    assert directory.nightly_accounts() == ["6222020000000001", "6222020000000002"]
    monkeypatch.setenv("BANK_ACCOUNTS", "6222020000000001,62-22")
    with pytest.raises(ValidationError, match="not account numbers \\(10 to 32 digits\\): 62-22"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (VALID.replace('merchant = "M2"', 'merchant = "M3"'), "names merchant M3"),
        (VALID + '\n[[account]]\naccount_no = "6222020000000001"\nmerchant = "M1"\n', "appears twice"),
        (VALID.replace('secret_env = "TEST_BANK_SECRET_M2"', ""), "exactly one of secret and secret_env"),
        (VALID.replace("TEST_BANK_SECRET_M2", "TEST_BANK_SECRET_UNSET"), "TEST_BANK_SECRET_UNSET is not set"),
        (VALID.replace("TEST_BANK_SECRET_M2", "TEST_BANK_SECRET_EMPTY"), "TEST_BANK_SECRET_EMPTY is not set"),
        (VALID.replace('"inline-secret"', '""'), "merchant M1: secret is empty"),
        (VALID.replace('currency = "CNY"', 'currency = "cny"'), "currency"),
        (VALID.replace('"6222020000000002"', '"62-22"'), "account_no"),
        (VALID.replace("[[account]]", "[[acount]]", 1), "acount"),
        ("[[merchant]\n", "not valid TOML"),
    ],
)
def test_mistakes_are_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.setenv("TEST_BANK_SECRET_M2", "from-env")
    monkeypatch.delenv("TEST_BANK_SECRET_UNSET", raising=False)
    monkeypatch.setenv("TEST_BANK_SECRET_EMPTY", "")
    with pytest.raises(AccountsFileError, match=message):
        _directory(tmp_path, text)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(AccountsFileError, match="cannot read it"):
        AccountDirectory.from_settings(
            settings_for(tmp_path, "sqlite://", "http://bank", "q", bank_accounts_file=tmp_path / "nope.toml")
        )
