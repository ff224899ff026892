"""A statement's row keys held in 8 bytes a row, to find repeated keys in bills of millions of rows."""

from __future__ import annotations

from array import array
from itertools import pairwise

_KEY_BUCKETS = 64


class RowKeys:
    """The row keys seen so far, as 64-bit hashes in arrays split by hash range: 8 bytes a row.

    Equal hashes only make candidates, which a second read of the bill confirms or clears.
    """

    def __init__(self) -> None:
        self._buckets = [array("q") for _ in range(_KEY_BUCKETS)]

    def add(self, key: str) -> None:
        digest = hash(key)
        self._buckets[digest % _KEY_BUCKETS].append(digest)

    def repeated(self) -> set[int]:
        found: set[int] = set()
        for bucket in self._buckets:
            if len(set(bucket)) != len(bucket):
                ordered = sorted(bucket)
                found.update(a for a, b in pairwise(ordered) if a == b)
        return found
