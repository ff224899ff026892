"""Alipay RSA2 signing against the official SDK (alipay-sdk-python), and the raw answer text."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2, verify_with_rsa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bankrecon.sources.alipay.client import METHOD, AlipayClient
from bankrecon.sources.alipay.signing import sign, signature_holds, signed_answer, signing_text
from tests.wechatpay_keys import make_key_pair

RESPONSE = "alipay_data_dataservice_bill_downloadurl_query_response"


def _pkcs1_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def test_the_request_signature_is_the_sdks_byte_for_byte(tmp_path: Path) -> None:
    app = make_key_pair(tmp_path, "app")
    client = AlipayClient(
        "http://127.0.0.1:1/gateway.do",
        "2021000000000000",
        app.private_key,
        app.public_key,
        give_up_after=timedelta(days=2),
        connect_timeout=1,
        request_timeout=1,
    )
    parameters = client.parameters("trade", date(2026, 11, 28), now=1_764_000_000)
    unsigned = {name: value for name, value in parameters.items() if name != "sign"}
    # The SDK signs what its get_sign_content joins; ours must be the same text and signature.
    assert signing_text(unsigned) == get_sign_content(unsigned)
    assert "sign_type=RSA2" in signing_text(unsigned)
    assert parameters["sign"] == sign_with_rsa2(
        _pkcs1_pem(app.private_key), get_sign_content(unsigned), "utf-8"
    )
    assert verify_with_rsa(app.public_pem, signing_text(unsigned).encode(), parameters["sign"])


def test_empty_parameters_and_sign_are_not_signed() -> None:
    text = signing_text({"b": "2", "a": "1", "sign": "x", "app_auth_token": "", "c": "中文 &="})
    assert text == "a=1&b=2&c=中文 &="


def test_answers_verify_both_ways_with_the_sdk(tmp_path: Path) -> None:
    alipay = make_key_pair(tmp_path, "alipay")
    text = '{"code":"10000","msg":"Success","bill_download_url":"http://x/d?a=1&b=2"}'
    ours = sign(alipay.private_key, text)
    assert verify_with_rsa(alipay.public_pem, text.encode("utf-8"), ours)
    theirs = sign_with_rsa2(_pkcs1_pem(alipay.private_key), text, "utf-8")
    assert theirs == ours and signature_holds(alipay.public_key, text, theirs)
    assert not signature_holds(alipay.public_key, text + " ", theirs)


@pytest.mark.parametrize(
    "text",
    [
        '{"code":"40004","msg":"Business Failed","sub_code":"isp.bill_not_exist","sub_msg":"\\u8d26\\u5355\\u4e0d\\u5b58\\u5728"}',  # noqa: E501
        '{ "code" : "10000", "nested": {"a": [1, {"b": "}\\"{"}], "c": null}, "msg":"账单" }',
        '{"code":"10000","url":"http:\\/\\/x\\/d","emoji":"\\ud83d\\ude00"}',
    ],
)
def test_the_signed_text_is_cut_from_the_body_as_sent(tmp_path: Path, text: str) -> None:
    alipay = make_key_pair(tmp_path, "alipay")
    signature = sign(alipay.private_key, text)
    body = f'{{ "{RESPONSE}" :{text} ,\n "sign":"{signature}"}}'
    answer = signed_answer(body, METHOD)
    assert answer.text == text and answer.signature == signature
    assert answer.value == json.loads(text)
    # Serialising the parsed value again would give other text, and the SDK would refuse it.
    assert verify_with_rsa(alipay.public_pem, answer.text.encode("utf-8"), signature)
    assert json.dumps(answer.value) != text


def test_the_sign_may_come_first_and_error_response_is_taken(tmp_path: Path) -> None:
    body = '{"sign":"abc","error_response":{"code":"40002","sub_code":"isv.invalid-app-id"}}'
    answer = signed_answer(body, METHOD)
    assert answer.name == "error_response" and answer.signature == "abc"


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        '{"sign":"abc"}',
        f'{{"{RESPONSE}":{{}},"{RESPONSE}":{{}},"sign":"a"}}',
        f'{{"{RESPONSE}":{{}},"error_response":{{}}}}',
        f'{{"{RESPONSE}":{{}}}} trailing',
        f'{{"{RESPONSE}":"text"}}',
    ],
)
def test_bodies_that_are_not_one_answer_are_refused(body: str) -> None:
    with pytest.raises(ValueError):
        signed_answer(body, METHOD)
