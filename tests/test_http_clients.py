"""Every HTTP source's merchant client: one TLS context for all, and no connection kept between requests
(a merchant asks once in its window: 10,000 merchants' idle connections held a worker's memory)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from bankrecon.sources.http import merchant_http_client

SOURCES = Path(__file__).resolve().parents[1] / "bankrecon" / "sources"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def test_the_connection_is_closed_once_the_answer_is_read() -> None:
    closed_by_client: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(RESPONSE)  # and keeps the connection open, as HTTP/1.1 allows
        await writer.drain()
        try:
            closed_by_client.set_result(await asyncio.wait_for(reader.read(), 5) == b"")
        except TimeoutError:
            closed_by_client.set_result(False)
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, merchant_http_client(connect_timeout=2, request_timeout=5) as http:
        response = await http.get(f"http://127.0.0.1:{port}/statement")
        assert response.text == "ok"
        assert await closed_by_client


def test_every_source_makes_its_merchant_clients_through_the_shared_factory() -> None:
    own_clients = [
        f"{path.relative_to(SOURCES)}:{number}"
        for path in SOURCES.rglob("*.py")
        if "simulator" not in path.parts and path.name != "http.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"httpx\.(Async)?Client\(", line)
    ]
    assert own_clients == []
