"""What a statement source is: everything that differs between channels, and nothing else.

A source kind (the reference bank, WeChat Pay, ...) says how to ask a channel for one day's
statement and how to read its answer (``StatementClient.ask``), how to check and read the
archive into canonical rows and totals (``SourceKind.decode``), the earliest time worth
asking, which dates the channel can never serve, and which configuration keys it takes.
Everything else (the workflow, the merchant's window, the store, alerts) is shared.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bankrecon.models import ArchiveRef, DecodedStatement, StatementKey
from bankrecon.statements.common import CHINA_STANDARD_TIME, ArchiveLimits


class Outcome(Enum):
    READY = "ready"  # the statement is here: an archive kept in DATA_DIR, or a damaged download
    EMPTY = "empty"  # the channel has no statement for that day, for good: stored as an empty statement
    NOT_READY = "not_ready"  # not prepared yet: ask again after the interval
    THROTTLED = "throttled"  # rate-limited, or a passing fault the channel named: ask again later
    UNRECOGNISED = "unrecognised"  # an answer the source does not know: asked again, and shown to operators
    REJECTED = "rejected"  # asking again cannot help: the statement fails, saying what to fix


@dataclass(frozen=True)
class Answer:
    """The channel's business answer to one request, already verified where the channel signs it."""

    outcome: Outcome
    code: str  # the channel's own code, as operators know it: "9999", "STATEMENT_CREATING", "HTTP 429"
    message: str
    archive: ArchiveRef | None = None  # READY: the download, kept in DATA_DIR/archives
    damage: str | None = None  # READY without archive: what was wrong with the download (fetched again)
    advice: str | None = None  # REJECTED: what an operator does about it


class SourceUnavailable(Exception):
    """No business answer: an HTTP failure, a timeout, no connection, or an answer failing verification."""


class AnswerNotBelieved(SourceUnavailable):
    """An answer failing verification: its signature, or the certificate it carries, is not the channel's.

    Once in a while that is a proxy or the channel's own slip; again and again it is a key or
    certificate file of ours that is wrong, which asking again will not heal. The message names
    the file or key to check.
    """


class StatementClient(Protocol):
    """Talks to one merchant's channel with the merchant's credentials."""

    async def ask(self, account: Account, bill_date: date, request_id: str, data_dir: Path) -> Answer: ...

    async def aclose(self) -> None: ...


class SourceSettings(BaseModel):
    """Keys of one ``[[merchant]]`` or ``[[account]]`` entry that belong to its source kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Entry = TypeVar("Entry", bound=BaseModel)


def validated(model: type[Entry], entry: Mapping[str, Any]) -> Entry:
    """``entry`` read as ``model``; ValueError names what is wrong in one line."""
    try:
        return model.model_validate(entry)
    except ValidationError as exc:
        raise ValueError(one_line(exc)) from None


# The names a channel's statements go by (a channel has no bank account number to give).
CHANNEL_NAMES = (
    re.compile(r"[A-Za-z0-9._-]{1,64}"),
    "a name of 1 to 64 letters, digits, '.', '_' or '-'",
)


@dataclass(frozen=True)
class Merchant:
    """One set of credentials at one channel; the window of one request per interval is the merchant's."""

    id: str
    kind: str
    min_interval_seconds: float
    earliest: time | None  # first request for a day: this time (China Standard Time) the next day
    settings: SourceSettings


@dataclass(frozen=True)
class Account:
    """One statement to collect every day: its name, its merchant, and its kind's own keys."""

    account_no: str
    merchant: Merchant
    currency: str | None
    settings: SourceSettings


@dataclass(frozen=True)
class Defaults:
    """What the environment gives a merchant entry that leaves a key out."""

    bank_base_url: str
    request_timeout_seconds: float
    connect_timeout_seconds: float


@dataclass(frozen=True)
class DecodeJob:
    """One downloaded archive to check whole and write to a records file in DATA_DIR."""

    data_dir: Path
    key: StatementKey
    archive: ArchiveRef
    account: Account
    limits: ArchiveLimits
    on_progress: Callable[[int], None]


class SourceKind(ABC):
    """One channel's protocol and formats; registered by name in ``bankrecon.sources``."""

    name: str
    label: str  # how messages name the channel: "bank", "WeChat Pay"
    # First request for a day when the merchant's entry has no ``earliest``; None: as soon as the day is over.
    default_earliest: time | None = None
    # The keys of the kind's ``[[account]]`` entries.
    account_entry: ClassVar[type[SourceSettings]]
    # What an account_no of the kind must match, and how to say so; None: any statement name.
    account_no_rule: ClassVar[tuple[re.Pattern[str], str] | None] = None

    @abstractmethod
    def merchant_settings(self, entry: Mapping[str, Any], defaults: Defaults) -> SourceSettings:
        """The kind's keys of a ``[[merchant]]`` entry, checked; ValueError says what is wrong."""

    def account_settings(self, entry: Mapping[str, Any]) -> SourceSettings:
        """The kind's keys of an ``[[account]]`` entry, checked; ValueError says what is wrong in one line."""
        return validated(self.account_entry, entry)

    def account_no_error(self, account_no: str) -> str | None:
        """Why ``account_no`` cannot name a statement of this kind; None when it can."""
        if self.account_no_rule is None:
            return None
        pattern, form = self.account_no_rule
        return None if pattern.fullmatch(account_no) else f"account_no {account_no!r} is not {form}"

    @abstractmethod
    def client(self, merchant: Merchant, defaults: Defaults) -> StatementClient: ...

    def refusal(self, bill_date: date, today: date) -> str | None:
        """Why the channel can never serve ``bill_date`` (``today`` is China Standard Time's); else None."""
        return None

    def after_stored(
        self, account: Account, bill_date: date, archive: ArchiveRef, defaults: Defaults
    ) -> None:
        """What the channel wants done once the statement is stored (each attempt of the store calls it).

        SourceUnavailable when trying again may help; a step that cannot heal logs and returns.
        """
        return None

    @abstractmethod
    def decode(self, job: DecodeJob) -> DecodedStatement:
        """Check the archive whole and write its rows to a records file; StatementDamaged if a rule fails."""


def earliest_request(bill_date: date, merchant: Merchant) -> datetime | None:
    """When asking for ``bill_date``'s statement can first meet anything but "not ready"."""
    if merchant.earliest is None:
        return None
    return datetime.combine(bill_date + timedelta(days=1), merchant.earliest, CHINA_STANDARD_TIME)


def one_line(error: ValidationError) -> str:
    """A pydantic error as one line: each problem's place and message, never the input."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}".lstrip(": ")
        for problem in error.errors(include_input=False)
    )
