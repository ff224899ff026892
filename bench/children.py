"""Processes' figures from /proc: memory and CPU time, and the peak memory of a process's children
(the processes that validate a large statement's blocks)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from types import TracebackType

from tests.processes import children_of


def status_kb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return float(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


async def settled_rss_mb(pid: int, within: float = 15.0) -> float:
    """The process's RSS once it stops growing: a worker that polls its task queue is still
    starting its runtime's threads and first connections for a few seconds."""
    reading = status_kb(pid, "VmRSS") / 1024
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        previous, reading = reading, status_kb(pid, "VmRSS") / 1024
        if abs(reading - previous) < 0.5:
            break
    return reading


def cpu_seconds(pid: int) -> float:
    """User and system time the process has used so far."""
    # After the command's closing parenthesis: the state is field 0, utime 11 and stime 12.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ChildrenPeak:
    """Samples the children of ``pid`` while the block runs: how many there were, the highest peak RSS.

    Each child's own VmHWM, read while it lives: getrusage's figure for children would also
    count the parent's pages a child shares between fork and exec.
    """

    def __init__(self, pid: int, every: float = 0.05):
        self._pid = pid
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.mb = 0.0
        self.seen: set[int] = set()

    def __enter__(self) -> ChildrenPeak:
        self._thread.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            for child in children_of(self._pid):
                try:
                    self.mb = max(self.mb, status_kb(child, "VmHWM") / 1024)
                except (OSError, RuntimeError):  # it ended meanwhile
                    continue
                self.seen.add(child)
