"""WeChat Pay API v3 signatures: the merchant's request Authorization and WeChat Pay's answer signature.

Both are SHA256withRSA (PKCS#1 v1.5) in base64. A request signs
``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`` with the merchant's API private key; an
answer signs ``TIMESTAMP\\nNONCE\\nBODY\\n`` with WeChat Pay's key, named by ``Wechatpay-Serial``.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

SCHEME = "WECHATPAY2-SHA256-RSA2048"
# WeChat Pay refuses requests whose timestamp is further than this from its clock; answers
# further than this from ours are refused as replays.
MAX_CLOCK_SKEW_SECONDS = 300
_AUTH_ITEM = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')
_AUTH_ITEMS = ("mchid", "nonce_str", "timestamp", "serial_no", "signature")
_MIN_KEY_BITS = 2048


def load_private_key(path: Path, key_name: str) -> RSAPrivateKey:
    """The RSA private key in the PEM file ``path``; ValueError names the key and the file, never its text."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ValueError(
            f"{key_name} {path}: cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None
    except (ValueError, TypeError):
        raise ValueError(f"{key_name} {path}: not an unencrypted PEM private key") from None
    return _rsa_private(key, path, key_name)


def load_public_key(path: Path, key_name: str) -> RSAPublicKey:
    """The RSA public key in the PEM file ``path``; ValueError names the key and the file, never its text."""
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ValueError(
            f"{key_name} {path}: cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None
    except (ValueError, TypeError):
        raise ValueError(f"{key_name} {path}: not a PEM public key") from None
    if not isinstance(key, RSAPublicKey) or key.key_size < _MIN_KEY_BITS:
        raise ValueError(f"{key_name} {path}: not an RSA public key of at least {_MIN_KEY_BITS} bits")
    return key


def _rsa_private(key: object, path: Path, key_name: str) -> RSAPrivateKey:
    if not isinstance(key, RSAPrivateKey) or key.key_size < _MIN_KEY_BITS:
        raise ValueError(f"{key_name} {path}: not an RSA private key of at least {_MIN_KEY_BITS} bits")
    return key


def sign(private_key: RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message, PKCS1v15(), SHA256())).decode("ascii")


def signature_holds(public_key: RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), message, PKCS1v15(), SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def request_message(method: str, path_and_query: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method}\n{path_and_query}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def answer_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def new_nonce() -> str:
    return secrets.token_hex(16).upper()


@dataclass(frozen=True)
class RequestSigner:
    """Signs the merchant's requests: one per merchant, holding its API private key."""

    mchid: str
    certificate_serial: str
    private_key: RSAPrivateKey

    def authorization(
        self,
        method: str,
        path_and_query: str,
        body: bytes = b"",
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> str:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or new_nonce()
        signature = sign(self.private_key, request_message(method, path_and_query, stamp, nonce, body))
        return (
            f'{SCHEME} mchid="{self.mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{stamp}",serial_no="{self.certificate_serial}"'
        )


def parse_authorization(header: str) -> dict[str, str] | None:
    """The five items of an Authorization header, in any order; None unless it is exactly that."""
    scheme, _, rest = header.partition(" ")
    if scheme != SCHEME:
        return None
    items: dict[str, str] = {}
    for part in rest.split(","):
        match = _AUTH_ITEM.fullmatch(part)
        if match is None or match[1] in items:
            return None
        items[match[1]] = match[2]
    if sorted(items) != sorted(_AUTH_ITEMS):
        return None
    return items


@dataclass(frozen=True)
class AnswerVerifier:
    """Checks that an answer was signed by WeChat Pay's public key, the one the merchant configured."""

    public_key: RSAPublicKey
    public_key_id: str

    def problem(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str | None:
        """Why the answer cannot be believed, in words that hold no data of it; None when it can."""
        signature = headers.get("Wechatpay-Signature")
        timestamp = headers.get("Wechatpay-Timestamp")
        nonce = headers.get("Wechatpay-Nonce")
        serial = headers.get("Wechatpay-Serial")
        if not (signature and timestamp and nonce and serial):
            return "answer carries no Wechatpay signature headers"
        if serial != self.public_key_id:
            return "answer signed with another key than wechatpay_public_key_id (Wechatpay-Serial differs)"
        if not timestamp.isascii() or not timestamp.isdigit():
            return "answer's Wechatpay-Timestamp is not a number"
        skew = abs((time.time() if now is None else now) - int(timestamp))
        if skew > MAX_CLOCK_SKEW_SECONDS:
            return (
                f"answer's Wechatpay-Timestamp is {skew:.0f}s off our clock (over {MAX_CLOCK_SKEW_SECONDS}s)"
            )
        if not signature_holds(self.public_key, answer_message(timestamp, nonce, body), signature):
            return "answer's Wechatpay-Signature does not verify with wechatpay_public_key_file"
        return None
