"""What channel simulators share: an HTTP server on a daemon thread, started and stopped as a context."""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self


class SimulatorServer(ThreadingHTTPServer):
    """Serves ``handler`` with the simulator at hand; a client hanging up is not an error."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        simulator: Any,
        handler: type[BaseHTTPRequestHandler],
        log: logging.Logger,
    ) -> None:
        self.simulator = simulator
        self._log = log
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        self._log.exception("error while serving %s", client_address)


class ServedSimulator:
    """A simulator on a real socket (``host``, ``port``; 0 for any free one), with a scratch directory."""

    name = "simulator"

    def __init__(
        self, host: str, port: int, handler: type[BaseHTTPRequestHandler], log: logging.Logger
    ) -> None:
        self.host = host
        self.port = port
        self._handler = handler
        self._log = log
        self._server: SimulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._server = SimulatorServer((self.host, self.port), self, self._handler, self._log)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"


class Startable(Protocol):
    def start(self) -> Any: ...

    def stop(self) -> None: ...


def serve_until_signalled(
    simulator: Startable, parser: argparse.ArgumentParser, address: str, banner: Callable[[], str]
) -> int:
    """A simulator's command: serve until SIGINT or SIGTERM, saying ``banner()`` once listening."""
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda _signum, _frame: stopping.set())
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    try:
        simulator.start()
    except OSError as error:
        parser.exit(1, f"cannot listen on {address}: {error}\n")
    try:
        print(banner(), flush=True)
        stopping.wait()
    finally:
        simulator.stop()
    return 0


def served_file(path: Path, option: str) -> bytes:
    """The bytes of a file a simulator is to serve as a bill; ValueError naming ``option`` if unreadable."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
