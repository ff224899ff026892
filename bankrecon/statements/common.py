"""What every statement format shares: the channels' clock, archive bounds, and what damage is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

# Every channel here dates its statements in Beijing time.
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
_SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f+00:00"


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Bounds that keep a hostile archive from harming the host; checked while streaming."""

    max_members: int = 1_000
    max_total_uncompressed_bytes: int = 2 * 1024**3
    max_compression_ratio: int = 200


class StatementDamaged(Exception):
    """The statement breaks a rule of its format or of its channel's API; nothing of it may be kept."""

    def __init__(self, rule: str, detail: str, *, part: str | None = None, line: int | None = None):
        self.rule = rule
        self.detail = detail
        self.part = part
        self.line = line
        where = ", ".join(x for x in (f"part {part}" if part else "", f"line {line}" if line else "") if x)
        super().__init__(f"{where + ': ' if where else ''}{rule}: {detail}")


def stored_utc_text(value: datetime) -> str:
    """An aware time as SQLite stores it; PostgreSQL reads the same text as the same instant."""
    return value.astimezone(UTC).strftime(_SQLITE_TIME_FORMAT)
