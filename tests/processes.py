"""Real processes for the crash tests: the Temporal dev server, workers, and a TCP proxy that can cut.

Every process starts in its own session, writes its output to a log file, and is
stopped by whoever started it; ``ProcessGroup`` kills what is left, so a failing
test leaves no orphans.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from bankrecon.ops.binaries import find_binary
from bankrecon.sources.refbank.simulator.server import DEMO_MERCHANT_SECRET

ROOT = Path(__file__).resolve().parent.parent
# Variables bankrecon reads (bankrecon/config.py); the developer's own values must not leak in.
_SETTING_PREFIXES = (
    "TEMPORAL_",
    "BANK_",
    "DATABASE_URL",
    "DATA_DIR",
    "BANKRECON_ENCRYPTION_",
    "CODEC_SERVER_",
    "METRICS_ADDRESS",
    "LOG_FORMAT",
)


def environment_without_settings() -> dict[str, str]:
    """This process's environment minus every variable that bankrecon reads."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_SETTING_PREFIXES)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` right now."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # After the command's closing parenthesis: the state, then the parent's pid.
            parent = stat.read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if int(parent) == pid:
            children.append(int(stat.parent.name))
    return children


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Child:
    """One process in its own session, with its output appended to ``log``."""

    def __init__(self, args: list[str], log: Path, env: Mapping[str, str] | None = None):
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._out: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would end it: no handler, no cleanup."""
        if self.alive():
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._out.close()

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait for the orderly exit; SIGKILL if it does not come."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()
        return self.proc.returncode

    def freeze(self) -> None:
        """SIGSTOP to its whole session: nothing it runs can finish, or tell anyone it did."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def reap(self) -> None:
        """Kill the whole session, in case the process started children of its own."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.kill()


class ProcessGroup:
    """The processes of one test (or module), all killed on exit whatever happened."""

    def __init__(self, logs: Path):
        self.logs = logs
        self._children: list[Child] = []
        self._count = 0

    def start(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> Child:
        self._count += 1
        child = Child(args, self.logs / f"{self._count:02d}-{name}.log", env)
        self._children.append(child)
        return child

    def close(self) -> None:
        for child in self._children:
            child.reap()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def wait_until(condition: Callable[[], object], timeout: float, what: str, log: Path | None = None) -> None:
    """Poll ``condition`` until it holds, or fail naming ``what`` (with the log's end, if given)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            detail = f"\n--- {log} ---\n{log_tail(log)}" if log is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(0.05)


class DevServer:
    """``temporal server start-dev`` on a free port, with its state in ``db_file`` across restarts."""

    def __init__(
        self,
        group: ProcessGroup,
        db_file: Path,
        *,
        ui_codec_endpoint: str | None = None,
        dynamic_config: dict[str, str] | None = None,
    ):
        """Headless, or with the Web UI on ``ui_port`` when ``ui_codec_endpoint`` is given;
        ``dynamic_config`` overrides the server's settings (``--dynamic-config-value``)."""
        self._group = group
        self._db_file = db_file
        self._dynamic_config = dynamic_config or {}
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._ui_codec_endpoint = ui_codec_endpoint
        self.ui_port = free_port() if ui_codec_endpoint else None
        self.child: Child | None = None

    def start(self) -> None:
        ui = (
            ["--ui-port", str(self.ui_port), "--ui-codec-endpoint", self._ui_codec_endpoint]
            if self.ui_port and self._ui_codec_endpoint
            else ["--headless"]
        )
        settings = [f"--dynamic-config-value={name}={value}" for name, value in self._dynamic_config.items()]
        self.child = self._group.start(
            "temporal",
            [
                find_binary("temporal"), "server", "start-dev", "--db-filename", str(self._db_file),
                "--ip", "127.0.0.1", "--port", str(self.port), *ui, "--log-level", "warn",
                *settings,
            ],
        )  # fmt: skip
        child = self.child
        wait_until(lambda: listening(self.port) or not child.alive(), 60, "the dev server's port", child.log)
        assert child.alive(), f"the dev server exited:\n{log_tail(child.log)}"

    def stop(self) -> None:
        """SIGTERM, as an operator or a deploy stops it, and wait until it is gone."""
        assert self.child is not None
        code = self.child.terminate()
        assert code == 0, f"the dev server exited with {code}:\n{log_tail(self.child.log)}"
        wait_until(lambda: not listening(self.port), 30, "the dev server's port to close")


def worker_env(
    *,
    temporal_address: str,
    task_queue: str,
    data_dir: Path,
    database_url: str,
    bank_url: str,
    min_interval: float,
    request_timeout: float,
) -> dict[str, str]:
    return environment_without_settings() | {
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "BANK_BASE_URL": bank_url,
        "BANK_MERCHANT_SECRET": DEMO_MERCHANT_SECRET,
        "BANK_MIN_INTERVAL_SECONDS": str(min_interval),
        "BANK_REQUEST_TIMEOUT_SECONDS": str(request_timeout),
        "BANK_CONNECT_TIMEOUT_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
    }


WORKER_READY = "worker serving task queue"


def start_worker(group: ProcessGroup, env: Mapping[str, str]) -> Child:
    """A ``python worker.py`` process, returned once it polls its task queue."""
    child = group.start("worker", [sys.executable, "worker.py"], env)
    wait_until(
        lambda: WORKER_READY in child.log.read_text(errors="replace") or not child.alive(),
        60,
        "the worker to poll its task queue",
        child.log,
    )
    assert child.alive(), f"the worker exited:\n{log_tail(child.log)}"
    return child


class TcpProxy:
    """Forwards a local port to ``target``; ``cut`` drops every connection and refuses new ones.

    Threads, not the test's event loop, so that it keeps forwarding while a test blocks.
    """

    def __init__(self, target_host: str, target_port: int):
        self._target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Listen (again) on the same port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        # A timeout lets the accept loop notice ``cut`` without racing a close of its socket.
        listener.settimeout(0.1)
        self._listener = listener
        self._stop.clear()
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def cut(self) -> None:
        """Close the listening socket (connects are refused) and every open connection."""
        self._stop.set()
        if self._accepting is not None:
            self._accepting.join(timeout=5)
            self._accepting = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            doomed = list(self._sockets)
            self._sockets.clear()
        for sock in doomed:
            _close(sock)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._stop.is_set():
                    _close(client)
                    _close(upstream)
                    return
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    # shutdown wakes a thread blocked in recv on this socket; close alone may not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
