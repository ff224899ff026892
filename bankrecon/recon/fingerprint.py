"""Fingerprints of a run's inputs, so that an old result can be explained by what it read."""

from __future__ import annotations

import hashlib

_MODULUS = 1 << 256


class LinesFingerprint:
    """The sum, modulo 2**256, of each line's SHA-256: the same lines give the same fingerprint
    in whatever order a source returns them (a query without ORDER BY, a file sorted anew)."""

    def __init__(self) -> None:
        self._sum = 0
        self.count = 0

    def add(self, line: str) -> None:
        self._sum = (self._sum + int.from_bytes(hashlib.sha256(line.encode()).digest(), "big")) % _MODULUS
        self.count += 1

    def hexdigest(self) -> str:
        return self._sum.to_bytes(32, "big").hex()
