"""The README's library example runs as written (it uses only an in-process testnet on 127.0.0.1)."""

from __future__ import annotations

import ast
import builtins
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    return blocks


def test_readme_python_example_runs() -> None:
    for code in _blocks():
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "b'hello'" in out.stdout
        assert out.stdout.count("found ") == 1  # lookup_peers: one line per peer, not per reply


def test_readme_example_uses_the_flat_api_and_shadows_no_builtin() -> None:
    for code in _blocks():
        tree = ast.parse(code)
        imported = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert [n.module for n in imported] == ["peerdht"], "the example imports from `peerdht` only"
        bound: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, ast.alias):
                bound.add(node.asname or node.name)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                bound.add(node.name)
        assert not bound & set(dir(builtins)), sorted(bound & set(dir(builtins)))
