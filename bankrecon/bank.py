"""HTTP client for the bank's statement download API (bank-api.md v1)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Any

import httpx
from pydantic import SecretStr


class Outcome(Enum):
    READY = "ready"  # 0000: the file is in data
    EMPTY = "empty"  # 2001: ready, no transactions
    NOT_YET = "not_yet"  # 9999, 1005, unknown codes: try again after the window
    REJECTED = "rejected"  # 1001, 1002, 1003: asking again cannot help


# What an operator does about a permanent answer; the workflow's failure message says it.
REJECTION_ADVICE = {
    "1001": "signature rejected or merchant unknown: check BANK_MERCHANT_ID and BANK_MERCHANT_SECRET",
    "1002": "account unknown to this merchant: check the account number and which merchant owns it",
    "1003": "bill_date is in the future or past the bank's 90-day retention: check the date",
}
_OUTCOMES = {
    "0000": Outcome.READY,
    "2001": Outcome.EMPTY,
    "9999": Outcome.NOT_YET,
    "1005": Outcome.NOT_YET,
} | {code: Outcome.REJECTED for code in REJECTION_ADVICE}


@dataclass(frozen=True)
class BankAnswer:
    code: str
    message: str
    data: dict[str, Any] | None

    @property
    def outcome(self) -> Outcome:
        return _OUTCOMES.get(self.code, Outcome.NOT_YET)

    @property
    def known(self) -> bool:
        return self.code in _OUTCOMES


class BankUnavailable(Exception):
    """No business answer: HTTP error, timeout, connection failure or an unreadable body."""


def sign(secret: SecretStr, body: bytes) -> str:
    return hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()


class BankClient:
    def __init__(
        self,
        base_url: str,
        merchant_id: str,
        secret: SecretStr,
        *,
        connect_timeout: float,
        request_timeout: float,
    ):
        self.merchant_id = merchant_id
        self._secret = secret
        self._request_timeout = request_timeout
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def download_statement(self, account_no: str, bill_date: date, request_id: str) -> BankAnswer:
        body = json.dumps(
            {
                "merchant_id": self.merchant_id,
                "account_no": account_no,
                "bill_date": bill_date.strftime("%Y%m%d"),
                "request_id": request_id,
            },
            ensure_ascii=False,
        ).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "X-Merchant-Id": self.merchant_id,
            "X-Signature": sign(self._secret, body),
        }
        try:
            # httpx bounds each read; this bounds the whole exchange, body included.
            async with asyncio.timeout(self._request_timeout):
                response = await self._http.post("/statement/download", content=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise BankUnavailable(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise BankUnavailable(f"connection failed ({type(exc).__name__}: {exc})") from None
        if response.status_code != 200:
            raise BankUnavailable(f"HTTP {response.status_code} {response.reason_phrase}")
        try:
            payload = response.json()
            return BankAnswer(
                code=str(payload["code"]),
                message=str(payload.get("message", "")),
                data=payload.get("data"),
            )
        except (ValueError, KeyError, TypeError):
            raise BankUnavailable("HTTP 200 with a body that is not the bank's JSON") from None
