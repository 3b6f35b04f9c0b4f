"""Helpers for the NAT lab tests: run ``udp_tool.py`` inside lab hosts and read its JSON lines."""

from __future__ import annotations

import hashlib
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tools.natlab import Host, Lab

from peerdht.hyper.crypto import KeyPair

UDP_TOOL = str(Path(__file__).resolve().parent / "udp_tool.py")
PY = sys.executable


class LineProc:
    """A process started in a lab host whose stdout is read as JSON lines, each with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._buf = b""

    def line(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line from {self.proc.args!r} in {timeout} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    err = self.proc.stderr.read() if self.proc.stderr else ""
                    raise EOFError(f"{self.proc.args!r} exited: {err}")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\n", 1)
        obj: dict[str, Any] = json.loads(raw)
        return obj

    def close(self, *, interrupt: bool = False) -> None:
        """Close its stdin (or, with ``interrupt``, send SIGINT) and wait up to 5 s, then kill it."""
        if interrupt:
            self.proc.send_signal(signal.SIGINT)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def start_tool(lab: Lab, host: Host | str, *args: str) -> LineProc:
    """Start ``udp_tool.py`` (unbuffered) inside ``host``."""
    proc = lab.popen(host, [PY, "-u", UDP_TOOL, *args])
    return LineProc(proc)


def run_tool(lab: Lab, host: Host | str, *args: str, timeout: float = 20.0) -> dict[str, Any]:
    """Run ``udp_tool.py`` inside ``host`` and return its last JSON line."""
    proc = lab.run(host, [PY, UDP_TOOL, *args], timeout=timeout)
    obj: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return obj


def start_stun(lab: Lab, host: Host, ports: tuple[int, int] = (3478, 3479)) -> LineProc:
    """A STUN-like server on all of ``host``'s addresses; returns once it is listening."""
    ips = [host.ip, *host.extra_ips]
    p = start_tool(lab, host, "stun", "--ips", *ips, "--ports", *map(str, ports))
    assert p.line()["ready"]
    return p


def start_testnet(lab: Lab, host: Host, size: int = 3) -> tuple[LineProc, list[str]]:
    """Run ``peerdht testnet`` (``size`` nodes) on a public host; returns it and its bootstrap addresses.

    Stop it with ``proc.close(interrupt=True)`` (the lab kills it anyway when it closes).
    """
    argv = [PY, "-u", "-m", "peerdht", "testnet", "--size", str(size), "--host", host.ip, "--json"]
    proc = LineProc(lab.popen(host, argv))
    bootstrap: list[str] = proc.line(timeout=20)["bootstrap"]
    return proc, bootstrap


def file_sha256(p: Path) -> str:
    """The sha256 of a file's bytes, hex."""
    return hashlib.sha256(p.read_bytes()).hexdigest()


def wait_stderr(proc: subprocess.Popen[str], needle: bytes, timeout: float = 30) -> bytes:
    """Read ``proc``'s stderr until ``needle`` shows up (asserted, with ``timeout`` seconds); returns
    what was read. Fails if the process exits first."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    deadline, err = time.monotonic() + timeout, b""
    while needle not in err and time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, f"process exited: {err!r}"
            err += chunk
    assert needle in err, err
    return err


def start_serve(
    lab: Lab, host: Host, seed: str, args: str, stdin: Path, stdout: Path | str, *, once: bool = True
) -> subprocess.Popen[str]:
    """``peerdht serve --seed SEED [--once] ARGS < stdin > stdout`` on ``host``; returns once it printed
    ``listening on: <its public key>``."""
    key = KeyPair.from_seed(bytes.fromhex(seed)).public_key.hex()
    cmd = f"exec {shlex.quote(PY)} -m peerdht serve --seed {seed}{' --once' if once else ''} {args} < {stdin} > {stdout}"
    server = lab.popen(host, ["sh", "-c", cmd], stdin=None, stdout=None)
    wait_stderr(server, f"listening on: {key}".encode())
    return server
