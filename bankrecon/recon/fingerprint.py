"""Fingerprints of a run's inputs, so that an old result can be explained by what it read."""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, text

_MODULUS = 1 << 64
# A line's SHA-256 as PostgreSQL sums it: its first 64 bits, as a signed BIGINT (the same modulo 2**64).
_SQL_LINE_HASH = "('x' || left(encode(sha256(convert_to({line}, 'UTF8')), 'hex'), 16))::bit(64)::bigint"


class LinesFingerprint:
    """The sum, modulo 2**64, of the first 64 bits of each line's SHA-256: the same lines give
    the same fingerprint in whatever order a source returns them (a query without ORDER BY, a
    file sorted anew). PostgreSQL computes it in SQL (``sql_fingerprint``), SQLite line by line."""

    def __init__(self, total: int = 0, count: int = 0) -> None:
        self._sum = total % _MODULUS
        self.count = count

    def add(self, line: str) -> None:
        self._sum = (self._sum + int.from_bytes(hashlib.sha256(line.encode()).digest()[:8], "big")) % _MODULUS
        self.count += 1

    def hexdigest(self) -> str:
        return self._sum.to_bytes(8, "big").hex()


def sql_fingerprint(conn: Connection, line: str, source: str, params: dict[str, object]) -> LinesFingerprint:
    """On PostgreSQL: the fingerprint of ``source``'s rows, each line the SQL text expression ``line``."""
    total, count = conn.execute(
        text(f"SELECT COALESCE(SUM({_SQL_LINE_HASH.format(line=line)}), 0), COUNT(*) FROM {source}"), params
    ).one()
    return LinesFingerprint(int(total), count)
