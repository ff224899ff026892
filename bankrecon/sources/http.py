"""What the sources that speak HTTPS share."""

from __future__ import annotations

import ssl
from functools import cache

import httpx

# A merchant asks once in its window (30 minutes at the reference bank): a connection kept alive
# for the next request would wait all that time, about 8 KB of a worker's memory each, and the
# server closes it long before. Each request opens its own.
_ONE_REQUEST_A_CONNECTION = httpx.Limits(max_keepalive_connections=0)


@cache
def shared_tls_context() -> ssl.SSLContext:
    """One for every merchant's client of every source: httpx would build one each, some 0.8 MB apiece
    (1,000 merchants took a worker to 950 MB)."""
    return httpx.create_ssl_context()


def merchant_http_client(
    *, connect_timeout: float, request_timeout: float, base_url: str = ""
) -> httpx.AsyncClient:
    """One merchant's HTTP client: the shared TLS context, no connection kept between requests."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
        verify=shared_tls_context(),
        limits=_ONE_REQUEST_A_CONNECTION,
    )
