"""Alipay open-platform RSA2 signatures: the merchant's request parameters and Alipay's answers.

Both are SHA256withRSA (PKCS#1 v1.5) in base64. A request signs its parameters but ``sign``
and the empty ones, sorted by name and joined ``k=v&...`` without URL encoding (``sign_type``
is signed). An answer is a JSON object whose ``<method>_response`` (or ``error_response``)
value is signed as the exact text Alipay sent, next to it in ``sign``: that text is cut out
of the body, never serialised again, so escapes, spacing and key order stay Alipay's.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256

from bankrecon.sources.wechatpay.signing import load_private_key, load_public_key

__all__ = [
    "SignedAnswer",
    "load_private_key",
    "load_public_key",
    "response_key",
    "sign",
    "signature_holds",
    "signed_answer",
    "signing_text",
]

ERROR_RESPONSE = "error_response"
_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def signing_text(parameters: Mapping[str, str]) -> str:
    """What a request's signature covers: the non-empty parameters but ``sign``, sorted, ``k=v&...``."""
    return "&".join(
        f"{name}={value}" for name, value in sorted(parameters.items()) if name != "sign" and value
    )


def sign(private_key: RSAPrivateKey, text: str) -> str:
    return base64.b64encode(private_key.sign(text.encode("utf-8"), PKCS1v15(), SHA256())).decode("ascii")


def signature_holds(public_key: RSAPublicKey, text: str, signature: str) -> bool:
    try:
        public_key.verify(
            base64.b64decode(signature, validate=True), text.encode("utf-8"), PKCS1v15(), SHA256()
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def response_key(method: str) -> str:
    """The name of a method's answer in the body: ``alipay.a.b`` answers in ``alipay_a_b_response``."""
    return method.replace(".", "_") + "_response"


@dataclass(frozen=True)
class SignedAnswer:
    name: str  # the method's response key, or error_response
    text: str  # the value exactly as sent: what ``sign`` covers
    value: dict[str, object]
    signature: str | None


def signed_answer(body: str, method: str) -> SignedAnswer:
    """The answer's value, its raw text and its signature; ValueError when the body is not one answer."""
    members = _top_level_members(body)
    names = [name for name in (response_key(method), ERROR_RESPONSE) if name in members]
    if len(names) != 1:
        raise ValueError(f"the answer holds {len(names)} of {response_key(method)} and {ERROR_RESPONSE}")
    text = members[names[0]]
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"{names[0]} is not an object")
    signature = json.loads(members["sign"]) if "sign" in members else None
    if signature is not None and not isinstance(signature, str):
        raise ValueError("sign is not a string")
    return SignedAnswer(names[0], text, value, signature)


def _top_level_members(body: str) -> dict[str, str]:
    """The raw text of each member of the JSON object ``body``, by name, exactly as written."""
    at = _skip(body, 0)
    if body[at : at + 1] != "{":
        raise ValueError("the answer is not a JSON object")
    members: dict[str, str] = {}
    at = _skip(body, at + 1)
    if body[at : at + 1] == "}":
        return _ends(body, at + 1, members)
    while True:
        if body[at : at + 1] != '"':
            raise ValueError("a member name is not a string")
        name, at = json.decoder.scanstring(body, at + 1)  # type: ignore[attr-defined]
        at = _skip(body, at)
        if body[at : at + 1] != ":":
            raise ValueError("a member name is not followed by ':'")
        start = _skip(body, at + 1)
        _, end = _DECODER.raw_decode(body, start)
        if name in members:
            # Which of two values was signed is anyone's guess: neither is believed.
            raise ValueError(f"the answer names {name} twice")
        members[name] = body[start:end]
        at = _skip(body, end)
        if body[at : at + 1] == "}":
            return _ends(body, at + 1, members)
        if body[at : at + 1] != ",":
            raise ValueError("members are not separated by ','")
        at = _skip(body, at + 1)


def _skip(body: str, at: int) -> int:
    while at < len(body) and body[at] in _WHITESPACE:
        at += 1
    return at


def _ends(body: str, at: int, members: dict[str, str]) -> dict[str, str]:
    if _skip(body, at) != len(body):
        raise ValueError("text after the answer's object")
    return members
