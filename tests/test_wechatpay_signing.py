"""Signatures checked against the wechatpayv3 SDK as an oracle, key loading, settings; and no Temporal."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import httpx
import pytest
from wechatpayv3.core import Core  # type: ignore[import-untyped]
from wechatpayv3.utils import build_authorization, rsa_sign  # type: ignore[import-untyped]

from bankrecon.sources.wechatpay import WECHATPAY
from bankrecon.sources.wechatpay.signing import AnswerVerifier, RequestSigner, answer_message, sign
from tests.wechatpay_keys import make_key_pair
from tests.wechatpay_setup import (
    CERTIFICATE_SERIAL,
    DEFAULTS,
    MCHID,
    PUBLIC_KEY_ID,
    Keys,
    make_keys,
    merchant_entry,
    simulator,
    yesterday,
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


def sdk(keys: Keys) -> Core:
    return Core(
        mchid=MCHID,
        cert_serial_no=CERTIFICATE_SERIAL,
        private_key=keys.merchant.private_pem,
        apiv3_key="0" * 32,
        public_key=keys.wechatpay.public_pem,
        public_key_id=PUBLIC_KEY_ID,
    )


def test_our_authorization_is_the_sdks_for_the_same_nonce_and_timestamp(
    keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = "/v3/bill/tradebill?bill_date=2026-11-20&bill_type=ALL&tar_type=GZIP"
    monkeypatch.setattr("wechatpayv3.utils.time.time", lambda: 1_764_000_000.5)
    theirs = build_authorization(
        path, "GET", MCHID, CERTIFICATE_SERIAL, keys.merchant.private_key, nonce_str="N1"
    )
    signer = RequestSigner(MCHID, CERTIFICATE_SERIAL, keys.merchant.private_key)
    ours = signer.authorization("GET", path, timestamp=1_764_000_000, nonce="N1")

    assert ours == theirs
    assert sign(keys.merchant.private_key, b"x\n") == rsa_sign(keys.merchant.private_key, "x\n")


async def test_the_sdk_believes_the_simulators_answers_and_we_believe_the_sdks_signature(keys: Keys) -> None:
    with simulator(keys) as sim:
        path = f"/v3/bill/tradebill?bill_date={yesterday()}&bill_type=ALL&tar_type=GZIP"
        authorization = build_authorization(path, "GET", MCHID, CERTIFICATE_SERIAL, keys.merchant.private_key)
        async with httpx.AsyncClient() as http:
            response = await http.get(sim.url + path, headers={"Authorization": authorization})

    assert response.status_code == 200
    assert sdk(keys)._verify_signature(response.headers, response.text)
    verifier = AnswerVerifier(keys.wechatpay.public_key, PUBLIC_KEY_ID)
    stamp, nonce, body = "1764000000", "N2", '{"code":"STATEMENT_CREATING","message":"账单生成中"}'
    headers = {
        "Wechatpay-Timestamp": stamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": PUBLIC_KEY_ID,
        "Wechatpay-Signature": rsa_sign(keys.wechatpay.private_key, f"{stamp}\n{nonce}\n{body}\n"),
    }
    assert verifier.problem(headers, body.encode(), now=1_764_000_100) is None
    assert verifier.problem(headers, body.encode() + b" ", now=1_764_000_100) is not None
    assert (
        sdk(keys)._verify_signature(headers | {"Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}, body)
        and answer_message(stamp, nonce, body.encode()) == f"{stamp}\n{nonce}\n{body}\n".encode()
    )


def test_merchant_settings_load_both_keys_and_never_show_them(keys: Keys) -> None:
    settings = WECHATPAY.merchant_settings(merchant_entry(keys, "http://127.0.0.1:1"), DEFAULTS)
    shown = repr(settings) + str(settings.model_dump())
    assert "PRIVATE" not in shown and "private_key=" not in shown
    assert settings.base_url == "http://127.0.0.1:1"
    default = WECHATPAY.merchant_settings(
        {k: v for k, v in merchant_entry(keys, "").items() if k != "base_url"}, DEFAULTS
    )
    assert default.base_url == "https://api.mch.weixin.qq.com"


@pytest.mark.parametrize(
    ("key", "make_value", "said"),
    [
        (
            "private_key_file",
            lambda keys, tmp: str(tmp / "missing.pem"),
            "private_key_file .*missing.pem: cannot be read",
        ),
        (
            "private_key_file",
            lambda keys, tmp: str(keys.merchant.public_file),
            "not an unencrypted PEM private key",
        ),
        (
            "wechatpay_public_key_file",
            lambda keys, tmp: str(keys.wechatpay.private_file),
            "not a PEM public key",
        ),
        ("certificate_serial", lambda keys, tmp: "not hex", "certificate_serial"),
        ("mchid", lambda keys, tmp: "19x", "mchid"),
    ],
)
def test_a_wrong_merchant_key_is_one_line_naming_it(keys, tmp_path: Path, key, make_value, said) -> None:
    with pytest.raises(ValueError, match=said) as caught:
        WECHATPAY.merchant_settings(
            merchant_entry(keys, "http://x") | {key: make_value(keys, tmp_path)}, DEFAULTS
        )
    assert "\n" not in str(caught.value) and "BEGIN" not in str(caught.value)


def test_a_small_rsa_key_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "small.pem"
    path.write_bytes(
        small.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    keys = make_keys(tmp_path)
    with pytest.raises(ValueError, match="at least 2048 bits"):
        WECHATPAY.merchant_settings(merchant_entry(keys, "http://x", private_key_file=str(path)), DEFAULTS)


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ({"bill": "tradebill", "account_type": "BASIC"}, "account_type is for bill = fundflowbill"),
        ({"bill": "fundflowbill", "bill_type": "ALL"}, "bill_type is for bill = tradebill"),
        ({"bill": "tradebill", "bill_type": "RECHARGE_REFUND"}, "bill_type"),
        ({"bill": "monthly"}, "bill"),
        ({}, "bill"),
        ({"bill": "tradebill", "secret": "x"}, "secret"),
    ],
)
def test_account_keys_that_do_not_fit_the_bill_are_refused(entry: dict[str, str], said: str) -> None:
    with pytest.raises(ValueError, match=said):
        WECHATPAY.account_settings(entry)


def test_account_names_and_refused_dates() -> None:
    assert WECHATPAY.account_no_error("wx-main.trade_1") is None
    assert WECHATPAY.account_no_error("wx main") is not None
    assert WECHATPAY.account_no_error("x" * 65) is not None
    today = date(2026, 5, 31)
    assert WECHATPAY.refusal(date(2026, 5, 30), today) is None
    assert WECHATPAY.refusal(date(2026, 2, 28), today) is None
    assert "keeps bills 3 months" in (WECHATPAY.refusal(date(2026, 2, 27), today) or "")
    assert "does not exist yet" in (WECHATPAY.refusal(today, today) or "")


def test_another_merchant_key_is_not_the_sdks_either(keys: Keys, tmp_path: Path) -> None:
    other = make_key_pair(tmp_path, "other")
    signer = RequestSigner(MCHID, CERTIFICATE_SERIAL, other.private_key)
    ours = signer.authorization("GET", "/v3/bill/tradebill?bill_date=2026-11-20", timestamp=1, nonce="N")
    theirs = build_authorization(
        "/v3/bill/tradebill?bill_date=2026-11-20",
        "GET",
        MCHID,
        CERTIFICATE_SERIAL,
        keys.merchant.private_key,
        nonce_str="N",
    )
    assert ours.split('signature="')[1] != theirs.split('signature="')[1]


def test_the_source_imports_and_runs_without_temporal() -> None:
    script = textwrap.dedent(
        """
        import sys
        from importlib.abc import MetaPathFinder

        class NoTemporal(MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "temporalio" or name.startswith("temporalio."):
                    raise ImportError(f"{name} is blocked")
                return None

        sys.meta_path.insert(0, NoTemporal())
        import bankrecon.sources.registry
        import bankrecon.sources.wechatpay.simulator.server
        from bankrecon.sources.wechatpay import WECHATPAY
        assert bankrecon.sources.registry.source_kind("wechatpay") is WECHATPAY
        assert not [m for m in sys.modules if m.startswith(("temporalio", "workflows", "activities"))]
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


def test_the_simulator_cli_serves_until_terminated(keys: Keys) -> None:
    assert (
        "--merchant-public-key-file"
        in subprocess.run(
            [sys.executable, "-m", "bankrecon.sources.wechatpay.simulator", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bankrecon.sources.wechatpay.simulator",
            "--port",
            "0",
            "--merchant-public-key-file",
            str(keys.merchant.public_file),
            "--wechatpay-private-key-file",
            str(keys.wechatpay.private_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split(" on ")[1].split()[0]
        assert httpx.get(f"{url}/_sim/health", timeout=10).text == "ok"
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
