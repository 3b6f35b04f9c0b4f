"""The benchmarks run after the README's command 1 (peerdht installed, no test dependencies) plus
`npm ci`: none imports pytest, and without node they say in one line what to install (issue 12 item 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHES = ["churn", "connect", "hyperdht", "mainline", "udx", "web"]

# run a bench as `python bench/X.py ARGS` would, with pytest made unimportable
RUNNER = """
import runpy, sys
sys.modules["pytest"] = None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _run(bench: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(ROOT / "bench" / f"{bench}.py"), *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )


@pytest.mark.parametrize("bench", BENCHES)
def test_bench_imports_without_pytest(bench: str) -> None:
    out = _run(bench, "--help")
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


@pytest.mark.parametrize("bench", ["churn", "connect", "hyperdht", "mainline"])
def test_bench_without_node_says_what_it_needs(bench: str, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"  # a PATH with python but no node
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bindir)}
    out = _run(bench, env=env)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "npm ci" in lines[0] and "nodejs" in lines[0], out.stderr
