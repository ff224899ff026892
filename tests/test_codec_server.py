"""The codec server over real HTTP: the remote codec protocol, its token, CORS for the Web UI."""

from __future__ import annotations

import base64
import json
import logging
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from bankrecon.config import Settings
from bankrecon.temporal.codec import EncryptionCodec, KeyRing, new_key
from bankrecon.temporal.codec_server import CodecServer, build_server
from tests.processes import ProcessGroup, environment_without_settings, free_port, listening, wait_until

TOKEN = "codec-token-for-tests-0123456789"
UI_ORIGIN = "http://127.0.0.1:8233"
KEY = new_key()


@pytest.fixture
def server() -> Iterator[CodecServer]:
    settings = Settings(
        _env_file=None,
        bankrecon_encryption_keys=f"k2:{KEY},k1:{new_key()}",
        codec_server_token=TOKEN,
        codec_server_port=0,
        codec_server_cors_origins=f"{UI_ORIGIN}, http://localhost:8233",
    )
    codec_server = build_server(settings)
    thread = threading.Thread(target=codec_server.serve_forever, daemon=True)
    thread.start()
    yield codec_server
    codec_server.shutdown()
    codec_server.server_close()
    thread.join(timeout=5)


def as_json(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def from_json(text: str) -> list[Payload]:
    return list(json_format.Parse(text, Payloads()).payloads)


PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"account_no":"6222020000000001"}')
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def test_encode_then_decode_round_trip_in_protobuf_json(server: CodecServer) -> None:
    body = as_json(PLAIN)
    assert '"metadata": {' in body and '"encoding": "anNvbi9wbGFpbg=="' in body  # the wire shape
    encoded = httpx.post(f"{server.url}/encode", content=body, headers=BEARER)
    assert encoded.status_code == 200, encoded.text
    [sealed] = from_json(encoded.text)
    assert sealed.metadata["encryption-key-id"] == b"k2"
    assert b"6222020000000001" not in sealed.data

    decoded = httpx.post(
        f"{server.url}/decode", content=encoded.text, headers=BEARER | {"X-Namespace": "default"}
    )
    assert decoded.status_code == 200
    assert from_json(decoded.text) == [PLAIN]


def test_token_in_the_first_path_segment_is_accepted_and_only_the_last_segment_routes(
    server: CodecServer,
) -> None:
    response = httpx.post(f"{server.url}/{TOKEN}/decode", content=as_json(PLAIN))
    assert response.status_code == 200 and from_json(response.text) == [PLAIN]
    assert httpx.post(f"{server.url}/{TOKEN}/nested/encode", content=as_json(PLAIN)).status_code == 200
    percent_encoded = TOKEN.replace("-", "%2D")
    assert httpx.post(f"{server.url}/{percent_encoded}/decode", content=as_json(PLAIN)).status_code == 200
    assert httpx.post(f"{server.url}/{TOKEN}/other", content=as_json(PLAIN)).status_code == 404


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        # A Web UI with an OIDC login (passAccessToken) sends its own access token as the bearer.
        (f"/{TOKEN}/decode", {"Authorization": "Bearer an-oidc-access-token"}),
        ("/some-ui-prefix/decode", BEARER),
    ],
)
def test_either_the_path_token_or_the_bearer_token_is_enough(
    server: CodecServer, path: str, headers: dict[str, str]
) -> None:
    response = httpx.post(f"{server.url}{path}", content=as_json(PLAIN), headers=headers)
    assert response.status_code == 200 and from_json(response.text) == [PLAIN]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/decode", {}),
        ("/decode", {"Authorization": "Bearer wrong"}),
        ("/decode", {"Authorization": f"Bearer {TOKEN}x"}),
        ("/decode", {"Authorization": TOKEN}),
        ("/wrong/decode", {}),
        ("/wrong/decode", {"Authorization": "Bearer wrong"}),
    ],
)
def test_requests_without_the_token_are_refused(
    server: CodecServer, path: str, headers: dict[str, str]
) -> None:
    response = httpx.post(f"{server.url}{path}", content=as_json(PLAIN), headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "missing or wrong codec server token"}
    assert "6222020000000001" not in response.text


def test_a_refused_request_closes_its_connection(server: CodecServer) -> None:
    body = as_json(PLAIN)
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), port), timeout=5) as raw:
        raw.sendall(f"POST /decode HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
        # Read to the end: the server closes, so that the unread body cannot pose as the next request.
        refused = b""
        while chunk := raw.recv(65536):
            refused += chunk
    assert refused.startswith(b"HTTP/1.1 401") and b"Connection: close" in refused


def test_body_without_length_is_refused(server: CodecServer) -> None:
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), port), timeout=5) as raw:
        raw.sendall(f"POST /decode HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 411")


def test_cors_preflight_and_responses_for_the_ui_origin_only(server: CodecServer) -> None:
    preflight = httpx.options(
        f"{server.url}/{TOKEN}/decode",
        headers={
            "Origin": UI_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-namespace", "authorization"} <= allowed

    post = httpx.post(f"{server.url}/{TOKEN}/decode", content=as_json(PLAIN), headers={"Origin": UI_ORIGIN})
    assert post.headers["Access-Control-Allow-Origin"] == UI_ORIGIN

    foreign = httpx.options(f"{server.url}/decode", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in foreign.headers
    refused = httpx.post(f"{server.url}/decode", content=as_json(PLAIN), headers={"Origin": UI_ORIGIN})
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == UI_ORIGIN


async def test_unknown_key_id_and_bad_bodies_get_clear_errors(server: CodecServer) -> None:
    foreign = EncryptionCodec(KeyRing.parse(f"retired:{new_key()}", "test"))
    [sealed] = await foreign.encode([PLAIN])
    unknown = httpx.post(f"{server.url}/decode", content=as_json(sealed), headers=BEARER)
    assert unknown.status_code == 422
    assert "key id 'retired', which is not among the configured keys ['k2', 'k1']" in unknown.json()["error"]

    garbage = httpx.post(f"{server.url}/decode", content=b"{not json", headers=BEARER)
    assert garbage.status_code == 400 and "protobuf JSON" in garbage.json()["error"]


def test_the_log_never_holds_the_token(server: CodecServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bankrecon.temporal.codec_server"):
        httpx.post(f"{server.url}/{TOKEN}/decode", content=as_json(PLAIN))
        httpx.post(f"{server.url}/decode", content=as_json(PLAIN), headers=BEARER)
        # A request line that the base class rejects, quoting it in its own message.
        host, port = server.server_address[:2]
        with socket.create_connection((str(host), port), timeout=5) as raw:
            raw.sendall(f"POST /{TOKEN}/decode HTTP/1.1 junk\r\n\r\n".encode())
            assert b"400" in raw.recv(4096)
    assert caplog.records, "the server logs each request"
    assert TOKEN not in caplog.text
    assert base64.b64encode(TOKEN.encode()).decode() not in caplog.text


def test_a_server_process_with_log_format_json_logs_one_object_per_line(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with ProcessGroup(tmp_path / "logs") as group:
        process = group.start(
            "codec-server",
            [sys.executable, "-m", "bankrecon.temporal.codec_server"],
            environment_without_settings()
            | {
                "BANKRECON_ENCRYPTION_KEYS": f"k2:{KEY}",
                "CODEC_SERVER_TOKEN": TOKEN,
                "CODEC_SERVER_PORT": str(port),
                "LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
            },
        )
        wait_until(lambda: listening(port) or not process.alive(), 30, "the codec server", process.log)
        assert httpx.post(f"{url}/{TOKEN}/decode", content=as_json(PLAIN)).status_code == 200
        assert httpx.post(f"{url}/decode", content=as_json(PLAIN), headers=BEARER).status_code == 200
        assert httpx.post(f"{url}/decode", content=as_json(PLAIN)).status_code == 401
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(f"POST /{TOKEN}/decode HTTP/1.1 junk\r\n\r\n".encode())
            assert b"400" in raw.recv(4096)
        # Clients that hang up (reset) before their answer: the failed write is logged too.
        body = as_json(PLAIN)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                raw.sendall(
                    f"POST /{TOKEN}/decode HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode()
                )
        wait_until(lambda: "went away" in process.log.read_text(), 10, "the hang-ups in the log", process.log)
        assert process.terminate() == 0
    text = process.log.read_text()
    not_json = [line for line in text.splitlines() if not line.startswith("{")]
    assert not_json == [], text
    lines = [json.loads(line) for line in text.splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    messages = [line["message"] for line in lines]
    assert messages[0].startswith(f"codec server on {url}")
    assert messages.count("127.0.0.1 POST .../decode -> 200") >= 2
    assert "127.0.0.1 POST .../decode -> 401" in messages
    assert "127.0.0.1: malformed request" in messages
    assert TOKEN not in text and base64.b64encode(TOKEN.encode()).decode() not in text
    assert "Authorization" not in text and "Bearer" not in text


def test_incomplete_configuration_is_refused() -> None:
    no_keys = Settings(_env_file=None, codec_server_token=TOKEN, codec_server_port=0)
    with pytest.raises(ValueError, match="no keys"):
        build_server(no_keys)
    no_token = Settings(_env_file=None, bankrecon_encryption_keys=f"k:{KEY}", codec_server_port=0)
    with pytest.raises(ValueError, match="CODEC_SERVER_TOKEN"):
        build_server(no_token)
