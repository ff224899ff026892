"""The codec server: decrypts (and encrypts) payloads for the ``temporal`` CLI and the Web UI.

    python -m bankrecon.temporal.codec_server

It speaks Temporal's remote codec protocol: ``POST .../decode`` and ``POST .../encode``
take and return a ``Payloads`` message in protobuf JSON (``{"payloads": [{"metadata":
{"encoding": "<base64>"}, "data": "<base64>"}]}``); only the last path segment picks the
route. Every POST must carry the token, either as ``Authorization: Bearer <token>`` (the
CLI's ``--codec-auth``) or as the first path segment (``http://host:port/<token>``, for
the Web UI, which sends no Authorization header unless it has an OIDC login, and then
its own access token); one of the two matching is enough. Browsers get CORS headers
only for the configured Web UI origins.

Settings (bankrecon/config.py): BANKRECON_ENCRYPTION_KEYS or BANKRECON_ENCRYPTION_KEYS_FILE,
CODEC_SERVER_TOKEN, CODEC_SERVER_HOST, CODEC_SERVER_PORT, CODEC_SERVER_CORS_ORIGINS, LOG_FORMAT.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import signal
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import unquote

from google.protobuf import json_format
from pydantic import ValidationError
from temporalio.api.common.v1 import Payloads

from bankrecon.config import Settings
from bankrecon.telemetry.logs import configure_logging
from bankrecon.temporal.client import key_ring
from bankrecon.temporal.codec import EncryptionCodec, KeyRing, KeyRingError, PayloadDecryptionError

log = logging.getLogger("bankrecon.temporal.codec_server")

# A history event's payloads stay under 4 MB (Temporal's gRPC limit); base64 adds a third.
MAX_BODY_BYTES = 8 * 1024 * 1024
ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"


class CodecServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], ring: KeyRing, token: str, cors_origins: list[str]):
        if not token:
            raise ValueError("the codec server needs a token (CODEC_SERVER_TOKEN)")
        self.codec = EncryptionCodec(ring)
        self.key_ids = ring.ids
        self.token = token.encode("utf-8")
        self.cors_origins = frozenset(cors_origins)
        super().__init__(address, CodecRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def authorized(self, authorization: str | None, first_segment: str) -> bool:
        bearer = ""
        if authorization is not None:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer":
                bearer = credentials.strip()
        # Either one will do: a Web UI with an OIDC login sends its own access token as the
        # bearer, and ours in the path. Both are always compared, so that the time taken
        # does not tell which one matched.
        path_matches = self._matches(first_segment)
        bearer_matches = self._matches(bearer)
        return path_matches or bearer_matches

    def _matches(self, presented: str) -> bool:
        # Header values arrive as latin-1 text; compare bytes so that any value compares safely.
        return hmac.compare_digest(presented.encode("utf-8", errors="replace"), self.token)

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        # The base class prints the traceback to stderr, past the log's format (with
        # LOG_FORMAT=json, one object a line). A client that hangs up before its answer (a
        # browser leaving the page) is worth a line, not a traceback.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            log.warning(
                "%s: the client went away before its answer (%s)", client_address[0], type(error).__name__
            )
        else:
            log.exception("%s: the request failed", client_address[0])


class CodecRequestHandler(BaseHTTPRequestHandler):
    server: CodecServer
    protocol_version = "HTTP/1.1"

    def do_OPTIONS(self) -> None:
        # A CORS preflight carries no credentials; the POST that follows is checked.
        self._reply(HTTPStatus.NO_CONTENT, b"", preflight=True)

    def do_POST(self) -> None:
        segments = [segment for segment in self.path.split("?", 1)[0].split("/") if segment]
        route = segments[-1] if segments else ""
        if route not in ("encode", "decode"):
            self._error(HTTPStatus.NOT_FOUND, "POST .../encode or .../decode")
            return
        first = unquote(segments[0]) if len(segments) > 1 else ""
        if not self.server.authorized(self.headers.get("Authorization"), first):
            self._error(HTTPStatus.UNAUTHORIZED, "missing or wrong codec server token")
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._error(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required")
            return
        if int(length) > MAX_BODY_BYTES:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")
            return
        try:
            payloads = json_format.Parse(self.rfile.read(int(length)), Payloads())
        except (json_format.ParseError, UnicodeDecodeError):
            self._error(HTTPStatus.BAD_REQUEST, "the body is not a Payloads message in protobuf JSON")
            return
        convert = self.server.codec.encode if route == "encode" else self.server.codec.decode
        try:
            converted = asyncio.run(convert(payloads.payloads))
        except PayloadDecryptionError as exc:
            self._error(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))
            return
        body = json_format.MessageToJson(Payloads(payloads=converted)).encode("utf-8")
        self._reply(HTTPStatus.OK, body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        # The body may be unread: the connection cannot carry another request.
        self.close_connection = True
        self._reply(status, json.dumps({"error": message}).encode("utf-8"))

    def _reply(self, status: HTTPStatus, body: bytes, *, preflight: bool = False) -> None:
        self.send_response(status)
        origin = self.headers.get("Origin")
        if origin is not None and origin in self.server.cors_origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            if preflight:
                self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
                self.send_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
                self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Vary", "Origin")
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path may hold the token: log only the route.
        # A request line too malformed to parse leaves neither path nor command set.
        route = getattr(self, "path", "").split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        log.info("%s %s .../%s -> %s", self.client_address[0], getattr(self, "command", "-"), route, code)

    def log_error(self, format: str, *args: object) -> None:
        # The base class's messages can quote the request line, and with it the token.
        log.warning("%s: malformed request", self.client_address[0])


def build_server(settings: Settings) -> CodecServer:
    """The server configured by ``settings``; raises KeyRingError or ValueError when incomplete."""
    ring = key_ring(settings)
    if ring is None:
        raise KeyRingError("no keys: set BANKRECON_ENCRYPTION_KEYS or BANKRECON_ENCRYPTION_KEYS_FILE")
    token = settings.codec_server_token.get_secret_value() if settings.codec_server_token else ""
    origins = [origin.strip() for origin in settings.codec_server_cors_origins.split(",") if origin.strip()]
    return CodecServer((settings.codec_server_host, settings.codec_server_port), ring, token, origins)


def main() -> None:
    argparse.ArgumentParser(
        prog="python -m bankrecon.temporal.codec_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args()
    try:
        settings = Settings()
        configure_logging(settings.log_format)
        server = build_server(settings)
    except (ValidationError, KeyRingError, ValueError) as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    except OSError as exc:
        raise SystemExit(
            f"cannot listen on {settings.codec_server_host}:{settings.codec_server_port}: {exc.strerror}"
        ) from None

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    log.info(
        "codec server on %s (POST .../decode, .../encode), key ids %s, CORS for %s",
        server.url,
        server.key_ids,
        sorted(server.cors_origins) or "no origin",
    )
    with server:
        server.serve_forever()


if __name__ == "__main__":
    main()
