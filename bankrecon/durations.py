"""Durations as operators write them in configuration files: ``2d``, ``36h``, ``1d12h``, ``90m``."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?")


def parse_duration(text: str) -> timedelta:
    """``2d``, ``36h``, ``1d12h``, ``90m``: days, hours and minutes, in that order."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration such as 2d, 36h or 1d12h")
    days, hours, minutes = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)
