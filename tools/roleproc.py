"""Drive a helper process that speaks JSON lines (``tools.attack`` roles, ``bench/js/attack-server.js``).

Used by ``tests/attack`` and ``bench/attack.py``: lines with an ``"event"`` key are collected in
:attr:`RoleProcess.events`, every other line is a reply to the last request written to its stdin.
:func:`rss_mib` and :func:`cpu_seconds` read a process's memory and CPU from ``/proc`` (Linux).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["RoleProcess", "cpu_seconds", "rss_mib"]

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mib(pid: int) -> float:
    """Resident set size of process ``pid``, in MiB."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE / (1 << 20)


class RoleProcess:
    """A started ``asyncio`` subprocess (stdout piped; stdin piped if requests will be sent)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            msg = json.loads(line)
            if "event" in msg:
                self.events.append(msg)
                self.changed.set()
            else:
                await self.replies.put(msg)

    async def reply(self, timeout: float = 60.0) -> dict[str, Any]:
        """The next reply line (raises ``TimeoutError`` after ``timeout`` seconds)."""
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def send(self, obj: dict[str, Any]) -> None:
        """Write one request line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        await self.proc.stdin.drain()

    async def ask(self, obj: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """Write one request line and return its reply."""
        await self.send(obj)
        return await self.reply(timeout)

    async def wait_events(self, n: int, timeout: float) -> list[dict[str, Any]]:
        """Wait until ``n`` events arrived (``TimeoutError`` after ``timeout`` seconds); all events so far."""

        async def until() -> None:
            while len(self.events) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), timeout)
        return self.events

    def rss_mib(self) -> float:
        """The process's resident set size, in MiB."""
        return rss_mib(self.proc.pid)

    async def stop(self) -> None:
        """Close stdin, wait up to 10 s for the exit, then kill."""
        if self.proc.returncode is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()
