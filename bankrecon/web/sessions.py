"""Signed session cookies, CSRF tokens and the login throttle."""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

from bankrecon.config import Settings

SESSION_COOKIE = "bankrecon_session"
KEY_FILE_NAME = "web-session.key"
# Failed logins allowed within THROTTLE_SECONDS, per user name and per client address.
FAILURES_PER_USER = 5
FAILURES_PER_ADDRESS = 20
THROTTLE_SECONDS = 15 * 60


def session_key(settings: Settings) -> str:
    """WEB_SECRET_KEY, or the key kept in DATA_DIR (made once, readable by its owner only)."""
    if settings.web_secret_key is not None:
        return settings.web_secret_key.get_secret_value()
    path = settings.data_dir / KEY_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return Path(path).read_text(encoding="ascii").strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        key = secrets.token_hex(32)
        file.write(key)
    return key


@dataclass(frozen=True)
class Session:
    csrf: str
    user: str | None = None


class SessionCodec:
    """A session travels in its cookie, signed and dated; one past its age is no session."""

    def __init__(self, key: str, max_age_seconds: float):
        self._serializer = URLSafeTimedSerializer(key, salt="bankrecon-web-session")
        self.max_age_seconds = max_age_seconds

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps({"csrf": session.csrf, "user": session.user})

    def loads(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=int(self.max_age_seconds))
        except BadSignature:  # also an expired one (SignatureExpired)
            return None
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return None
        user = data.get("user")
        return Session(csrf=data["csrf"], user=user if isinstance(user, str) else None)


def new_session(user: str | None = None) -> Session:
    return Session(csrf=secrets.token_urlsafe(32), user=user)


def csrf_matches(session: Session | None, token: object) -> bool:
    return (
        session is not None
        and isinstance(token, str)
        and hmac.compare_digest(session.csrf.encode(), token.encode())
    )


class LoginThrottle:
    """Failed logins counted per user name and per address over a sliding window, in this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        now = self._clock()
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - THROTTLE_SECONDS:
            failures.popleft()
        return failures

    def refused(self, name: str, address: str) -> bool:
        return (
            len(self._recent(("user", name))) >= FAILURES_PER_USER
            or len(self._recent(("address", address))) >= FAILURES_PER_ADDRESS
        )

    def failed(self, name: str, address: str) -> None:
        now = self._clock()
        self._recent(("user", name)).append(now)
        self._recent(("address", address)).append(now)

    def succeeded(self, name: str) -> None:
        self._failures.pop(("user", name), None)
