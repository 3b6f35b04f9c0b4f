"""Run JS reference peers (tests/js/*.js, node_modules at the repo root) as subprocesses.

A JS fixture script prints one JSON object per line on stdout (its first line says it is ready) and
exits when its stdin closes, so a crashed test never leaves it running.

The benchmarks in ``bench/`` use this module too, so it needs nothing beyond the standard library and
peerdht's own install: pytest is imported only to skip a test.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = Path(__file__).resolve().parent / "js"


NEEDS_JS = (
    "the JS peers are needed: install node and npm (Debian: apt-get install nodejs npm), then run "
    "`npm ci` in the repository root (scripts/test.sh does both)"
)


def require_node() -> str:
    """The ``node`` executable, once node and ``node_modules`` are there.

    Under pytest a test without them is skipped (an error on CI); a benchmark exits with one line
    saying what to install.
    """
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules").is_dir():
        if sys.modules.get("pytest") is None:  # not under pytest: a benchmark
            raise SystemExit(f"{sys.argv[0]}: {NEEDS_JS}")
        if os.environ.get("CI"):
            raise RuntimeError("node or node_modules missing: run scripts/test.sh (it runs npm ci)")
        import pytest

        pytest.skip("node or node_modules missing: run scripts/test.sh")
    return node


class JSProcess:
    """One running JS fixture. Use ``await proc.line()`` to read its next JSON line."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name

    async def line(self, timeout: float = 20.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            err = b""
            if self.proc.stderr is not None:
                err = await asyncio.wait_for(self.proc.stderr.read(), 5)
            raise RuntimeError(f"{self.name} exited: {err.decode(errors='replace')[-2000:]}")
        result: dict[str, Any] = json.loads(raw)
        return result

    async def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        await self.proc.stdin.drain()

    async def close(self) -> None:
        if self.proc.returncode is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def start_js(script: str, *args: str) -> JSProcess:
    """Start ``tests/js/<script>`` with ``args``; returns once the process is spawned."""
    node = require_node()
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / script),
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=1 << 24,
    )
    return JSProcess(proc, script)
