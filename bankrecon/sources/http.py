"""What the sources that speak HTTPS share."""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def shared_tls_context() -> ssl.SSLContext:
    """One for every merchant's client of every source: httpx would build one each, some 0.8 MB apiece
    (1,000 merchants took a worker to 950 MB)."""
    return httpx.create_ssl_context()
